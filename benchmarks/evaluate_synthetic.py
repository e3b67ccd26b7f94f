"""A model and a test set for trying `dreampose evaluate` on a CPU in minutes.

Builds what ``benchmarks/synthetic_learning.py`` builds (textured figures sliding across a
grey canvas with exact pose maps, 64 x 64; the tiny VAE trained as an autoencoder, then
phase 1 with ``dreampose.training.train.train``) and keeps it in ``--workdir``:

- ``WORKDIR/model``: the phase-1 model (a DreamPose model folder, usable as --model)
- ``WORKDIR/test``: held-out test videos in the training layout, long enough for the
  protocol (input frame 0, frames from 2 on, 16-frame FVD clips)

then prints the `dreampose evaluate` commands that score it before and after subject
finetuning. Run: ``python -m benchmarks.evaluate_synthetic --workdir /tmp/synthetic-eval``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.synthetic_learning import SIZE, make_video, phase1_settings, pretrain_vae, write_dataset
from dreampose.model.tiny import tiny_pipeline
from dreampose.training.train import train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--train-videos", type=int, default=24)
    parser.add_argument("--test-videos", type=int, default=4)
    parser.add_argument("--test-frames", type=int, default=20, help="frames per test video")
    parser.add_argument("--vae-steps", type=int, default=300)
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    rng = np.random.default_rng(args.seed)
    train_videos = [make_video(rng, 8) for _ in range(args.train_videos)]
    test_videos = [make_video(rng, args.test_frames) for _ in range(args.test_videos)]
    for name in ("train", "test", "base", "run"):
        shutil.rmtree(work / name, ignore_errors=True)

    start = time.monotonic()
    pipe = tiny_pipeline(args.seed)
    pretrain_vae(pipe, np.concatenate([v[0] for v in train_videos]), args.vae_steps, args.seed)
    pipe.save_pretrained(work / "base")
    settings = phase1_settings(args.train_steps, args.seed)
    result = train(work / "base", write_dataset(work / "train", train_videos), work / "run", settings)
    write_dataset(work / "test", test_videos)
    print(
        f"phase 1: loss {np.mean(result.losses[:20]):.3f} -> {np.mean(result.losses[-20:]):.3f} over "
        f"{result.step} steps; {time.monotonic() - start:.0f} s. Model: {work / 'run' / 'model'}"
    )
    common = (
        f"python -m dreampose evaluate --model {work / 'run' / 'model'} --dataset {work / 'test'} "
        f"--frames-per-video 16 --min-gap 2 --size 64 --height {SIZE} --width {SIZE} --steps 25 "
        "--image-guidance 1 --pose-guidance 1 --device cpu --random-metric-networks"
    )
    print("\nbefore finetuning:\n  " + common + f" --output {work / 'eval-none'}")
    print(
        "after finetuning (each video's input frame, 100 + 100 steps at lr 1e-4):\n  "
        + common
        + " --finetune full --unet-steps 100 --vae-steps 100 --unet-lr 1e-4 --vae-lr 1e-4"
        + f" --output {work / 'eval-full'}"
    )


if __name__ == "__main__":
    main()
