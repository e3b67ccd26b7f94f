"""What the demo model renders, scored against the ground truth of held-out world people.

    python -m benchmarks.demo_quality                     # the shipped demo model, 20 people
    python -m benchmarks.demo_quality --model PATH --cases 5 --frames 3 --finetune-cases 2

Each case is a person no training video showed, photographed standing, and a driving clip of
the same person in a performance no training video had (``dreampose.world.quality``). Rows:
the paper's settings (PNDM 100, sI 8, sP 3), the fast preset, turbo, and the ablations (poses
shuffled in time, sI = 0, sP = 0, one pose instead of five), then subject finetuning on the one
photo, then speed. Prints a Markdown table; record it in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch

from dreampose.rendering.settings import FAST_PREVIEW, RenderSettings
from dreampose.runtime.loading import load_pipeline
from dreampose.runtime.references import model_canvas, resolve
from dreampose.training.settings import FinetuneSettings
from dreampose.world.quality import Scores, held_out_cases, render_case, render_single_poses, score, shuffled


def settings_rows(height: int, width: int, paper_steps: int) -> dict[str, RenderSettings]:
    paper = RenderSettings(height=height, width=width, num_inference_steps=paper_steps)
    fast = replace(FAST_PREVIEW, height=height, width=width)
    return {
        f"paper (PNDM {paper_steps}, sI 8, sP 3)": paper,
        "fast (DPM++ 25)": fast,
        "fast + turbo 3": replace(fast, turbo=3),
        "fast, sI = 0": replace(fast, image_guidance_scale=0.0),
        "fast, sP = 0": replace(fast, pose_guidance_scale=0.0),
    }


def table(rows: dict[str, Scores]) -> str:
    lines = [
        "| setting | IoU | colour error | L1 | SSIM | temporal |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in rows.items():
        lines.append(
            f"| {name} | {s.iou:.3f} | {s.colour:.1f} | {s.l1:.1f} | {s.ssim:.3f} | {s.temporal:.1f} |"
        )
    return "\n".join(lines)


def quality(pipe, cases, frames: list[int], height: int, width: int, paper_steps: int) -> dict[str, Scores]:
    rows = {}
    for name, settings in settings_rows(height, width, paper_steps).items():
        rows[name] = Scores.mean([score(c, render_case(pipe, c, settings, frames), frames) for c in cases])
        print(f"  {name}: {rows[name]}", flush=True)
    fast = replace(FAST_PREVIEW, height=height, width=width)
    rows["fast, poses shuffled in time"] = Scores.mean(
        [score(c, render_case(pipe, c, fast, frames, shuffled(c.poses)), frames) for c in cases]
    )
    rows["fast, 1 pose instead of 5"] = Scores.mean(
        [score(c, render_single_poses(pipe, c, fast, frames), frames) for c in cases]
    )
    rows["no model: the photo as every frame"] = photo_baseline(cases, frames)
    return rows


def photo_baseline(cases, frames: list[int]) -> Scores:
    """What copying the photo scores: a model must beat it to show it follows the poses (the
    first frames of a clip stand almost as the photo does, so copying scores well on them)."""
    return Scores.mean([score(c, np.stack([c.photo] * len(frames)), frames) for c in cases])


def finetuning(model: str, cases, frames: list[int], settings: FinetuneSettings) -> dict:
    """Base vs subject-finetuned L1 (fast preset) on each case's targets."""
    from dreampose.training.finetune import finetune

    fast = replace(FAST_PREVIEW, height=settings.height, width=settings.width)
    base, tuned = [], []
    for c in cases:
        pipe = load_pipeline(model)
        pipe.set_progress_bar_config(disable=True)
        base.append(score(c, render_case(pipe, c, fast, frames), frames))
        with tempfile.TemporaryDirectory() as tmp:
            result = finetune(pipe, [c.photo], tmp, poses=c.photo_pose, settings=settings)
            subject = load_pipeline(str(result.output))
        subject.set_progress_bar_config(disable=True)
        tuned.append(score(c, render_case(subject, c, fast, frames), frames))
    return {"base": Scores.mean(base), "finetuned": Scores.mean(tuned)}


def finetune_settings(model: str, height: int, width: int, steps: tuple[int, int] | None) -> FinetuneSettings:
    """The model's own finetuning defaults (finetune.json, as the CLI and the app use them)."""
    own = resolve(model).finetune_defaults()
    if steps is not None:
        own |= {"unet_steps": steps[0], "vae_steps": steps[1]}
    return FinetuneSettings(height=height, width=width, **own)


def speed(pipe, case, height: int, width: int, frames: int) -> dict[str, float]:
    fast = replace(FAST_PREVIEW, height=height, width=width)
    render_case(pipe, case, fast, [0])  # warm-up
    start = time.perf_counter()
    render_case(pipe, case, replace(fast, frame_batch_size=1), [0])
    preview = time.perf_counter() - start
    start = time.perf_counter()
    render_case(pipe, case, fast, list(range(frames)))
    return {"preview_s": preview, "render_fps": frames / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--cases", type=int, default=20, help="held-out people (one clip each)")
    parser.add_argument("--frames", type=int, default=4, help="consecutive frames scored per clip")
    parser.add_argument("--paper-steps", type=int, default=100)
    parser.add_argument("--finetune-cases", type=int, default=5)
    parser.add_argument("--finetune-steps", type=int, nargs=2, default=None, metavar=("UNET", "VAE"))
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = model_canvas(args.model)
    cases = held_out_cases(args.cases, size=(height, width))
    frames = list(range(args.frames))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, load {os.getloadavg()[0]:.1f}; model {args.model}; "
        f"{args.cases} held-out people x {args.frames} frames at {height} x {width}",
        flush=True,
    )
    pipe = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    rows = quality(pipe, cases, frames, height, width, args.paper_steps)
    if args.finetune_cases:
        steps = tuple(args.finetune_steps) if args.finetune_steps else None
        s = finetune_settings(args.model, height, width, steps)
        tuned = finetuning(args.model, cases[: args.finetune_cases], frames, s)
        rows[f"fast, base model ({args.finetune_cases} people)"] = tuned["base"]
        rows[f"fast, finetuned {s.unet_steps} + {s.vae_steps} steps"] = tuned["finetuned"]
        rows[f"no model: the photo as every frame ({args.finetune_cases} people)"] = photo_baseline(
            cases[: args.finetune_cases], frames
        )
        gain = 1 - tuned["finetuned"].l1 / tuned["base"].l1
        print(f"finetuning lowers L1 by {100 * gain:.0f}%")
    print(table(rows))
    figures = speed(pipe, cases[0], height, width, frames=8)
    print(
        f"\n25-step preview: {figures['preview_s']:.2f} s; fast render: {figures['render_fps']:.2f} frames/s"
    )
    print(
        f"IoU drop with shuffled poses: {np.round(rows['fast (DPM++ 25)'].iou - rows['fast, poses shuffled in time'].iou, 3)}"
    )


if __name__ == "__main__":
    main()
