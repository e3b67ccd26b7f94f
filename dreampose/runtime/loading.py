"""Loading models onto a device: the one device and dtype rule of the project.

Every command, the app and the benchmarks place models through :func:`pick_device`, so a
model never runs in fp16 on one path and bf16 on another:

- CUDA GPU: bf16 where the GPU computes it natively (Ampere, compute capability 8.0, and
  newer: same range as fp32, so no overflow to inf), fp16 on older GPUs;
- Apple MPS: fp16 (Stable Diffusion's usual choice there);
- CPU: fp32 (fp16 kernels are missing or slow on CPUs).

``--device`` and ``--dtype`` override either half; impossible combinations are refused
with the reason. torch is imported on first use, so the CLI can list the choices instantly.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dreampose.runtime.references import MODEL_HELP, ModelRef, resolve
from pose_extraction.densepose import BACKENDS, DETECTOR_SIZE, MAX_DETECTOR_SIZE, PRECISIONS

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DTYPE_NAMES = ("fp32", "fp16", "bf16")
DTYPE_CHOICES = ("auto", *DTYPE_NAMES)
DEVICE_HELP = "cuda, cuda:N, mps or cpu (default: the GPU when there is one)"
DTYPE_HELP = (
    "auto (bf16 on Ampere and newer GPUs, fp16 on older GPUs and Apple, fp32 on the CPU), fp32, fp16, bf16"
)
DENSEPOSE_WEIGHTS_ENV = "DREAMPOSE_DENSEPOSE_WEIGHTS"


@dataclass(frozen=True)
class Placement:
    """Where and in which precision models run."""

    device: torch.device
    dtype: torch.dtype

    def __str__(self) -> str:
        return f"{self.device} ({dtype_name(self.dtype)})"


def torch_dtype(name: str) -> torch.dtype:
    """fp32, fp16 or bf16 as a torch dtype."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def dtype_name(dtype: torch.dtype) -> str:
    return next(name for name in DTYPE_NAMES if torch_dtype(name) == dtype)


def pick_device(device: str | torch.device | None = None, dtype: str | None = None) -> Placement:
    """The device (default: CUDA, else MPS, else CPU) and its dtype (default: see module)."""
    device = _device(device)
    if dtype in (None, "", "auto"):
        return Placement(device, _auto_dtype(device))
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPE_CHOICES)}; got {dtype!r}")
    if device.type == "cpu" and dtype == "fp16":
        raise ValueError("fp16 is not supported on the CPU; use --dtype fp32 (or bf16) there")
    return Placement(device, torch_dtype(dtype))


def _device(device: str | torch.device | None) -> torch.device:
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"--device must be cpu, cuda, cuda:N or mps; got {device!r}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not _mps_available():
        raise ValueError("--device mps was asked for, but PyTorch sees no Apple GPU (MPS) here")
    return device


def _auto_dtype(device: torch.device) -> torch.dtype:
    import torch

    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


# --------------------------------------------------------------------------- DreamPose models
def load_pipeline(
    model: str | ModelRef,
    device: str | torch.device | None = None,
    dtype: str | None = None,
    cpu_offload: bool = False,
    speed=None,
):
    """A DreamPose model on its device: anything :func:`~dreampose.runtime.references.resolve`
    loads (a model folder, a LoRA subject folder, a hub id, ``demo`` or ``tiny``).

    ``cpu_offload`` keeps idle components on the CPU and moves each to the GPU only while it
    runs (for GPUs with little memory); it is ignored on the CPU. ``speed``: the speed
    settings to apply (``dreampose.runtime.speed``; default: what the device gets by default;
    ``SpeedSettings()`` for the plain path).
    """
    from dreampose.runtime.speed import apply_speed_settings, default_speed_settings

    ref = resolve(model)
    placement = pick_device(device, dtype)
    pipe = _load(ref, placement.dtype)
    if placement.device.type == "cpu":
        log.warning("no GPU found: running on the CPU, which is very slow for real models")
    if cpu_offload and placement.device.type != "cpu":
        pipe.enable_model_cpu_offload(device=placement.device)
    else:
        pipe.to(placement.device)
        if pipe.unet.dtype != placement.dtype:  # folders load in their dtype already; tiny is fp32
            pipe.to(dtype=placement.dtype)
    speed = speed if speed is not None else default_speed_settings(placement.device)
    log.info("%s on %s: %s", ref.describe(), placement, ", ".join(apply_speed_settings(pipe, speed)))
    return pipe


def _load(ref: ModelRef, dtype: torch.dtype):
    if ref.kind == "tiny":
        from dreampose.model.tiny import tiny_pipeline

        return tiny_pipeline()
    if ref.kind == "lora":  # a small folder applied onto its base model
        from dreampose.model.subject import apply_subject

        pipe = _load(ref.base(), dtype)
        apply_subject(pipe, ref.path)
        return pipe
    if ref.kind == "hub":  # a LoRA subject published there is fetched, then applied
        subject = ref.fetch_subject()
        if subject is not None:
            return _load(subject, dtype)
    if not ref.loadable:
        raise ValueError(ref.problem)
    from dreampose.model.pipeline import DreamPosePipeline

    try:
        return DreamPosePipeline.from_pretrained(ref.pretrained, torch_dtype=dtype)
    except OSError as e:  # not on the hub (or offline), or a damaged folder
        first_line = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(
            f"could not load the model {ref.name!r}: give {MODEL_HELP}, reachable from here "
            f"({e.__class__.__name__}: {first_line})"
        ) from e


# --------------------------------------------------------------------------- DensePose
@dataclass(frozen=True)
class DensePoseOptions:
    """How DensePose runs, the same for every command that runs it (and the app)."""

    backend: str = field(
        default="native",
        metadata={
            "flag": "--pose-backend",
            "choices": BACKENDS,
            "help": "native: this project's port of DensePose; detectron2: detectron2 itself, if "
            "installed; tiny: a tiny random DensePose for offline demos (its poses are noise)",
        },
    )
    detector_size: int = field(
        default=DETECTOR_SIZE,
        metadata={
            "help": "shorter side in pixels the person detector resizes frames to (the model zoo's); "
            "512 is faster and changes the poses noticeably (README)"
        },
    )
    precision: str = field(
        default="fp32",
        metadata={
            "flag": "--pose-precision",
            "choices": PRECISIONS,
            "help": "DensePose arithmetic; fp16 needs CUDA. Half precision moves the detected boxes "
            "(README), so fp32 stays the default",
        },
    )

    def __post_init__(self) -> None:
        if not 32 <= self.detector_size <= MAX_DETECTOR_SIZE:
            raise ValueError(
                f"--detector-size must be 32 to {MAX_DETECTOR_SIZE} pixels; got {self.detector_size}"
            )
        if self.precision != "fp32" and self.backend != "native":
            raise ValueError("--pose-precision fp16/bf16 needs the native backend (--pose-backend native)")

    def extractor_kwargs(self, device: torch.device, batch_size: int) -> dict:
        if self.backend == "tiny":
            return {}
        if self.precision == "fp16" and device.type != "cuda":
            raise ValueError("--pose-precision fp16 needs a CUDA GPU; use fp32 (or bf16) on the CPU")
        # A GPU runs the frames of a batch through the network together; a CPU gains nothing
        # from that and would hold every frame's features at once.
        kwargs = {
            "min_size": self.detector_size,
            "batch_size": max(1, batch_size) if device.type == "cuda" else 1,
        }
        if self.precision != "fp32":
            kwargs[self.precision] = True  # fp16=True or bf16=True
        return kwargs


def load_densepose(
    weights: str | os.PathLike | None = None,
    options: DensePoseOptions = DensePoseOptions(),
    device: str | torch.device | None = None,
    batch_size: int = 8,
    **kwargs,
):
    """The DensePose extractor on the chosen device. ``weights``: a path or URL, else
    ``$DREAMPOSE_DENSEPOSE_WEIGHTS``, else the model zoo file (downloaded once); the tiny
    backend takes none. ``kwargs`` go to the extractor (tests)."""
    from pose_extraction.densepose import load_extractor

    if options.backend != "tiny":
        weights = weights or os.environ.get(DENSEPOSE_WEIGHTS_ENV) or None
    placement = pick_device(device)
    kwargs = {**options.extractor_kwargs(placement.device, batch_size), **kwargs}
    return load_extractor(options.backend, weights, placement.device, **kwargs)
