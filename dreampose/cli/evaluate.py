"""`dreampose evaluate`: the paper's quantitative protocol (Table 1) on a dataset, as one command."""

from __future__ import annotations

import argparse

from dreampose.base.arguments import add_settings_arguments, settings_from_args
from dreampose.evaluation.settings import PRESETS, EvaluationSettings
from dreampose.rendering.settings import RenderSettings
from dreampose.runtime.options import add_device_arguments
from dreampose.training.settings import FinetuneSettings

# Finetuning uses the rendering's seed and canvas, so the subject matches what is rendered.
FINETUNE_FROM_RENDER = ("seed", "height", "width")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model on a test set: L1, PSNR, SSIM, LPIPS, FID, FVD next to the paper's Table 1",
        description=(
            "For each test video (a dataset in the training layout, e.g. the UBC Fashion test split): "
            "take the input frame, optionally finetune on it, render the frames at least --min-gap "
            "frames after it with the video's poses, and compare them with the real frames at --size "
            "px. Writes evaluation.json, evaluation.md (next to the paper's Table 1) and a side-by-side "
            "video per test video. Rerunning the same command resumes: finished videos are kept."
        ),
    )
    parser.add_argument(
        "--model", required=True, help="DreamPose model folder or hub id ('tiny' = random test model)"
    )
    parser.add_argument(
        "--dataset", required=True, help="test videos in the training layout (`prepare-dataset`)"
    )
    parser.add_argument("--output", required=True, help="folder for frames, metrics, report and videos")
    add_settings_arguments(parser, EvaluationSettings)
    parser.add_argument("--videos", type=int, default=None, help="only the first N videos (quick checks)")
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="paper",
        help="sampler: paper = 100 PNDM steps, fast = 25 DPM-Solver++ steps, turbo = feature reuse",
    )
    add_settings_arguments(parser, RenderSettings, overrides_of="--preset")
    finetuning = parser.add_argument_group("finetuning (with --finetune lora or full)")
    add_settings_arguments(finetuning, FinetuneSettings, exclude=FINETUNE_FROM_RENDER)
    add_device_arguments(parser, dtype=False)
    parser.add_argument(
        "--random-metric-networks",
        action="store_true",
        help="LPIPS/VGG/FID/FVD with randomly initialised networks: checks the plumbing offline; "
        "those numbers are not comparable with anything",
    )
    parser.set_defaults(func=run)


def evaluation_settings(args: argparse.Namespace):
    from dreampose.evaluation.settings import preset

    render = settings_from_args(RenderSettings, args, base=preset(args.preset))
    same_as_render = {name: getattr(render, name) for name in FINETUNE_FROM_RENDER}
    finetune = settings_from_args(FinetuneSettings, args, **same_as_render)
    return settings_from_args(EvaluationSettings, args, render=render, finetune_settings=finetune)


def run(args: argparse.Namespace) -> int:
    import sys
    import threading

    from tqdm.auto import tqdm

    from dreampose.cli.finetune import stop_on_interrupt
    from dreampose.evaluation import metrics
    from dreampose.evaluation.protocol import evaluate, metric_device

    settings = evaluation_settings(args)
    metrics.require_libraries()
    try:
        networks = metrics.load_networks(
            metric_device(args.device), pretrained=not args.random_metric_networks
        )
    except metrics.MetricWeightsUnavailable as e:
        print(f"dreampose evaluate: error: {e}", file=sys.stderr)
        return 1
    cancel = threading.Event()
    with tqdm(desc="evaluating", unit="frame") as bar, stop_on_interrupt(cancel):

        def on_progress(p) -> None:
            bar.total = p.frames_total
            bar.update(p.frames_done - bar.n)
            bar.set_postfix_str(f"{p.video}: {p.stage}, {p.videos_done}/{p.videos_total} videos done")

        result = evaluate(
            args.model,
            args.dataset,
            args.output,
            settings,
            networks=networks,
            videos=args.videos,
            device=args.device,
            progress=on_progress,
            cancel=cancel,
            show_progress=True,
        )
    from dreampose.evaluation.report import REPORT_JSON, REPORT_MD

    print((result.output / REPORT_MD).read_text())
    print(f"wrote {result.output / REPORT_JSON} and {result.output / REPORT_MD}")
    if result.cancelled:
        print("stopped; finished videos are kept (rerun the same command to continue)")
        return 130
    return 0
