"""`dreampose train`: base training of UNet + adapter on a video dataset (phase 1).

Run it under accelerate for several GPUs or machines:
``accelerate launch --num_processes 2 -m dreampose train --model ... --dataset ...``.
"""

from __future__ import annotations

import argparse

from dreampose.base.arguments import add_settings_arguments, settings_from_args
from dreampose.training.settings import TrainSettings


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
    add_settings_arguments(parser, TrainSettings)
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --output"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreampose.training.train import train

    settings = settings_from_args(TrainSettings, args)

    def report(step: int, loss: float) -> None:
        print(f"step {step}: loss {loss:.4f}", flush=True)

    result = train(args.model, args.dataset, args.output, settings, resume=args.resume, on_step=report)
    print(f"trained model written to {result.output / 'model'}")
    return 0
