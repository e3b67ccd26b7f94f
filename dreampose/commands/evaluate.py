"""`dreampose evaluate`: the paper's quantitative protocol (Table 1) on a dataset, as one command."""

from __future__ import annotations

import argparse


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
    parser.add_argument(
        "--frames-per-video", type=int, default=50, help="frames compared per video (paper: 50)"
    )
    parser.add_argument(
        "--min-gap",
        type=int,
        default=50,
        help="first compared frame is this far after the input frame (paper: 50)",
    )
    parser.add_argument(
        "--size", type=int, default=256, help="metric resolution: frame height in px (paper: 256)"
    )
    parser.add_argument(
        "--input-frame", type=int, default=0, help="the subject frame of each video (default 0)"
    )
    parser.add_argument(
        "--finetune",
        choices=("none", "lora", "full"),
        default="none",
        help="subject finetuning on each video's input frame before rendering (paper: full)",
    )
    parser.add_argument(
        "--unet-steps", type=int, default=500, help="finetuning: UNet + adapter steps (paper 500)"
    )
    parser.add_argument(
        "--vae-steps", type=int, default=1500, help="finetuning: VAE decoder steps (paper 1500)"
    )
    parser.add_argument("--unet-lr", type=float, default=1e-5)
    parser.add_argument("--vae-lr", type=float, default=5e-5)
    parser.add_argument("--lora-rank", type=int, default=8, help="rank for --finetune lora (default 8)")
    parser.add_argument("--videos", type=int, default=None, help="only the first N videos (quick checks)")
    parser.add_argument("--seed", type=int, default=0, help="sampling and finetuning seed (default 0)")
    parser.add_argument(
        "--preset",
        choices=("paper", "fast", "turbo"),
        default="paper",
        help="sampler: paper = 100 PNDM steps, fast = 25 DPM-Solver++ steps, turbo = feature reuse",
    )
    parser.add_argument("--steps", type=int, default=None, help="override the preset's denoising steps")
    parser.add_argument("--image-guidance", type=float, default=None, help="override sI (default 8)")
    parser.add_argument("--pose-guidance", type=float, default=None, help="override sP (default 3)")
    parser.add_argument(
        "--height", type=int, default=640, help="render height, a multiple of 64 (default 640)"
    )
    parser.add_argument("--width", type=int, default=512, help="render width, a multiple of 64 (default 512)")
    parser.add_argument("--batch-frames", type=int, default=1, help="frames sampled together (default 1)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: CUDA when present)")
    parser.add_argument(
        "--random-metric-networks",
        action="store_true",
        help="LPIPS/VGG/FID/FVD with randomly initialised networks: checks the plumbing offline; "
        "those numbers are not comparable with anything",
    )
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace):
    from dreampose.evaluation.protocol import EvaluationSettings, preset
    from dreampose.finetune import FinetuneSettings

    render = preset(args.preset).with_(
        num_inference_steps=args.steps,
        image_guidance_scale=args.image_guidance,
        pose_guidance_scale=args.pose_guidance,
        seed=args.seed,
        height=args.height,
        width=args.width,
        frame_batch_size=args.batch_frames,
    )
    finetune = FinetuneSettings(
        unet_steps=args.unet_steps,
        vae_steps=args.vae_steps,
        unet_lr=args.unet_lr,
        vae_lr=args.vae_lr,
        seed=args.seed,
        height=args.height,
        width=args.width,
        lora_rank=args.lora_rank if args.finetune == "lora" else 0,
    )
    return EvaluationSettings(
        frames_per_video=args.frames_per_video,
        min_gap=args.min_gap,
        size=args.size,
        input_frame=args.input_frame,
        finetune=args.finetune,
        render=render,
        finetune_settings=finetune,
    )


def run(args: argparse.Namespace) -> int:
    import sys
    import threading

    from tqdm.auto import tqdm

    from dreampose.commands.finetune import stop_on_interrupt
    from dreampose.evaluation import metrics
    from dreampose.evaluation.protocol import evaluate, metric_device

    settings = settings_from_args(args)
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
