"""Turbo (DeepCache, dreampose/turbo.py) against the plain sampler, and the fast preset against the paper's.

1. Full-size SD 1.x architecture (random weights, ``benchmarks.common``) at a small canvas:
   wall time of whole renders, plain and turbo alternating in one run (so both see the same
   machine load), the denoising time (render minus the VAE/CLIP forwards, timed by hooks), and
   the drift of turbo's final latents and decoded frames from the plain render's.
2. Counted FLOPs of a full and of a cached UNet call at the benchmark size and at 640 x 512
   (meta device, free): the speed-up turbo could give if time followed FLOPs.
3. Tiny random model (``dreampose.model.tiny``), 64 x 64: drift of the fast preset (25 DPM-Solver++
   steps) and of turbo at the paper's 100 PNDM steps from 100 PNDM steps, next to the drift a
   different seed gives (the scale of "a different picture").

Random weights make the time and FLOP figures those of the real model; the drift figures are
not: DeepCache relies on a trained UNet's deep features changing slowly between steps, which
random weights need not do. Real-model drift needs the released weights.

    python -m benchmarks.turbo_speed                                   # about 5 min on 2 CPU cores
    python -m benchmarks.turbo_speed --steps 4 --repeats 1 --intervals 2   # quicker
    python -m benchmarks.turbo_speed --skip-full-size                  # FLOPs and tiny-model drift only
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from diffusers.utils import logging as diffusers_logging

from benchmarks.common import (
    ForwardTimer,
    count_flops,
    full_size_components,
    full_size_pipeline,
    machine,
    model_forwards,
    random_inputs,
    tflop,
)
from dreampose.model.schedulers import SAMPLERS, make_scheduler
from dreampose.model.turbo import DeepCacheUNet


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--steps", type=int, default=10, help="denoising steps of the full-size renders")
    p.add_argument("--scheduler", choices=list(SAMPLERS), default="pndm")
    p.add_argument("--intervals", type=int, nargs="+", default=[3], help="turbo intervals to time")
    p.add_argument("--repeats", type=int, default=2, help="plain/turbo pairs timed (alternating)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--skip-full-size", action="store_true", help="only the FLOP counts and the tiny model")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- measures
def latent_drift(latents: torch.Tensor, reference: torch.Tensor) -> float:
    """Relative L2 distance ||a - b|| / ||b|| of final latents."""
    return float((latents.float() - reference.float()).norm() / reference.float().norm())


def frame_drift(frames: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(mean absolute difference in grey levels 0-255, PSNR in dB) of uint8 frames."""
    diff = frames.astype(np.float64) - reference.astype(np.float64)
    mse = float((diff**2).mean())
    psnr = float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)
    return float(np.abs(diff).mean()), psnr


def render(pipe, image, poses, height, width, steps, seed=0, turbo=None):
    """(final latents, uint8 frames) of one render (the pipeline's turbo uses branch 0)."""
    final = {}

    def keep(_pipe, _step, _t, state):
        final["latents"] = state["latents"].clone()

    out = pipe(
        image,
        poses,
        num_inference_steps=steps,
        height=height,
        width=width,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
        callback_on_step_end=keep,
        turbo=turbo,
    )
    return final["latents"], out.frames


# --------------------------------------------------------------------------- 1. full size
def full_size(args: argparse.Namespace) -> None:
    print(f"== full-size SD 1.x architecture, random weights, {args.height} x {args.width}, "
          f"{args.steps} {args.scheduler} steps, 1 frame, turbo branch 0", flush=True)  # fmt: skip
    start = time.perf_counter()
    pipe = full_size_pipeline("cpu", torch.float32)
    pipe.scheduler = make_scheduler(args.scheduler, pipe.scheduler.config)  # the model's default sampler
    print(f"built in {time.perf_counter() - start:.1f} s", flush=True)
    image, poses = random_inputs(1, args.height, args.width)
    hooks = ForwardTimer({k: v for k, v in model_forwards(pipe).items() if k != "unet"}, "cpu")

    def timed_render(turbo):
        hooks.reset()
        t0 = time.perf_counter()
        latents, frames = render(pipe, image, poses, args.height, args.width, args.steps, turbo=turbo)
        seconds = time.perf_counter() - t0
        return seconds, seconds - hooks.total, latents, frames

    render(pipe, image, poses, args.height, args.width, 1)  # warm-up: allocator, oneDNN kernels
    unet_call_times(pipe, args)
    rows: dict[str | int, list[tuple[float, float]]] = {"plain": [], **{k: [] for k in args.intervals}}
    outputs = {}
    for repeat in range(args.repeats):
        for setting in ["plain", *args.intervals]:  # alternate, so load changes hit both alike
            seconds, denoise, latents, frames = timed_render(None if setting == "plain" else setting)
            rows[setting].append((seconds, denoise))
            outputs[setting] = (latents, frames)
            print(f"  repeat {repeat + 1}, {setting}: render {seconds:.2f} s, denoising {denoise:.2f} s",
                  flush=True)  # fmt: skip
    plain_latents, plain_frames = outputs["plain"]
    plain_render = np.median([r[0] for r in rows["plain"]])
    plain_denoise = np.median([r[1] for r in rows["plain"]])
    print(f"{'setting':<10}{'render s':>10}{'denoise s':>11}{'render x':>10}{'denoise x':>11}"
          f"{'latent drift':>14}{'frame |d|':>11}{'PSNR dB':>9}")  # fmt: skip
    for setting, timings in rows.items():
        render_s = np.median([r[0] for r in timings])
        denoise_s = np.median([r[1] for r in timings])
        latents, frames = outputs[setting]
        mean_abs, psnr = frame_drift(frames, plain_frames)
        print(f"{str(setting):<10}{render_s:>10.2f}{denoise_s:>11.2f}{plain_render / render_s:>10.2f}"
              f"{plain_denoise / denoise_s:>11.2f}{latent_drift(latents, plain_latents):>14.4f}"
              f"{mean_abs:>11.2f}{psnr:>9.1f}")  # fmt: skip
    print("(medians over the repeats; x = speed-up over plain; drift = relative L2 of the final latents)")
    print()


def unet_call_times(pipe, args: argparse.Namespace, repeats: int = 3) -> None:
    """Best-of-``repeats`` seconds of one full and one cached UNet call (the best resists load)."""
    h, w = args.height // 8, args.width // 8
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(3, pipe.unet.config.in_channels, h, w, generator=g)
    context = torch.randn(3, 50, pipe.unet.config.cross_attention_dim, generator=g)
    turbo = DeepCacheUNet(pipe.unet, interval=repeats + 1)
    full, cached = [], []
    with torch.no_grad():
        for _ in range(repeats):
            turbo.reset()
            t0 = time.perf_counter()
            turbo(sample, 999, context)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            turbo(sample, 979, context)
            cached.append(time.perf_counter() - t0)
    ratio = min(cached) / min(full)
    ideal = " / ".join(f"{k / (1 + (k - 1) * ratio):.2f}" for k in (2, 3, 5))
    print(f"UNet call, batch 3, best of {repeats}: full {min(full):.2f} s, cached {min(cached):.3f} s "
          f"(ratio {ratio:.3f}); UNet speed-up this implies at interval 2 / 3 / 5: {ideal}", flush=True)  # fmt: skip


# --------------------------------------------------------------------------- 2. FLOPs
def flops(args: argparse.Namespace) -> None:
    print("== counted FLOPs per UNet call, batch 3 (dual guidance, 1 frame), meta device", flush=True)
    unet = full_size_components("meta")["unet"]
    sizes = {(args.height, args.width), (640, 512)}
    print(f"{'size':<11}{'branch':>7}{'full':>14}{'cached':>14}{'cached/full':>13}"
          f"{'ideal x, interval 2 / 3 / 5':>30}")  # fmt: skip
    for height, width in sorted(sizes):
        h, w = height // 8, width // 8
        sample = torch.empty(3, unet.config.in_channels, h, w, device="meta")
        context = torch.empty(3, 50, unet.config.cross_attention_dim, device="meta")
        for branch in (0, 3, 6):
            turbo = DeepCacheUNet(unet, interval=2, branch=branch)
            full = count_flops(lambda t=turbo, x=sample, c=context: t(x, 999, c))
            cached = count_flops(lambda t=turbo, x=sample, c=context: t(x, 979, c))
            ideal = [k / (1 + (k - 1) * cached / full) for k in (2, 3, 5)]
            print(f"{f'{height}x{width}':<11}{branch:>7}{tflop(full):>14}{tflop(cached):>14}{cached / full:>13.3f}"
                  f"{' / '.join(f'{x:.2f}' for x in ideal):>30}")  # fmt: skip
    print("(ideal x: UNet-time speed-up if time followed FLOPs, ignoring the VAE and the first step)")
    print()


# --------------------------------------------------------------------------- 3. tiny model
def tiny(args: argparse.Namespace) -> None:
    from dreampose.model.tiny import tiny_pipeline

    print("== tiny random model, 64 x 64, 2 frames: drift from 100 PNDM steps (the paper's sampler)")
    pipe = tiny_pipeline()
    image, poses = random_inputs(2, 64, 64)
    results = {}
    for name, scheduler, steps, turbo, seed in [
        ("100 PNDM (reference)", "pndm", 100, None, 0),
        ("100 PNDM, other seed", "pndm", 100, None, 1),
        ("25 DPM++ (fast preset)", "dpm++", 25, None, 0),
        ("50 PNDM", "pndm", 50, None, 0),
        ("100 PNDM, turbo 2", "pndm", 100, 2, 0),
        ("100 PNDM, turbo 3", "pndm", 100, 3, 0),
        ("100 PNDM, turbo 5", "pndm", 100, 5, 0),
        ("25 DPM++, turbo 3", "dpm++", 25, 3, 0),
    ]:
        pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)  # the model's default sampler
        t0 = time.perf_counter()
        latents, frames = _render_frames(pipe, image, poses, steps, seed, turbo)
        results[name] = (latents, frames, time.perf_counter() - t0)
    ref_latents, ref_frames, _ = results["100 PNDM (reference)"]
    print(f"{'setting':<26}{'latent drift':>14}{'frame |d|':>11}{'PSNR dB':>9}{'seconds':>9}")
    for name, (latents, frames, seconds) in results.items():
        mean_abs, psnr = frame_drift(frames, ref_frames)
        print(
            f"{name:<26}{latent_drift(latents, ref_latents):>14.4f}{mean_abs:>11.2f}{psnr:>9.1f}{seconds:>9.2f}"
        )
    print()


def _render_frames(pipe, image, poses, steps, seed, turbo):
    final = {}

    def keep(_pipe, _step, _t, state):
        for i, index in enumerate(state["frame_indices"]):
            final[index] = state["latents"][i].clone()

    out = pipe(
        image,
        poses,
        num_inference_steps=steps,
        height=64,
        width=64,
        frame_batch_size=2,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
        callback_on_step_end=keep,
        turbo=turbo,
    )
    return torch.stack([final[i] for i in out.frame_indices]), out.frames


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    diffusers_logging.set_verbosity_error()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print(f"config: {vars(args)}")
    print()
    flops(args)
    tiny(args)
    if not args.skip_full_size:
        full_size(args)


if __name__ == "__main__":
    main()
