"""Shared benchmark harness: the full-size DreamPose architecture with random weights.

Random weights cost the same FLOPs, time and memory as the real Stable Diffusion 1.x + CLIP
ViT-B/32 model, so every figure here holds for the released model without downloading it.
Run the scripts from the repository root as modules (``python -m benchmarks.render_speed``).
The helpers count FLOPs with ``torch.utils.flop_counter`` (on the ``meta`` device, so
counting a 640 x 512 render costs nothing), time with device synchronisation, read peak
memory, and split a render's time into model forwards and the pipeline's own overhead.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

from dreampose.model.adapter import adapter_for
from dreampose.model.pipeline import DreamPosePipeline
from dreampose.model.schedulers import SD_SCHEDULER_CONFIG, make_scheduler
from dreampose.model.unet import widen_conv_in

# Dense bf16/fp16 tensor-core peak of one H200 (SXM), the reference for MFU.
H200_PEAK_FLOPS = 790e12
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Stable Diffusion 1.4's UNet (CompVis/stable-diffusion-v1-4, unet/config.json).
SD_UNET_CONFIG = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=768,
    attention_head_dim=8,
    flip_sin_to_cos=True,
    freq_shift=0,
)
# Stable Diffusion 1.x's VAE (vae/config.json).
SD_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)
# openai/clip-vit-base-patch32's vision tower.
CLIP_VIT_B32_CONFIG = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    image_size=224,
    patch_size=32,
    projection_dim=512,
    hidden_act="quick_gelu",
)


# --------------------------------------------------------------------------- models
def full_size_components(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    num_pose_frames: int = 5,
    training_size: tuple[int, int] = (640, 512),
    seed: int = 0,
) -> dict:
    """The six DreamPose components at full SD 1.x size, randomly initialised.

    On ``device="meta"`` nothing is allocated: use it to count FLOPs of any size for free.
    """
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD_UNET_CONFIG)
        vae = AutoencoderKL(**SD_VAE_CONFIG)
        encoder = CLIPVisionModel(CLIPVisionConfig(**CLIP_VIT_B32_CONFIG))
        widen_conv_in(unet, num_pose_frames)
        adapter = adapter_for(encoder, vae, unet, training_size)
    scheduler = make_scheduler("pndm", PNDMScheduler(**SD_SCHEDULER_CONFIG).config)
    modules = {"vae": vae, "image_encoder": encoder, "unet": unet, "adapter": adapter}
    for module in modules.values():
        module.to(dtype=dtype).eval().requires_grad_(False)
    return {**modules, "feature_extractor": CLIPImageProcessor(), "scheduler": scheduler}


def full_size_pipeline(
    device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> DreamPosePipeline:
    """A ready-to-call full-size DreamPose pipeline with random weights (frames are noise)."""
    pipe = DreamPosePipeline(**full_size_components(device, dtype, seed=seed), tiny_random=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def random_inputs(num_frames: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random RGB subject (H, W, 3) and a random UV pose sequence (N, 2, H, W) in [0, 1]."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    poses = rng.random((num_frames, 2, height, width), dtype=np.float32)
    return image, poses


# --------------------------------------------------------------------------- FLOPs
def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations (multiply-add = 2) of ``fn()``, as torch's flop counter sees them."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def render_flops(
    height: int, width: int, steps: int, batch_frames: int = 1, num_frames: int | None = None
) -> dict[str, float]:
    """FLOPs of rendering ``num_frames`` frames, mirroring ``DreamPosePipeline.stream``.

    Counted on the meta device per component: the subject encoding once per call (CLIP and
    the VAE encoder on 2 images, the adapter), then per frame batch ``steps`` UNet calls at
    batch 3 x ``batch_frames`` and one VAE decode. Returns the parts and ``per_frame``.
    """
    num_frames = num_frames or batch_frames
    c = full_size_components("meta")
    unet, vae, encoder, adapter = c["unet"], c["vae"], c["image_encoder"], c["adapter"]
    h, w = height // 8, width // 8
    meta = dict(device="meta")
    clip_in = torch.empty(2, 3, 224, 224, **meta)
    pixels = torch.empty(2, 3, height, width, **meta)

    def encode() -> None:
        tokens = encoder(clip_in).last_hidden_state
        adapter(tokens, vae.encode(pixels).latent_dist.mode())

    unet_in = torch.empty(3 * batch_frames, unet.config.in_channels, h, w, **meta)
    embeds = torch.empty(3 * batch_frames, 50, 768, **meta)
    latents = torch.empty(batch_frames, 4, h, w, **meta)
    parts = {
        "encode_per_call": count_flops(encode),
        "unet_per_step": count_flops(lambda: unet(unet_in, 999, encoder_hidden_states=embeds)),
        "decode_per_batch": count_flops(lambda: vae.decode(latents)),
    }
    batches = -(-num_frames // batch_frames)
    total = parts["encode_per_call"] + batches * (steps * parts["unet_per_step"] + parts["decode_per_batch"])
    return {**parts, "total": total, "per_frame": total / num_frames}


# --------------------------------------------------------------------------- timing
def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work, so wall-clock time measures the work itself."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device | str) -> tuple[float, object]:
    """(seconds, result) of one synchronised call."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


class ForwardTimer:
    """Adds up the wall-clock time spent inside chosen modules' forwards, via hooks.

    The render time minus this is the pipeline's own overhead (scheduler, guidance,
    preprocessing, tensor copies, Python). On a GPU each hook synchronises, which itself
    costs a little; the figure is meant for the CPU overhead target.
    """

    def __init__(self, modules: dict[str, torch.nn.Module], device: torch.device | str):
        self.device = device
        self.seconds = dict.fromkeys(modules, 0.0)
        self.calls = dict.fromkeys(modules, 0)
        self._start: dict[str, float] = {}
        self._handles = []
        for name, module in modules.items():
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name: str):
        def hook(module, args):
            synchronize(self.device)
            self._start[name] = time.perf_counter()

        return hook

    def _post(self, name: str):
        def hook(module, args, output):
            synchronize(self.device)
            self.seconds[name] += time.perf_counter() - self._start.pop(name)
            self.calls[name] += 1

        return hook

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.calls = dict.fromkeys(self.calls, 0)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def model_forwards(pipe: DreamPosePipeline) -> dict[str, torch.nn.Module]:
    """The modules whose forwards count as model work (not pipeline overhead).

    The VAE is hooked by its parts because the pipeline calls ``vae.encode``/``vae.decode``,
    which are methods, not ``forward``. The adapter is a model too (and negligible).
    """
    vae = pipe.vae
    return {
        "unet": pipe.unet,
        "clip": pipe.image_encoder,
        "adapter": pipe.adapter,
        "vae_encoder": vae.encoder,
        "vae_quant_conv": vae.quant_conv,
        "vae_decoder": vae.decoder,
        "vae_post_quant_conv": vae.post_quant_conv,
    }


# --------------------------------------------------------------------------- memory
def reset_peak_memory(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device | str) -> tuple[int, str]:
    """(bytes, what it means): CUDA peak allocated since the last reset, or on the CPU the
    process's peak resident set size over its whole life (Linux ru_maxrss is in KiB)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device), "CUDA max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


# --------------------------------------------------------------------------- peaks
def measured_cpu_gemm_flops(size: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of a square matmul on this CPU: the practical peak we state for CPU MFU.

    A theoretical peak needs the sustained clock, which a VM does not report reliably.
    """
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up: thread pool, caches
    best = min(timed(lambda: a @ b, "cpu")[0] for _ in range(repeats))
    return 2 * size**3 / best


def peak_flops(device: torch.device | str, dtype: torch.dtype) -> tuple[float, str]:
    """(FLOP/s, description) used as the MFU denominator on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if "H200" not in name:
            print(f"warning: MFU is stated against an H200's 790 TFLOP/s, but this is {name}")
        return H200_PEAK_FLOPS, "H200 dense bf16/fp16 790 TFLOP/s"
    peak = measured_cpu_gemm_flops(dtype=dtype)
    return peak, f"measured best {str(dtype).removeprefix('torch.')} 2048^3 GEMM on this CPU"


def machine() -> str:
    """One line naming the machine, for RESULTS.md."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} / torch {torch.__version__}"
    return (
        f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads / torch {torch.__version__}"
    )


# --------------------------------------------------------------------------- printing
def tflop(flops: float) -> str:
    return f"{flops / 1e12:.3f} TFLOP"


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"


@contextmanager
def section(title: str) -> Iterator[None]:
    print(f"== {title}", flush=True)
    yield
    print(flush=True)
