"""Rendering a pose sequence to an H.264 mp4 (with the driving video's sound) that keeps every
finished frame, whatever stops the render.

:func:`stream_video` passes the render loop's events on (``frames.stream_frames``) while it
saves each finished frame, and ends with the video it wrote: the whole one, or the frames
finished so far as ``<output>.partial.mp4`` when the render was cancelled, failed or its
consumer stopped listening. :func:`render_video` runs it to that end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dreampose.base.files import writable_file, writable_folder
from dreampose.media.frames import save_frame, save_frames
from dreampose.model.events import Event, Finished, FrameDone, result_of
from dreampose.rendering.frames import RenderResult, stream_frames
from dreampose.rendering.settings import RenderSettings, check_fps
from pose_extraction.pose_sequence import PoseSequence


@dataclass(frozen=True)
class Soundtrack:
    """The driving video whose sound goes with the poses: pose frame ``i`` shows its instant
    ``start + i / poses.fps`` (``start``: where the poses begin in it, in seconds)."""

    video: Path
    start: float = 0.0


def stream_video(
    pipe,
    image,
    poses: PoseSequence,
    output: str | os.PathLike,
    settings: RenderSettings = RenderSettings(),
    frames: list[int] | None = None,
    fps: float | None = None,
    frames_dir: str | os.PathLike | None = None,
    cancel: threading.Event | None = None,
    sound: Soundtrack | None = None,
) -> Iterator[Event]:
    """Render to an H.264 mp4 with one video frame per pose frame, at the poses' fps: the
    render's :class:`Progress` and :class:`FrameDone` events, then :class:`Finished` with
    (the video's path, the :class:`RenderResult`).

    The output location (and ``frames_dir``) is checked before any frame is rendered.
    Finished frames are also saved to ``frames_dir`` as they come (``frame_00012.png``). If
    the render is cancelled, fails or is abandoned after some frames, those frames are
    written to ``<output>.partial.mp4`` (and an error re-raised); if the video itself cannot
    be written, the frames are saved as PNGs and the error says where. No finished frame is
    lost. With ``sound``, the video (complete or partial) gets the driving video's sound for
    the frames it shows (:func:`add_sound`).
    """
    output = writable_file(output, suffixes=(".mp4",))
    folder = writable_folder(frames_dir) if frames_dir is not None else None  # before the first frame
    fps = check_fps(fps) or poses.fps
    kept = RenderResult()
    events = stream_frames(pipe, image, poses, settings, frames, cancel)
    try:
        for event in events:
            if isinstance(event, Finished):
                result = event.result
                continue
            if isinstance(event, FrameDone):
                kept.keep(event)
                if folder is not None:
                    save_frame(folder, event.index, event.image)
            yield event
    except BaseException:  # failed, interrupted, or the consumer closed the stream
        events.close()
        if kept.frames:
            _write_or_rescue(kept, partial_path(output), fps, folder)
        raise
    path = partial_path(output) if result.cancelled else output
    if result.frames:
        _write_or_rescue(result, path, fps, folder)
        add_sound(path, result, sound, poses.fps, fps)
    yield Finished((path, result))


def render_video(pipe, image, poses: PoseSequence, output, settings=RenderSettings(), **kwargs):
    """:func:`stream_video` run to its end: (the video's path, the :class:`RenderResult`)."""
    return result_of(stream_video(pipe, image, poses, output, settings, **kwargs))


def add_sound(
    video: Path, result: RenderResult, sound: Soundtrack | None, pose_fps: float, fps: float
) -> None:
    """Give ``video`` the part of the soundtrack its frames show; say why not in ``result.sound_note``.

    The sound stays in sync only when the video plays at the poses' own rate and its frames
    are consecutive pose frames; otherwise the video stays silent. A failure to add the
    sound never costs the video: it is kept silent, and the note says why.
    """
    import logging

    from dreampose.media.video_writer import add_audio

    if sound is None or not result.frame_indices:
        return
    first = result.frame_indices[0]
    if result.frame_indices != list(range(first, first + len(result.frame_indices))):
        result.sound_note = "the frames are not consecutive, so no sound could follow them"
        return
    if abs(fps - pose_fps) > 1e-6:
        result.sound_note = f"the video plays at {fps:g} fps, not at the poses' {pose_fps:g} fps, so the sound would not match"
        return
    try:
        result.sound = add_audio(
            video, sound.video, sound.start + first / pose_fps, len(result.frame_indices) / pose_fps
        )
        if not result.sound:
            result.sound_note = f"{Path(sound.video).name} has no sound"
    except (OSError, ValueError) as e:
        logging.getLogger(__name__).warning("no sound: %s", e)
        result.sound_note = f"the sound of {Path(sound.video).name} could not be added ({e})"


def partial_path(output: Path) -> Path:
    return output.with_name(output.stem + ".partial" + output.suffix)


class VideoWriteError(OSError):
    """The video could not be written; the message says where the frames were saved."""


def _write_or_rescue(result: RenderResult, output: Path, fps: float, frames_dir: Path | None) -> None:
    """Write the mp4; if that fails in any way, keep the frames as PNGs.

    Any exception, not only OSError: on a full disk imageio-ffmpeg raises RuntimeError
    ("FFMPEG call failed with 183"), and finished frames must never depend on which."""
    from dreampose.media.video_writer import write_mp4

    try:
        write_mp4(result.frames, output, fps)
    except Exception as e:
        reason = getattr(e, "strerror", None) or e
        saved = frames_dir if frames_dir is not None else _rescue_frames(result, output)
        raise VideoWriteError(
            f"could not write {output.name} ({reason}); the {len(result.frames)} rendered "
            f"frames are saved as PNGs in {saved}"
        ) from e


def _rescue_frames(result: RenderResult, output: Path) -> Path:
    """PNGs beside the output, else in the temporary folder (the output's disk may be full)."""
    import tempfile

    for folder in (
        output.with_name(output.stem + "_frames"),
        Path(tempfile.mkdtemp(prefix="dreampose-frames-")),
    ):
        try:
            save_frames(folder, result.frame_indices, result.frames)
            return folder
        except OSError:
            continue
    raise OSError("no folder could take the rendered frames")
