"""`dreampose extract-poses`: turn a driving video (or a photo) into a pose file."""

from __future__ import annotations

import argparse
from pathlib import Path

from dreampose.runtime.options import add_densepose_arguments, add_device_arguments, load_densepose


def add_parser(subparsers) -> argparse.ArgumentParser:
    from dreampose.media.video_reader import VideoLimits
    from pose_extraction.extract import DEFAULT_BATCH_SIZE

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
    add_densepose_arguments(parser)
    add_device_arguments(parser, dtype=False)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"frames per DensePose batch (default {DEFAULT_BATCH_SIZE})",
    )
    limits = VideoLimits()
    parser.add_argument(
        "--max-duration",
        type=float,
        default=limits.max_duration_s,
        help=f"refuse longer parts (default {limits.max_duration_s:g} s)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=limits.max_pixels,
        help=f"refuse larger video frames (default {limits.max_pixels} pixels)",
    )
    parser.add_argument("--preview", type=Path, help="also write a preview video (mp4) of the poses")
    parser.add_argument(
        "--export-official", type=Path, metavar="DIR", help="also write frame_N_densepose.npy files"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dreampose.media.video_reader import VideoLimits
    from pose_extraction.extract import extract_poses
    from pose_extraction.tracking import format_frame_list

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
    """Fail on naming mistakes, unwritable outputs or a full disk before spending minutes on DensePose."""
    from dreampose.base.files import writable_file, writable_folder

    if not args.input.exists():
        raise FileNotFoundError(f"input not found: {args.input}")
    writable_file(args.output, suffixes=(".npz",))
    if args.preview:
        writable_file(args.preview, suffixes=(".mp4",))
    if args.export_official:
        writable_folder(args.export_official.parent)


def _load_extractor(args: argparse.Namespace):
    """The DensePose backend chosen on the command line (tests replace this function)."""
    return load_densepose(args, args.batch_size)
