"""`dreampose train`: base training of UNet + adapter on a video dataset (phase 1).

Run it under accelerate for several GPUs or machines:
``accelerate launch --num_processes 2 -m dreampose train --model ... --dataset ...``.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the base model (UNet + adapter) on a dataset of videos with poses",
        description=(
            "Phase 1 of DreamPose: train UNet + adapter on frame pairs of many videos with condition "
            "dropout. Layout of --dataset: one folder per video with frames/ and poses.npz "
            "(see `dreampose prepare-dataset`). Use `accelerate launch -m dreampose train ...` for "
            "several GPUs; --batch-size is per GPU."
        ),
    )
    parser.add_argument("--model", required=True, help="DreamPose or Stable Diffusion 1.x folder or hub id")
    parser.add_argument("--dataset", required=True, help="dataset folder (one folder per video)")
    parser.add_argument("--output", required=True, help="folder for checkpoints, logs, samples and model/")
    parser.add_argument("--image-encoder", default="openai/clip-vit-base-patch32")
    parser.add_argument("--height", type=int, default=640)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4, help="per device")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=5e-6)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-steps", type=int, help="optimiser steps (overrides --epochs)")
    parser.add_argument("--pose-dropout", type=float, default=0.05)
    parser.add_argument("--image-dropout", type=float, default=0.05)
    parser.add_argument("--both-dropout", type=float, default=0.05)
    parser.add_argument("--crop-scale", type=float, help="aligned random crop down to this scale (e.g. 0.8)")
    parser.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    parser.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    parser.add_argument("--8bit-adam", dest="use_8bit_adam", action="store_true", help="needs bitsandbytes")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--keep-checkpoints", type=int, default=2)
    parser.add_argument("--sample-every", type=int, default=500, help="0: no sample frames")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --output"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreampose.training.augment import CropScale
    from dreampose.training.losses import ConditionDropout
    from dreampose.training.train import TrainSettings, train

    settings = TrainSettings(
        height=args.height,
        width=args.width,
        batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        max_steps=args.max_steps,
        dropout=ConditionDropout(args.pose_dropout, args.image_dropout, args.both_dropout),
        crop=CropScale(args.crop_scale, 1.0) if args.crop_scale else None,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        use_8bit_adam=args.use_8bit_adam,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        sample_every=args.sample_every,
        num_workers=args.num_workers,
        seed=args.seed,
        image_encoder=args.image_encoder,
    )

    def report(step: int, loss: float) -> None:
        print(f"step {step}: loss {loss:.4f}", flush=True)

    result = train(args.model, args.dataset, args.output, settings, resume=args.resume, on_step=report)
    print(f"trained model written to {result.output / 'model'}")
    return 0
