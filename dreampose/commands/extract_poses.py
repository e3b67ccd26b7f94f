"""`dreampose extract-poses`: turn a driving video (or a photo) into a pose file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "extract-poses",
        help="run DensePose on a video or photo and write a pose file (.npz)",
        description=(
            "Run DensePose on every frame of a driving video (or on a photo), follow the main "
            "person, fill frames where nobody was found, and write a pose file (.npz)."
        ),
    )
    parser.add_argument("input", type=Path, help="video (mp4, mov, webm, avi, mkv ...) or photo")
    parser.add_argument("--output", "-o", type=Path, required=True, help="pose file to write (.npz)")
    parser.add_argument("--fps", type=float, help="resample to this frame rate (default: the video's)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--start", type=float, help="start at this time (seconds)")
    parser.add_argument("--end", type=float, help="stop at this time (seconds)")
    parser.add_argument("--densepose-weights", help="DensePose weights file or URL (default: download)")
    parser.add_argument("--pose-backend", choices=("native", "detectron2"), default="native")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per DensePose batch (default 8)")
    parser.add_argument(
        "--detector-size",
        type=int,
        default=800,
        help="shorter side in pixels the person detector resizes frames to (default 800, the model "
        "zoo's; 512 is faster and changes the poses a little, see the README)",
    )
    parser.add_argument(
        "--pose-precision",
        choices=("fp32", "fp16", "bf16"),
        default="fp32",
        help="DensePose arithmetic (default fp32; fp16 needs CUDA; see the README before changing it)",
    )
    parser.add_argument("--max-duration", type=float, default=600.0, help="refuse longer parts (seconds)")
    parser.add_argument("--max-pixels", type=int, default=4096 * 2304, help="refuse larger frames (pixels)")
    parser.add_argument("--preview", type=Path, help="also write a preview video (mp4) of the poses")
    parser.add_argument(
        "--export-official", type=Path, metavar="DIR", help="also write frame_N_densepose.npy files"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pose_extraction.extract import extract_poses
    from pose_extraction.tracking import format_frame_list
    from pose_extraction.video_reader import VideoLimits

    _check_paths(args)
    extractor = _load_extractor(args)
    bar = tqdm(total=0, unit="frame", desc="poses", dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        seq = extract_poses(
            args.input,
            extractor,
            fps=args.fps,
            max_frames=args.max_frames,
            start=args.start,
            end=args.end,
            batch_size=args.batch_size,
            progress=progress,
            limits=VideoLimits(max_duration_s=args.max_duration, max_pixels=args.max_pixels),
        )
    finally:
        bar.close()
    seq.save(args.output)
    print(f"wrote {args.output}: {len(seq)} frames at {seq.fps:g} fps, {seq.height} x {seq.width}")
    missing = seq.missing.nonzero()[0]
    if missing.size:
        print(
            f"no person found in {missing.size} of {len(seq)} frames (filled from the nearest "
            f"frames): {format_frame_list(missing)}"
        )
    if args.preview:
        from pose_extraction.visualize import write_preview

        print(f"wrote preview {write_preview(seq, args.preview)}")
    if args.export_official:
        from pose_extraction.official import export_official

        print(f"wrote official-layout poses to {export_official(seq, args.export_official)}")
    return 0


def _check_paths(args: argparse.Namespace) -> None:
    """Fail on naming mistakes before spending minutes on DensePose."""
    if args.output.suffix != ".npz":
        raise ValueError(f"--output must end in .npz; got {args.output.name}")
    if args.preview and args.preview.suffix.lower() != ".mp4":
        raise ValueError(f"--preview must end in .mp4; got {args.preview.name}")
    if not args.input.exists():
        raise FileNotFoundError(f"input not found: {args.input}")


def _load_extractor(args: argparse.Namespace):
    """The DensePose backend chosen on the command line (tests replace this function)."""
    from pose_extraction.densepose import load_extractor

    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_extractor(
        backend=args.pose_backend,
        weights=args.densepose_weights,
        device=device,
        **extractor_options(args, device),
    )


MAX_DETECTOR_SIZE = 1333  # the detector's cap on the longer side (model zoo): the shorter cannot exceed it


def extractor_options(args: argparse.Namespace, device: str) -> dict:
    """Keyword arguments for ``load_extractor`` from --detector-size, --pose-precision, --batch-size."""
    if not 32 <= args.detector_size <= MAX_DETECTOR_SIZE:
        raise ValueError(
            f"--detector-size must be 32 to {MAX_DETECTOR_SIZE} pixels; got {args.detector_size}"
        )
    options: dict = {"min_size": args.detector_size}
    on_cuda = device.startswith("cuda")
    if args.pose_precision != "fp32":
        if args.pose_backend != "native":
            raise ValueError("--pose-precision fp16/bf16 needs the native backend (--pose-backend native)")
        if args.pose_precision == "fp16" and not on_cuda:
            raise ValueError("--pose-precision fp16 needs a CUDA device; use fp32 (or bf16) on the CPU")
        options[args.pose_precision] = True
    # A GPU runs the frames of a batch through the network together; a CPU gains nothing from
    # that and would hold every frame's features at once.
    options["batch_size"] = max(1, args.batch_size) if on_cuda else 1
    return options
