"""`dreampose prepare-dataset`: build the training layout from a folder of videos.

For each video: ``OUT/<video name>/frames/frame_00000.png ...`` and ``OUT/<video name>/poses.npz``
(DensePose through the pose extractor, one pose frame per written frame).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dreampose.runtime.options import add_densepose_arguments, add_device_arguments, load_densepose

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare-dataset",
        help="extract frames and poses from a folder of videos into the training layout",
        description="Build the `dreampose train` dataset layout from a folder of videos.",
    )
    parser.add_argument("videos", type=Path, help="folder of videos (mp4, mov, webm, avi, mkv)")
    parser.add_argument("--output", "-o", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--fps", type=float, help="resample to this frame rate (default: the video's)")
    parser.add_argument("--max-frames", type=int, help="at most this many frames per video")
    add_densepose_arguments(parser)
    add_device_arguments(parser, dtype=False)
    parser.add_argument("--overwrite", action="store_true", help="redo videos that are already there")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dreampose.base.files import writable_folder

    videos = (
        sorted(p for p in args.videos.glob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        if args.videos.is_dir()
        else []
    )
    if not videos:
        raise ValueError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found in {args.videos}")
    writable_folder(args.output)  # before DensePose runs on the first video
    extractor = load_densepose(args)
    failed = []
    for video in tqdm(videos, desc="videos", unit="video"):
        try:
            prepare_video(
                video, args.output / video.stem, extractor, args.fps, args.max_frames, args.overwrite
            )
        except ValueError as e:  # one bad video should not stop the other 300
            failed.append(f"{video.name}: {e}")
    for line in failed:
        print(f"skipped {line}")
    print(f"dataset written to {args.output} ({len(videos) - len(failed)} videos)")
    return 1 if len(failed) == len(videos) else 0


def prepare_video(video: Path, folder: Path, extractor, fps=None, max_frames=None, overwrite=False) -> None:
    """Frames as PNG and the pose file for one video, written so a crash leaves no half video:
    poses.npz (written last, atomically) marks a finished folder."""
    from dreampose.media.frames import save_frame
    from dreampose.media.video_reader import VideoStream
    from pose_extraction.extract import extract_poses

    if (folder / "poses.npz").is_file() and not overwrite:
        return
    frames_dir = folder / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    for old in frames_dir.glob("*.png"):
        old.unlink()
    count = 0
    for count, frame in enumerate(VideoStream(video, fps=fps, max_frames=max_frames), start=1):
        save_frame(frames_dir, count - 1, frame)
    poses = extract_poses(video, extractor, fps=fps, max_frames=max_frames)
    if len(poses) != count:
        raise ValueError(f"decoded {count} frames but {len(poses)} poses; try without --fps")
    poses.save(folder / "poses.npz")
