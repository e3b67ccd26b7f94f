"""One prepared GPU check: is the CUDA path right, and how fast and how large is it?

On a machine with one CUDA GPU this runs in about 8 minutes and prints one Markdown table
(also written to ``--out``): (a) correctness of the CUDA path against the CPU and the plain
path, (b) the figures of the performance targets. It needs no network: random weights (the
full-size architecture from ``benchmarks.common``, and the tiny model), and the DensePose
parity fixture's weights, regenerated from ``--parity`` (a copy of ../shared/densepose-parity).
Each part runs on its own: a failure or a missing package is written in its row (FAIL or SKIP
with the reason) and the run goes on. Parts past ``--budget-s`` are skipped, saying so.

What the GPU machine lacks beyond PyTorch, transformers, accelerate and peft, as wheels
(pure Python; download here into the ignored folder .whl/):

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        -d .whl diffusers==0.42.1 importlib_metadata

The command there (repository root; carry `.whl` and `.gpu`, where `.gpu/densepose-parity` is a
copy of ../shared/densepose-parity without its README):

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \\
        && export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 \\
        && python3 -m benchmarks.gpu_check --parity .gpu/densepose-parity --out $OUT/gpu_check.md

``--cpu-smoke`` runs every part at tiny sizes, one step each, on the CPU (the test suite does,
so the script is known to run before GPU time is spent on it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import (
    H200_PEAK_FLOPS,
    full_size_pipeline,
    gib,
    machine,
    peak_memory_bytes,
    random_inputs,
    render_flops,
    reset_peak_memory,
    synchronize,
)
from dreampose.model.tiny import tiny_pipeline
from dreampose.rendering.frames import render_frames
from dreampose.rendering.settings import RenderSettings
from dreampose.runtime.speed import (
    SpeedSettings,
    apply_speed_settings,
    auto_frame_batch,
    default_speed_settings,
)

SHARED = Path(os.environ.get("DREAMPOSE_SHARED") or Path(__file__).resolve().parents[2] / "shared")
TARGETS = {  # the targets on one H200
    "render_100": 0.8,  # s/frame, 100 PNDM steps, 640 x 512
    "render_25": 0.25,  # s/frame, 25 DPM-Solver++ steps
    "finetune_s": 60.0,  # 500 UNet + 1500 VAE decoder steps
    "densepose_fps": 30.0,
    "render_gib": 6.0,  # peak GPU memory, fp16, batch 1
    "finetune_gib": 24.0,
    "lora_gib": 12.0,
}


@dataclass
class Row:
    part: str
    status: str  # ok, FAIL, SKIP
    figures: str


@dataclass(frozen=True)
class Plan:
    """Sizes and devices of one run: the real check, or the CPU smoke test."""

    device: str
    half: torch.dtype  # fp16 on GPUs; bf16 in the CPU smoke (no fp16 kernels there)
    height: int
    width: int
    steps: tuple[int, int]  # the paper's and the fast preset's
    frames: int  # rendered per figure
    finetune_steps: int
    densepose_frames: int
    full_size: bool
    parity: Path  # the DensePose parity fixture (its make_weights.py and images)
    detector_size: int = 800  # DensePose's, as the model zoo

    @classmethod
    def for_args(cls, args) -> Plan:
        if args.cpu_smoke:
            return cls("cpu", torch.bfloat16, 64, 64, (1, 1), 1, 1, 1, False, args.parity, detector_size=320)
        return cls("cuda", torch.float16, 640, 512, (100, 25), 2, 5, 16, True, args.parity)


class Check:
    def __init__(self, plan: Plan, budget_s: float) -> None:
        self.plan, self.budget_s = plan, budget_s
        self.rows: list[Row] = []
        self.start = time.monotonic()

    def part(self, name: str, fn: Callable[[], str]) -> None:
        """Run one part; its row says what it found, or why it failed or was skipped."""
        if time.monotonic() - self.start > self.budget_s:
            self.rows.append(Row(name, "SKIP", f"over the {self.budget_s:.0f} s budget"))
        else:
            t0 = time.monotonic()
            try:
                figures = fn()
                self.rows.append(Row(name, "ok", f"{figures} ({time.monotonic() - t0:.0f} s)"))
            except Skip as e:
                self.rows.append(Row(name, "SKIP", str(e)))
            except Exception as e:  # reported in the table; the other parts still run
                traceback.print_exc()
                self.rows.append(Row(name, "FAIL", f"{type(e).__name__}: {str(e)[:300]}"))
            finally:
                _free_memory()
        row = self.rows[-1]
        print(
            f"[{time.monotonic() - self.start:6.0f} s] {row.status:4} {row.part}: {row.figures}", flush=True
        )

    def table(self) -> str:
        lines = [
            f"machine: {machine()}; torch {torch.__version__}; total {time.monotonic() - self.start:.0f} s",
            "",
            "| part | status | figures |",
            "|---|---|---|",
        ]
        lines += [f"| {r.part} | {r.status} | {r.figures.replace('|', '/')} |" for r in self.rows]
        return "\n".join(lines) + "\n"


class Skip(Exception):
    """A part that cannot run here (a missing package, no fixture)."""


def _free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- (a) correctness
def tiny_render(plan: Plan, device: str, dtype: torch.dtype, speed=None, offload=False, turbo=None):
    """Final latents and frames of a short seeded render of the tiny model."""
    pipe = tiny_pipeline(seed=0)
    if offload:
        pipe.to(dtype=dtype)
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device=device, dtype=dtype)
    apply_speed_settings(pipe, speed or SpeedSettings())
    image, poses = random_inputs(2, 64, 64)
    latents = {}

    def keep(_pipe, _step, _t, state):
        for i, index in enumerate(state["frame_indices"]):
            latents[index] = state["latents"][i].float().cpu().clone()

    out = pipe(
        image, poses, num_inference_steps=4, height=64, width=64, frame_batch_size=2, output_type="np",
        generator=torch.Generator().manual_seed(3), callback_on_step_end=keep, turbo=turbo,
    )  # fmt: skip
    return torch.stack([latents[i] for i in sorted(latents)]), out.frames.astype(np.float32)


def difference(a, b) -> str:
    (la, fa), (lb, fb) = a, b
    rel = float((la - lb).norm() / lb.norm())
    return f"latents rel {rel:.2e}, frames max {np.abs(fa - fb).max():.0f} / mean {np.abs(fa - fb).mean():.2f} grey"


def render_against_cpu(plan: Plan, dtype: torch.dtype) -> str:
    reference = tiny_render(plan, "cpu", torch.float32)
    result = tiny_render(plan, plan.device, dtype)
    assert np.isfinite(result[1]).all(), "non-finite frames"
    return difference(result, reference)


def offload_render(plan: Plan) -> str:
    if plan.device == "cpu":
        raise Skip("CPU offload needs a GPU")
    plain = tiny_render(plan, plan.device, plan.half)
    return difference(tiny_render(plan, plan.device, plan.half, offload=True), plain)


def speed_settings_render(plan: Plan) -> str:
    plain = tiny_render(plan, plan.device, plan.half)
    settings = default_speed_settings("cuda")  # what CUDA renders get by default
    return f"{settings.describe()}: " + difference(tiny_render(plan, plan.device, plan.half, settings), plain)


def turbo_render(plan: Plan) -> str:
    plain = tiny_render(plan, plan.device, plan.half)
    exact = tiny_render(plan, plan.device, plan.half, turbo=1)
    assert torch.equal(exact[0], plain[0]), "turbo 1 must be the plain sampler"
    return "turbo 1 exact; turbo 3: " + difference(tiny_render(plan, plan.device, plan.half, turbo=3), plain)


def finetune_steps(plan: Plan, lora_rank: int = 0, use_8bit_adam: bool = False) -> str:
    from dreampose.training.finetune import finetune
    from dreampose.training.settings import FinetuneSettings

    if use_8bit_adam and importlib.util.find_spec("bitsandbytes") is None:
        raise Skip("bitsandbytes is not installed")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    uv = np.zeros((1, 2, 64, 64), np.float32)
    uv[0, :, 10:54, 20:44] = rng.uniform(0.1, 1, (2, 44, 24))
    from pose_extraction.pose_sequence import PoseSequence

    settings = FinetuneSettings(
        unet_steps=2, vae_steps=2, height=64, width=64, lora_rank=lora_rank, use_8bit_adam=use_8bit_adam
    )
    with tempfile.TemporaryDirectory() as out:
        result = finetune(tiny_pipeline(0), [image], out, poses=PoseSequence.from_uv(uv), settings=settings,
                          device=plan.device)  # fmt: skip
        losses = result.losses["unet"] + result.losses["vae"]
        assert all(np.isfinite(losses)), f"non-finite losses {losses}"
        saved = sorted(p.name for p in Path(out).iterdir())
    return f"losses {', '.join(f'{x:.3f}' for x in losses)}; wrote {', '.join(saved)}"


def densepose_precision(plan: Plan) -> str:
    from benchmarks.densepose_agreement import compare_settings, extractor, summary

    model = _parity_model(plan)
    image = _parity_image(plan)
    size = plan.detector_size
    reference = extractor(model, "cpu", size)
    same = compare_settings(reference, extractor(model, plan.device, size), image, 1)
    figures = [f"{plan.device} fp32 vs cpu fp32: {summary(same)}"]
    for precision in ("fp16", "bf16") if plan.device == "cuda" else ("bf16",):
        other = extractor(model, plan.device, size, precision=precision)
        head = summary(compare_settings(reference, other, image, 1, head_only=True))
        whole = summary(compare_settings(reference, other, image, 1))
        figures.append(f"{precision} head only: {head}; whole network: {whole}")
    return " || ".join(figures)


# --------------------------------------------------------------------------- (b) figures
def render_figures(plan: Plan, steps: int, scheduler: str, turbo=None, batch="1", compile_unet=False) -> str:
    if compile_unet and not plan.full_size:
        raise Skip("compile on the CPU is checked by tests/test_optimize.py (minutes of inductor)")
    pipe = _full_pipe(plan)
    speed = default_speed_settings("cuda", compile=compile_unet) if plan.device == "cuda" else SpeedSettings()
    apply_speed_settings(pipe, speed)
    frame_batch = 1 if batch == "1" else auto_frame_batch(pipe, plan.height, plan.width)
    frames = max(plan.frames, frame_batch)
    image, poses = random_inputs(frames, plan.height, plan.width)
    settings = RenderSettings(
        num_inference_steps=steps, scheduler=scheduler, height=plan.height, width=plan.width,
        frame_batch_size=frame_batch, turbo=turbo,
    )  # fmt: skip
    warm = time.perf_counter()
    render_frames(
        pipe, image, poses, replace(settings, num_inference_steps=2), frames=list(range(frame_batch))
    )
    synchronize(plan.device)
    warm = time.perf_counter() - warm
    reset_peak_memory(plan.device)
    start = time.perf_counter()
    render_frames(pipe, image, poses, settings)
    synchronize(plan.device)
    per_frame = (time.perf_counter() - start) / frames
    memory, _ = peak_memory_bytes(plan.device)
    line = f"{per_frame:.3f} s/frame, batch {frame_batch}, peak {gib(memory)}"
    if plan.full_size:  # FLOPs of the plain sampler: for turbo rows an effective MFU
        flops = render_flops(plan.height, plan.width, steps, frame_batch, frames)["per_frame"]
        line += f", MFU {flops / per_frame / H200_PEAK_FLOPS:.1%} of 790 TFLOP/s"
    target = TARGETS["render_100" if steps >= 100 else "render_25"]
    if plan.full_size and turbo is None:
        line += f"; target <= {target} s: {'met' if per_frame <= target else 'missed'}"
    return line + (f"; warm-up {warm:.0f} s (compile)" if compile_unet else "")


def render_memory(plan: Plan, dtype: torch.dtype) -> str:
    pipe = _full_pipe(plan, dtype)
    image, poses = random_inputs(1, plan.height, plan.width)
    settings = RenderSettings(num_inference_steps=2, height=plan.height, width=plan.width, frame_batch_size=1)
    reset_peak_memory(plan.device)
    render_frames(pipe, image, poses, settings)
    memory, note = peak_memory_bytes(plan.device)
    met = "met" if memory / 2**30 <= TARGETS["render_gib"] else "missed"
    return f"peak {gib(memory)} ({note}); target <= {TARGETS['render_gib']} GiB: {met}"


def finetune_figures(plan: Plan, stage: str, lora_rank: int = 0) -> str:
    from benchmarks.finetune_speed import PAPER_STEPS, make_trainer

    args = argparse.Namespace(
        device=plan.device, height=plan.height, width=plan.width, batch_size=1, mixed_precision="auto",
        lora_rank=lora_rank, no_checkpointing=False, photos=2,
    )  # fmt: skip
    if not plan.full_size:
        args.height = args.width = 64
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(args, out) if plan.full_size else _tiny_trainer(args, out, stage)
        trainer._enter_stage(stage)
        trainer._step(stage)  # warm-up
        reset_peak_memory(plan.device)
        synchronize(plan.device)
        start = time.perf_counter()
        for _ in range(plan.finetune_steps):
            trainer._step(stage)
        synchronize(plan.device)
        seconds = (time.perf_counter() - start) / plan.finetune_steps
    memory, _ = peak_memory_bytes(plan.device)
    limit = TARGETS["lora_gib" if lora_rank else "finetune_gib"]
    return (
        f"{1 / seconds:.2f} steps/s; {PAPER_STEPS[stage]} steps = {PAPER_STEPS[stage] * seconds:.0f} s; "
        f"peak {gib(memory)} (target <= {limit} GiB: {'met' if memory / 2**30 <= limit else 'missed'})"
    )


def densepose_figures(plan: Plan, precision: str) -> str:
    from benchmarks.densepose_agreement import extractor
    from benchmarks.densepose_speed import frames_per_second

    if precision == "fp16" and plan.device != "cuda":
        raise Skip("fp16 DensePose needs a GPU")
    model = _parity_model(plan)
    dp = extractor(model, plan.device, plan.detector_size, precision=precision)
    dp.batch_size = 8 if plan.device == "cuda" else 1
    fps, detections, _ = frames_per_second(dp, _parity_image(plan), plan.densepose_frames, "boxes-first")
    met = "met" if fps >= TARGETS["densepose_fps"] else "missed"
    return (
        f"{fps:.1f} frames/s at {plan.detector_size} px, {detections:.0f} detections/frame (random weights "
        f"detect more people than real ones); target >= 30: {met}"
    )


# --------------------------------------------------------------------------- helpers
def _full_pipe(plan: Plan, dtype: torch.dtype | None = None):
    """The full-size pipeline (the tiny one in the smoke test) on the device, made anew each time
    (compile and speed settings change it in place)."""
    dtype = dtype or (torch.bfloat16 if plan.device == "cuda" else torch.float32)
    pipe = full_size_pipeline("cpu", dtype) if plan.full_size else tiny_pipeline(0).to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(plan.device)


def _tiny_trainer(args, out, stage):
    from dreampose.training.finetune import SubjectPhotos, _Trainer
    from dreampose.training.settings import FinetuneSettings

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    uv = rng.random((2, 2, 64, 64), dtype=np.float32)
    settings = FinetuneSettings(height=64, width=64, lora_rank=args.lora_rank, mixed_precision="no")
    return _Trainer(tiny_pipeline(0).to(args.device), "tiny", SubjectPhotos(images, uv), settings, Path(out),
                    None, None, False)  # fmt: skip


_PARITY_MODEL: dict = {}


def _parity_model(plan: Plan):
    from pose_extraction.densepose import DensePoseExtractor

    if "model" not in _PARITY_MODEL:
        script = plan.parity / "make_weights.py"
        if not script.is_file():
            raise Skip(f"no DensePose parity fixture at {script.parent} (--parity)")
        with tempfile.TemporaryDirectory() as folder:  # 256 MB, regenerated, never kept
            weights = Path(folder) / "weights.pkl"
            subprocess.run(
                [sys.executable, str(script), "--out", str(weights)], check=True, capture_output=True
            )
            _PARITY_MODEL["model"] = DensePoseExtractor.from_pretrained(str(weights), progress=False).model
    return _PARITY_MODEL["model"]


def _parity_image(plan: Plan) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(plan.parity / "person_landscape.png").convert("RGB"))


# --------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("gpu_check.md"), help="where to write the table")
    p.add_argument(
        "--parity", type=Path, default=SHARED / "densepose-parity", help="the DensePose parity fixture"
    )
    p.add_argument("--budget-s", type=float, default=480.0, help="skip parts that would start after this")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes, one step each, on the CPU")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    plan = Plan.for_args(args)
    if plan.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here; use --cpu-smoke to check the script on the CPU")
    with contextlib.suppress(ImportError):
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
    check = Check(plan, args.budget_s)
    paper, fast = plan.steps
    half = "fp16" if plan.half == torch.float16 else "bf16"
    # (a) correctness
    check.part(f"tiny render {plan.device} {half} vs cpu fp32", lambda: render_against_cpu(plan, plan.half))
    if plan.half != torch.bfloat16:
        check.part(
            f"tiny render {plan.device} bf16 vs cpu fp32", lambda: render_against_cpu(plan, torch.bfloat16)
        )
    check.part("tiny render --cpu-offload vs plain", lambda: offload_render(plan))
    check.part("tiny render, CUDA speed defaults vs plain", lambda: speed_settings_render(plan))
    check.part("tiny render, turbo vs plain", lambda: turbo_render(plan))
    check.part("finetune 2+2 steps, full", lambda: finetune_steps(plan))
    check.part("finetune 2+2 steps, LoRA 8", lambda: finetune_steps(plan, lora_rank=8))
    check.part("finetune 2+2 steps, 8-bit Adam", lambda: finetune_steps(plan, use_8bit_adam=True))
    check.part("DensePose precision on a parity image", lambda: densepose_precision(plan))
    # (b) figures
    check.part(f"render {paper} PNDM, batch 1", lambda: render_figures(plan, paper, "pndm"))
    check.part(f"render {fast} DPM++, batch 1", lambda: render_figures(plan, fast, "dpm++"))
    check.part(f"render {paper} PNDM, auto batch", lambda: render_figures(plan, paper, "pndm", batch="auto"))
    check.part(f"render {fast} DPM++, auto batch", lambda: render_figures(plan, fast, "dpm++", batch="auto"))
    check.part(f"render {paper} PNDM, turbo 3", lambda: render_figures(plan, paper, "pndm", turbo=3))
    check.part(f"render {fast} DPM++, turbo 3", lambda: render_figures(plan, fast, "dpm++", turbo=3))
    check.part(f"render peak memory, {half}, batch 1", lambda: render_memory(plan, plan.half))
    check.part("finetune UNet + adapter, full", lambda: finetune_figures(plan, "unet"))
    check.part("finetune UNet, LoRA 16", lambda: finetune_figures(plan, "unet", lora_rank=16))
    check.part("finetune VAE decoder", lambda: finetune_figures(plan, "vae"))
    check.part("DensePose fp32, boxes first", lambda: densepose_figures(plan, "fp32"))
    check.part("DensePose fp16, boxes first", lambda: densepose_figures(plan, "fp16"))
    check.part(
        f"render {paper} PNDM, compiled, batch 1",
        lambda: render_figures(plan, paper, "pndm", compile_unet=True),
    )
    check.part(
        f"render {fast} DPM++, compiled, batch 1",
        lambda: render_figures(plan, fast, "dpm++", compile_unet=True),
    )
    table = check.table()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)
    return 1 if any(r.status == "FAIL" for r in check.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
