"""Subject finetuning speed of the full-size architecture (random weights, no downloads).

Times the real training step of ``dreampose.training.finetune`` (UNet + adapter stage, or VAE
decoder stage): forward, backward (gradient checkpointing as configured), gradient
clipping and AdamW. Prints FLOPs per step (counted on the warm-up step, recomputation
included), steps per second, MFU, peak memory, and the paper schedule's projected time
(500 UNet + 1500 decoder steps).

    python -m benchmarks.finetune_speed --device cuda --stage unet --steps 20
    python -m benchmarks.finetune_speed --device cuda --stage unet --lora-rank 16
    python -m benchmarks.finetune_speed --device cpu --stage vae --height 256 --width 256 --steps 2
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from diffusers.utils import logging as diffusers_logging

from benchmarks.common import (
    count_flops,
    full_size_pipeline,
    gib,
    machine,
    peak_flops,
    peak_memory_bytes,
    random_inputs,
    reset_peak_memory,
    synchronize,
    tflop,
)
from dreampose.training.finetune import SubjectPhotos, _Trainer
from dreampose.training.settings import FinetuneSettings

PAPER_STEPS = {"unet": 500, "vae": 1500}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--stage", choices=sorted(PAPER_STEPS), default="unet")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps (the first counts FLOPs)")
    p.add_argument("--height", type=int, default=640)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto")
    p.add_argument("--lora-rank", type=int, default=0)
    p.add_argument("--no-checkpointing", action="store_true", help="disable gradient checkpointing")
    p.add_argument("--photos", type=int, default=4, help="random subject photos")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        p.error("--steps and --warmup must be at least 1")
    return args


def make_trainer(args: argparse.Namespace, output: str) -> _Trainer:
    """dreampose.training.finetune's trainer on the full-size model and random subject photos."""
    pipe = full_size_pipeline("cpu", torch.float32).to(args.device)
    images = np.stack([random_inputs(1, args.height, args.width, seed=i)[0] for i in range(args.photos)])
    uv = np.random.default_rng(0).random((args.photos, 2, args.height, args.width), dtype=np.float32)
    settings = FinetuneSettings(
        height=args.height,
        width=args.width,
        batch_size=args.batch_size,
        mixed_precision=args.mixed_precision,
        lora_rank=args.lora_rank,
        gradient_checkpointing=not args.no_checkpointing,
    )
    trainer = _Trainer(
        pipe, "random-full-size", SubjectPhotos(images, uv), settings, output, None, None, False
    )
    trainer._enter_stage(args.stage)
    return trainer


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    diffusers_logging.set_verbosity_error()
    device = torch.device(args.device)
    print(f"machine: {machine()}")
    print(f"config: {vars(args)}")
    with tempfile.TemporaryDirectory() as output:
        trainer = make_trainer(args, output)
        trained = sum(p.numel() for g in trainer.optimizer.param_groups for p in g["params"])
        print(f"trained parameters: {trained / 1e6:.1f} M; autocast: {trainer.autocast_dtype}")
        flops = count_flops(lambda: trainer._step(args.stage))
        for _ in range(args.warmup - 1):
            trainer._step(args.stage)
        reset_peak_memory(device)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer._step(args.stage)
        synchronize(device)
        seconds = (time.perf_counter() - start) / args.steps
    dtype = trainer.autocast_dtype or torch.float32
    peak, peak_note = peak_flops(device, dtype)
    memory, memory_note = peak_memory_bytes(device)
    print(f"FLOPs per step: {tflop(flops)} (forward, backward, recomputation)")
    print(f"time per step: {seconds:.3f} s = {1 / seconds:.2f} steps/s")
    print(f"MFU: {flops / seconds / peak:.1%} of {peak / 1e12:.3f} TFLOP/s ({peak_note})")
    print(f"peak memory: {gib(memory)} ({memory_note})")
    print(f"paper schedule at this pace: {PAPER_STEPS[args.stage]} {args.stage} steps = "
          f"{PAPER_STEPS[args.stage] * seconds:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
