"""`dreampose render`: render a pose sequence (or a range of it) to an H.264 mp4."""

from __future__ import annotations

from dreampose.cli.options import add_render_arguments, load_model, render_inputs


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render the whole pose sequence to an mp4",
        description="Render one video frame per pose frame. Several GPUs: "
        "`accelerate launch --multi_gpu -m dreampose render ...` or `torchrun --nproc_per_node N -m dreampose render ...`.",
    )
    add_render_arguments(parser)
    parser.add_argument("--output", required=True, help="output .mp4 (H.264, plays in browsers)")
    parser.add_argument("--frames", default=None, help="frame range START:END, END exclusive (default: all)")
    parser.add_argument("--fps", type=float, default=None, help="video fps (default: the pose file's fps)")
    parser.add_argument("--frames-dir", default=None, help="also save every frame as a PNG here")
    parser.add_argument(
        "--audio-from",
        default=None,
        metavar="VIDEO",
        help="take the sound from VIDEO (default: the driving video the pose file was extracted from, "
        "which it records), cut to the rendered frames and in sync with them",
    )
    parser.add_argument(
        "--audio-start",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="where the poses begin in the --audio-from video: the --start given to extract-poses (default 0)",
    )
    parser.add_argument(
        "--no-audio", action="store_true", help="a silent video (default: the driving video's sound)"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from dreampose.base.files import writable_file, writable_folder
    from dreampose.rendering import parallel
    from dreampose.rendering.settings import check_fps

    settings, poses = render_inputs(args)
    check_fps(args.fps)  # before the model loads
    frames = parse_frame_range(args.frames, len(poses))
    writable_file(args.output, suffixes=(".mp4",))
    if args.frames_dir is not None:
        writable_folder(args.frames_dir)  # before the model loads
    args.sound = soundtrack(args, poses)
    if parallel.is_distributed():  # started by `accelerate launch` or `torchrun`
        return run_distributed(args, settings, poses, frames)
    return run_single(args, settings, poses, frames)


def run_single(args, settings, poses, frames) -> int:
    from tqdm.auto import tqdm

    from dreampose.model.events import Finished, Progress
    from dreampose.rendering.video import stream_video

    pipe = load_model(args, settings)
    with tqdm(desc="rendering", unit="step") as bar:
        for event in stream_video(
            pipe, args.image, poses, args.output, settings,
            frames=frames, fps=args.fps, frames_dir=args.frames_dir, sound=args.sound,
        ):  # fmt: skip
            if isinstance(event, Progress):
                bar.total = event.total
                bar.update(event.done - bar.n)
            elif isinstance(event, Finished):
                path, result = event.result
    print(f"wrote {path} ({len(result.frames)} frames at {args.fps or poses.fps:g} fps{_sound_text(result)})")
    return 0


def soundtrack(args, poses):
    """The sound of the video: ``--audio-from``/``--audio-start``, else the driving video the
    pose file was extracted from (recorded in it); None with ``--no-audio``, for official
    poses and for videos without sound. Checked before any frame is rendered."""
    from pathlib import Path

    from dreampose.media.video_reader import probe_video
    from dreampose.rendering.video import Soundtrack

    if args.no_audio:
        return None
    if args.audio_from is None:
        source = Path(poses.source_video) if poses.source_video else None
        if source is None:
            return None
        if not source.is_file():
            print(f"no sound: the driving video {source} is gone (give it with --audio-from)")
            return None
        return Soundtrack(source, poses.source_start) if probe_video(source).has_audio else None
    if args.audio_start < 0:
        raise ValueError(f"--audio-start must be 0 or more seconds; got {args.audio_start:g}")
    info = probe_video(args.audio_from)  # a clear error for a missing or unreadable file
    if not info.has_audio:
        raise ValueError(f"--audio-from {args.audio_from}: that video has no sound")
    return Soundtrack(Path(args.audio_from), args.audio_start)


def _sound_text(result) -> str:
    if result.sound:
        return ", with sound"
    return f"; no sound: {result.sound_note}" if result.sound_note else ""


def run_distributed(args, settings, poses, frames) -> int:
    """One process per GPU: each renders a contiguous chunk, process 0 writes the video.

    Frames share their initial noise (or draw it from seed + frame index), so the stitched
    video equals a one-process render.
    """
    from pathlib import Path

    from dreampose.media.frames import save_frames
    from dreampose.media.video_writer import write_mp4
    from dreampose.rendering import parallel
    from dreampose.rendering.frames import RenderResult
    from dreampose.rendering.video import add_sound, partial_path

    rank, _ = parallel.init_distributed()
    if args.device is None:
        args.device = str(parallel.local_device())
    pipe = load_model(args, settings)
    frames = frames if frames is not None else list(range(len(poses)))
    stitched = parallel.render_sharded(frames, parallel.chunk_renderer(pipe, args.image, poses, settings))
    if stitched is None:  # not process 0
        return 0
    output = Path(args.output) if stitched.complete else partial_path(Path(args.output))
    if stitched.frames:
        write_mp4(stitched.frames, output, args.fps or poses.fps)
        if args.frames_dir is not None:
            save_frames(args.frames_dir, stitched.frame_indices, stitched.frames)
        sound = RenderResult(frame_indices=list(stitched.frame_indices))
        add_sound(output, sound, args.sound, poses.fps, args.fps or poses.fps)
    for rank_failed, error in stitched.errors.items():
        print(f"dreampose render: process {rank_failed} failed: {error}")
    print(f"wrote {output} ({len(stitched.frames)} of {len(frames)} frames)")
    return 0 if stitched.complete else 1


def parse_frame_range(text: str | None, num_frames: int) -> list[int] | None:
    """'START:END' (END exclusive, either may be empty) -> frame list; None = all frames."""
    if text is None:
        return None
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        first = int(start) if start else 0
        last = int(end) if end else num_frames
    except ValueError:
        raise ValueError(f"--frames must look like START:END (e.g. 0:48); got {text!r}") from None
    if not 0 <= first < last <= num_frames:
        raise ValueError(f"--frames {text} is outside the pose sequence's frames 0:{num_frames}")
    return list(range(first, last))
