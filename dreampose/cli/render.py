"""`dreampose render`: render a pose sequence (or a range of it) to an H.264 mp4."""

from __future__ import annotations

from dreampose.cli.render_args import (
    add_render_arguments,
    load_poses_from_args,
    parse_frame_range,
    settings_from_args,
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("render", help="render the whole pose sequence to an mp4")
    add_render_arguments(parser)
    parser.add_argument("--output", required=True, help="output .mp4 (H.264, plays in browsers)")
    parser.add_argument("--frames", default=None, help="frame range START:END, END exclusive (default: all)")
    parser.add_argument("--fps", type=float, default=None, help="video fps (default: the pose file's fps)")
    parser.add_argument("--frames-dir", default=None, help="also save every frame as a PNG here")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tqdm.auto import tqdm

    from dreampose import parallel
    from dreampose import render as service

    settings = settings_from_args(args)
    poses = load_poses_from_args(args)
    frames = parse_frame_range(args.frames, len(poses))
    if parallel.is_distributed():  # started by `accelerate launch` or `torchrun`
        return run_distributed(args, settings, poses, frames)
    pipe = service.load_pipeline(args.model, args.device, args.cpu_offload)
    pipe.set_progress_bar_config(disable=True)  # one bar for the whole job instead
    with tqdm(desc="rendering", unit="step") as bar:

        def on_step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        path, result = service.render_video(
            pipe,
            args.image,
            poses,
            args.output,
            settings,
            frames=frames,
            fps=args.fps,
            frames_dir=args.frames_dir,
            on_step=on_step,
        )
    print(f"wrote {path} ({len(result.frames)} frames at {args.fps or poses.fps:g} fps)")
    return 0


def run_distributed(args, settings, poses, frames) -> int:
    """One process per GPU: each renders a contiguous chunk, process 0 writes the video.

    Frames share their initial noise (or draw it from seed + frame index), so the stitched
    video equals a one-process render.
    """
    from pathlib import Path

    from dreampose import parallel
    from dreampose import render as service
    from pose_extraction.video_writer import write_mp4

    rank, _ = parallel.init_distributed()
    pipe = service.load_pipeline(args.model, args.device or str(parallel.local_device()), args.cpu_offload)
    pipe.set_progress_bar_config(disable=rank != 0)
    frames = frames if frames is not None else list(range(len(poses)))

    def render_chunk(chunk, on_frame):
        return service.render_frames(pipe, args.image, poses, settings, frames=chunk, on_frame=on_frame)

    stitched = parallel.render_sharded(frames, parallel.callback_chunk_renderer(render_chunk))
    if stitched is None:  # not process 0
        return 0
    output = Path(args.output) if stitched.complete else service.partial_path(Path(args.output))
    if stitched.frames:
        write_mp4(stitched.frames, output, args.fps or poses.fps)
        service.save_pngs(args.frames_dir, stitched.frame_indices, stitched.frames)
    for error in stitched.errors:
        print(f"dreampose render: process {error}")
    print(f"wrote {output} ({len(stitched.frames)} of {len(frames)} frames)")
    return 0 if stitched.complete else 1
