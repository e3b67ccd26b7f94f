"""Render speed of the full-size DreamPose architecture (random weights, no downloads).

Prints, per frame: counted FLOPs, seconds, MFU (vs 790 TFLOP/s on an H200, or the measured
GEMM peak on a CPU), peak memory, and the pipeline's own overhead: render time minus the
time inside the UNet, VAE, CLIP and adapter forwards (timed by hooks).

    python -m benchmarks.render_speed --device cuda --dtype fp16 --steps 100
    python -m benchmarks.render_speed --device cuda --dtype fp16 --steps 25 --scheduler dpm++ --compile
    python -m benchmarks.render_speed --device cpu --steps 2 --height 256 --width 256   # CPU: small
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers.utils import logging as diffusers_logging

from benchmarks.common import (
    DTYPES,
    ForwardTimer,
    full_size_pipeline,
    gib,
    machine,
    model_forwards,
    peak_flops,
    peak_memory_bytes,
    random_inputs,
    render_flops,
    reset_peak_memory,
    tflop,
    timed,
)
from dreampose.model.schedulers import SAMPLERS, make_scheduler
from dreampose.runtime.speed import SpeedSettings, apply_speed_settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: fp16 on cuda, fp32 on cpu")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--scheduler", choices=list(SAMPLERS), default="pndm")
    p.add_argument("--height", type=int, default=640)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--batch-frames", type=int, default=1, help="frames per UNet call (x3 guidance branches)")
    p.add_argument(
        "--frames", type=int, default=None, help="frames per timed render (default: --batch-frames)"
    )
    p.add_argument("--repeats", type=int, default=1, help="timed renders (the best is reported)")
    p.add_argument(
        "--warmup-steps", type=int, default=None, help="steps of the warm-up render (default: --steps)"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet (compile time is reported)")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--fuse-qkv", action="store_true")
    p.add_argument("--vae-slicing", action="store_true")
    p.add_argument("--vae-tiling", action="store_true")
    p.add_argument("--no-overhead", action="store_true", help="skip the hook timing of model forwards")
    args = p.parse_args(argv)
    args.dtype = args.dtype or ("fp16" if torch.device(args.device).type == "cuda" else "fp32")
    args.frames = args.frames or args.batch_frames
    if args.steps < 1 or args.batch_frames < 1 or args.frames < 1 or args.repeats < 1:
        p.error("--steps, --batch-frames, --frames and --repeats must be at least 1")
    return args


def build(args: argparse.Namespace):
    """The pipeline on its device, with the requested speed settings applied."""
    start = time.perf_counter()
    pipe = full_size_pipeline("cpu", DTYPES[args.dtype]).to(args.device)
    pipe.scheduler = make_scheduler(args.scheduler, pipe.scheduler.config)  # the model's default sampler
    settings = SpeedSettings(
        channels_last=args.channels_last,
        fuse_qkv=args.fuse_qkv,
        compile_unet=args.compile,
        compile_mode=args.compile_mode,
        vae_slicing=args.vae_slicing,
        vae_tiling=args.vae_tiling,
    )
    applied = apply_speed_settings(pipe, settings)
    print(f"built in {time.perf_counter() - start:.1f} s; applied: {', '.join(applied)}")
    return pipe


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    diffusers_logging.set_verbosity_error()  # the cast-to-dtype notices are expected here
    device = torch.device(args.device)
    print(f"machine: {machine()}")
    print(f"config: {vars(args)}")
    flops = render_flops(args.height, args.width, args.steps, args.batch_frames, args.frames)
    peak, peak_note = peak_flops(device, DTYPES[args.dtype])
    pipe = build(args)
    image, poses = random_inputs(args.frames, args.height, args.width)

    def render(steps: int):
        return pipe(
            image,
            poses,
            num_inference_steps=steps,
            height=args.height,
            width=args.width,
            frame_batch_size=args.batch_frames,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )

    # Warm-up: kernel selection, allocator, and (with --compile) compilation.
    warmup, _ = timed(lambda: render(args.warmup_steps or args.steps), device)
    print(f"warm-up render: {warmup:.2f} s" + (" (includes torch.compile)" if args.compile else ""))

    hooks = None if args.no_overhead or args.compile else ForwardTimer(model_forwards(pipe), device)
    reset_peak_memory(device)
    best, best_models = float("inf"), {}
    for _ in range(args.repeats):
        if hooks:
            hooks.reset()
        seconds, out = timed(lambda: render(args.steps), device)
        if seconds < best:
            best, best_models = seconds, dict(hooks.seconds) if hooks else {}
    memory, memory_note = peak_memory_bytes(device)
    report(args, flops, peak, peak_note, best, best_models, memory, memory_note, out.frames)


def report(args, flops, peak, peak_note, seconds, models, memory, memory_note, frames) -> None:
    per_frame = seconds / args.frames
    print(f"FLOPs: UNet step {tflop(flops['unet_per_step'])} (batch {3 * args.batch_frames}), "
          f"VAE decode {tflop(flops['decode_per_batch'])} (batch {args.batch_frames}), "
          f"subject encoding {tflop(flops['encode_per_call'])} per call")  # fmt: skip
    print(f"FLOPs per frame: {tflop(flops['per_frame'])}")
    print(f"time per frame: {per_frame:.3f} s  ({args.frames} frame(s) in {seconds:.2f} s)")
    print(f"achieved: {flops['total'] / seconds / 1e12:.3f} TFLOP/s; MFU {flops['total'] / seconds / peak:.1%} "
          f"of {peak / 1e12:.3f} TFLOP/s ({peak_note})")  # fmt: skip
    print(f"peak memory: {gib(memory)} ({memory_note})")
    if models:
        inside = sum(models.values())
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in models.items() if v)
        print(f"model forwards: {inside:.2f} s ({parts})")
        print(
            f"pipeline overhead: {seconds - inside:.3f} s = {(seconds - inside) / seconds:.2%} of the render"
        )
    print(f"frames finite and uint8: {frames.dtype}, shape {frames.shape}")


if __name__ == "__main__":
    main()
