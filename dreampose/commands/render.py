"""`dreampose render`: render a pose sequence (or a range of it) to an H.264 mp4."""

from __future__ import annotations

from dreampose.commands._render_args import add_render_arguments, parse_frame_range, settings_from_args


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

    from dreampose import service

    settings = settings_from_args(args)
    poses = service.load_poses(args.poses)
    frames = parse_frame_range(args.frames, len(poses))
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
