"""Steps 4 and 5 of the app: preview one frame (or a guidance grid of it), then render the
video. Both use the session's finetuned subject when it has one.

Previews are for tuning: moving sI by one notch should cost one sampling, nothing more. So
the session keeps in memory (``Session.memo``) what its previews were sampled from, the
photo encoded and the pose windows of the frames previewed, for as long as the photo, the
poses file and the loaded model are the same (:func:`prepared_inputs`).

A render is a stream of events (:func:`render_stream`: progress, each frame as it finishes,
then the outputs), so a person can stop a bad render early; it keeps the driving video's
sound, cut to the rendered frames; it always gives the clean video, and the side-by-side view
(photo | pose | result) as a second file. Files get names a person recognises in their
downloads folder.
"""

from __future__ import annotations

import weakref
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dreampose.app.messages import OUT_OF_MEMORY, Eta, UserError, duration, is_out_of_memory, sentence
from dreampose.app.service import AppService, OnProgress, check_frame, no_progress
from dreampose.app.sessions import Session
from dreampose.base.files import atomic_file
from dreampose.media.frames import save_png
from dreampose.model.events import Event, Finished, FrameDone, Progress, result_of
from dreampose.model.pipeline import PreparedInputs
from dreampose.rendering.frames import RenderCancelled, RenderResult, stream_preview
from dreampose.rendering.grid import GuidanceGrid, stream_grid
from dreampose.rendering.settings import RenderSettings
from dreampose.rendering.video import Soundtrack, add_sound, partial_path, stream_video
from pose_extraction.pose_sequence import PoseSequence

MAX_GRID_CELLS = 25


@dataclass
class RenderOutput:
    video: Path | None  # the clean video (with sound when the driving video had some)
    side_by_side: Path | None  # photo | pose | result, when asked for
    frames_zip: Path | None
    num_frames: int
    fps: float
    cancelled: bool
    message: str
    next_range: tuple[int, int] | None = None  # the next part to render, when frames remain
    last_frame: np.ndarray | None = None  # the latest finished frame


def download_name(session: Session, settings: RenderSettings, detail: str = "") -> str:
    """``dreampose_<photo>_<video>_sI8_sP3_seed0<detail>``: what a person sees in their downloads."""
    weights = f"sI{settings.image_guidance_scale:g}_sP{settings.pose_guidance_scale:g}"
    return f"dreampose_{session.photo_name}_{session.video_name}_{weights}_seed{settings.seed}{detail}"


# ----------------------------------------------------------------------------- step 4: one frame
# A cancel is the user's choice, not a failure: the step returns no picture and this line.
PREVIEW_CANCELLED = "The preview was cancelled; the picture shown before it (if any) stays."
GRID_CANCELLED = "The guidance grid was cancelled; the picture shown before it (if any) stays."


def preview(
    app: AppService,
    session: Session,
    photos: list | None,
    frame: int,
    settings: RenderSettings,
    progress: OnProgress = no_progress,
    wait_s: float = 0.0,
) -> tuple[Path | None, str]:
    """One frame with ``settings`` as a PNG; returns its path and a line naming what was used
    (cancelled: no path and ``PREVIEW_CANCELLED``). ``wait_s``: how long to wait for a preview
    of this session that is still running (a live preview, after cancelling it) to end."""
    photo, frame, settings = _one_frame(app, session, photos, frame, settings)
    with session.job("preview", wait_s) as cancel:
        progress(0, 1, "Loading the model")
        pipe = app.pipeline(session)
        prepared = prepared_inputs(app, session, pipe, photo, frame, settings)
        try:
            image = result_of(
                stream_preview(pipe, None, None, frame, settings, cancel, prepared),
                _report(progress, "Previewing"),
            )
        except RenderCancelled:
            return None, PREVIEW_CANCELLED
        target = save_png(session.preview_path(download_name(session, settings, f"_frame{frame}")), image)
    return target, _used(frame, settings, session)


def _one_frame(app: AppService, session: Session, photos, frame, settings: RenderSettings):
    """(photo, frame, settings on the canvas) of a preview or grid, checked."""
    photo = app.photos(session, photos)[0]
    return (
        photo,
        check_frame(_pose_count(app, session), frame),
        replace(settings, height=app.canvas[0], width=app.canvas[1]),
    )


# The pose windows a session keeps: a frame's is 10 channels at latent size (200 kB at 640 x
# 512 in fp32), so a few dozen frames tried one after another cost little.
KEPT_POSE_WINDOWS = 32


def prepared_inputs(
    app: AppService, session: Session, pipe, photo: Path, frame: int, settings: RenderSettings
) -> PreparedInputs:
    """What the preview of ``frame`` samples from, from the session's memo where it can: the
    photo is encoded once per photo, model and canvas, a frame's pose window made once per
    poses file, model and canvas. The photo's file is named by its content, and the poses
    file is replaced whenever the poses change, so neither can change under the same key;
    a weak reference to the pipeline stands for the model (a finetuned subject loads a new
    one) and never keeps an unloaded model alive."""
    canvas = (settings.height, settings.width)
    model = weakref.ref(pipe)
    subject = session.memo.get(
        "subject", (str(photo), model, canvas), lambda: pipe.encode_photo(photo, *canvas)
    )
    windows = session.memo.get("pose windows", (_poses_version(session), model, canvas), dict)
    if frame not in windows:
        uv = pipe.check_poses(app.poses(session))
        windows.update(pipe.pose_windows(uv, [frame], *canvas))
        while len(windows) > KEPT_POSE_WINDOWS:
            del windows[next(iter(windows))]  # the oldest
    return PreparedInputs(subject, {frame: windows[frame]}, _pose_count(app, session), canvas)


def _poses_version(session: Session) -> tuple | None:
    """What identifies the poses file as written last (it is replaced, never edited)."""
    try:
        stat = session.poses_path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _pose_count(app: AppService, session: Session) -> int:
    """How many frames the session's poses have, without reading them again while unchanged."""
    version = _poses_version(session)
    if version is None:
        return len(app.poses(session))  # says that there are none
    return session.memo.get("pose count", version, lambda: len(app.poses(session)))


def _used(frame: int, settings: RenderSettings, session: Session) -> str:
    who = "the finetuned subject" if session.current_subject() else "the base model (not finetuned)"
    return (
        f"Frame {frame}: seed {settings.seed}, sI {settings.image_guidance_scale:g}, "
        f"sP {settings.pose_guidance_scale:g}, {settings.num_inference_steps} {settings.scheduler} steps, {who}."
    )


def guidance_grid(
    app: AppService,
    session: Session,
    photos: list | None,
    frame: int,
    image_scales: list[float],
    pose_scales: list[float],
    settings: RenderSettings,
    progress: OnProgress = no_progress,
) -> tuple[Path | None, GuidanceGrid | None]:
    """One frame over an sI x sP grid (rows sI, columns sP), to choose weights by eye, as a PNG
    (cancelled: no path and no grid)."""
    if len(image_scales) * len(pose_scales) > MAX_GRID_CELLS:
        raise UserError(f"The guidance grid takes at most {MAX_GRID_CELLS} cells (for example 5 x 5 values).")
    photo, frame, settings = _one_frame(app, session, photos, frame, settings)
    with session.job("grid") as cancel:
        progress(0, 1, "Loading the model")
        pipe = app.pipeline(session)
        prepared = prepared_inputs(app, session, pipe, photo, frame, settings)
        events = stream_grid(pipe, None, None, frame, image_scales, pose_scales, settings, cancel, prepared)
        try:
            grid = result_of(events, _report(progress, "Guidance grid"))
        except RenderCancelled:
            return None, None
        name = f"dreampose_grid_{session.photo_name}_frame{frame}_seed{settings.seed}"
        target = save_png(session.preview_path(name), grid.image)
        session.save_grid(grid)
    return target, grid


# ----------------------------------------------------------------------------- step 5: the video
def render_stream(
    app: AppService,
    session: Session,
    photos: list | None,
    first: int | None,
    last: int | None,
    settings: RenderSettings,
    side_by_side: bool = False,
    sound: bool = True,
) -> Iterator[Event]:
    """Render frames ``first..last`` (inclusive; None: as far as one render may go) to an mp4
    at the poses' fps, plus a zip of PNGs and, if asked, the side-by-side video: a stream of
    :class:`Progress` (with a line for people), :class:`FrameDone` for each finished frame,
    then :class:`Finished` with the :class:`RenderOutput`.

    ``sound``: keep the driving video's sound for the rendered frames. Cancelled or failed
    renders end with the frames finished so far (``.partial.mp4``). A consumer that stops
    listening stops the render within one step.
    """
    session.remember(next_range=None)  # set again only by a render that finishes
    photo = app.photos(session, photos)[0]
    poses = app.poses(session)
    frames = frame_range(app, poses, first, last)
    settings = replace(settings, height=app.canvas[0], width=app.canvas[1])
    folder = session.new_render_folder()
    whole = len(frames) == len(poses)
    name = download_name(session, settings, "" if whole else f"_frames{frames[0]}-{frames[-1]}")
    output = folder / f"{name}.mp4"
    soundtrack = _soundtrack(session) if sound else None
    eta = Eta()
    error: Exception | None = None
    kept = RenderResult()
    with session.job("render") as cancel:
        yield Progress(0, 1, "Loading the model")
        pipe = app.pipeline(session)
        video, result = partial_path(output), RenderResult()
        events = stream_video(
            pipe, str(photo), poses, output, settings, frames, frames_dir=folder / "frames",
            cancel=cancel, sound=soundtrack,
        )  # fmt: skip
        try:
            for event in events:
                if isinstance(event, Progress):
                    yield _rendering_line(event, len(frames), eta)
                elif isinstance(event, FrameDone):
                    kept.keep(event)
                    yield event
                else:
                    video, result = event.result
        except Exception as e:  # keep what finished; the app reports the reason
            error = UserError(OUT_OF_MEMORY) if is_out_of_memory(e) else e
            if not kept.frames:
                raise error from e
        finally:  # a consumer that stopped listening: the partial video is written inside the job
            events.close()
        cancelled = result.cancelled or error is not None
        if not kept.frames:
            raise UserError(
                "Rendering was cancelled before the first frame finished: there is nothing to show."
            )
        # Still inside the job: closing the tab waits for it before deleting the folder, so
        # nothing is written into a deleted folder.
        yield Progress(len(kept.frames), len(frames), "Writing the videos")
        both = None
        if side_by_side:
            both = _side_by_side(
                app, photo, poses, kept.frame_indices, kept.frames, folder / f"{name}_side_by_side.mp4"
            )
            add_sound(
                both, RenderResult(frame_indices=list(kept.frame_indices)), soundtrack, poses.fps, poses.fps
            )
        frames_zip = _zip_frames(folder / "frames", folder / f"{name}_frames.zip")
    next_range = None
    if not cancelled and frames[-1] + 1 < len(poses):
        next_range = app.render_range(len(poses), frames[-1] + 1)
    session.remember(next_range=next_range)
    message = _render_message(app, frames, len(kept.frames), poses.fps, cancelled, error, result, next_range)
    yield Finished(
        RenderOutput(
            video if video.is_file() else None,
            both,
            frames_zip,
            len(kept.frames),
            poses.fps,
            cancelled,
            message,
            next_range,
            kept.frames[-1],
        )
    )


def render(
    app: AppService, session: Session, *args, progress: OnProgress = no_progress, **kwargs
) -> RenderOutput:
    """:func:`render_stream` run to its end: the :class:`RenderOutput` (``progress`` gets
    each progress line)."""
    return result_of(render_stream(app, session, *args, **kwargs), _report(progress))


def _rendering_line(step: Progress, num_frames: int, eta: Eta) -> Progress:
    """'Rendering frame 3 of 12, about 40 s left' from the steps done over the whole render."""
    per_frame = max(1, step.total // num_frames)
    line = f"Rendering frame {min(step.done // per_frame + 1, num_frames)} of {num_frames}"
    left = eta.seconds_left(step.done, step.total)
    return Progress(
        step.done, step.total, line + (f", about {duration(left)} left" if left is not None else "")
    )


def _report(progress: OnProgress, doing: str | None = None):
    """An ``on_event`` for ``result_of`` that hands each progress line to ``progress``; with
    ``doing``, the line is '<doing>: 3 of 25 steps, about 4 s left'."""
    eta = Eta()

    def on_event(event: Event) -> None:
        if isinstance(event, Progress):
            text = event.text if doing is None else f"{doing}: {eta.text(event.done, event.total, 'steps')}"
            progress(event.done, event.total, text)

    return on_event


def frame_range(app: AppService, poses: PoseSequence, first, last) -> list[int]:
    """Frames ``first..last``; an empty ``first`` is 0 and an empty ``last`` (or -1) goes as far as
    one render may (to the end, or the render limit)."""
    first = 0 if first in (None, "") else int(first)
    last = app.render_range(len(poses), first)[1] if last in (None, "", -1) else int(last)
    if first > last and 0 <= last < first < len(poses):
        raise UserError(
            f"The first frame ({first}) comes after the last ({last}): choose a first frame up to the last."
        )
    if not 0 <= first <= last < len(poses):
        raise UserError(
            f"Frames {first} to {last} are not in the poses: choose frames between 0 and {len(poses) - 1}."
        )
    count = last - first + 1
    if count > app.limits.max_render_frames:
        part = app.render_range(len(poses), first)
        raise UserError(
            f"That is {count} frames; this app renders at most {app.limits.max_render_frames} at a time. "
            f"Render it in parts: frames {part[0]} to {part[1]} first."
        )
    return list(range(first, last + 1))


def _soundtrack(session: Session) -> Soundtrack | None:
    facts = session.recall()
    if not facts.get("sound"):
        return None
    return Soundtrack(session.folder / facts["sound"], float(facts.get("sound_start", 0.0)))


def _side_by_side(app, photo, poses, indices, frames, target: Path) -> Path:
    from dreampose.media.canvas import fit_image
    from dreampose.media.images import read_image
    from dreampose.media.video_writer import write_mp4
    from pose_extraction.visualize import render_parts

    height, width = app.canvas
    picture = fit_image(read_image(photo), height, width)
    gap = np.full((height, 4, 3), 40, np.uint8)
    composed = (
        np.concatenate([picture, gap, render_parts(poses.labels[i]), gap, frame], axis=1)
        for i, frame in zip(indices, frames, strict=True)
    )
    return write_mp4(composed, target, poses.fps)


def _render_message(app, frames, done, fps, cancelled, error, result, next_range) -> str:
    total = len(frames)
    if error is not None:
        text = (
            f"Rendering stopped after {done} of {total} frames: {sentence(error)} "
            "The video of the finished frames is below."
        )
    elif cancelled:
        text = f"Cancelled after {done} of {total} frames: the video of the finished frames is below."
    else:
        text = f"Rendered frames {frames[0]} to {frames[-1]} ({done} frames at {fps:g} fps)."
    if result.sound:
        text += " The video keeps the driving video's sound for these frames."
    elif result.sound_note:
        text += f" No sound: {result.sound_note}."
    if next_range is not None:
        text += (
            f" Frames {next_range[0]} to {next_range[1]} are next: the range is set to them, "
            "press Render again for the next part."
        )
    if app.is_tiny:
        text += " (Tiny test model: the video is noise.)"
    return text


def _zip_frames(frames_dir: Path, target: Path) -> Path | None:
    pngs = sorted(frames_dir.glob("frame_*.png")) if frames_dir.is_dir() else []
    if not pngs:
        return None
    with atomic_file(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for png in pngs:
            z.write(png, png.name)
    return target
