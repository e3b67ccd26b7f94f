"""Steps 4 and 5 of the app: preview one frame (or a guidance grid of it), then render the
video. Both use the session's finetuned subject when it has one.

A render hands out each frame as it finishes (:func:`render_live`), so a person can stop a
bad render early; it keeps the driving video's sound, cut to the rendered frames; it always
gives the clean video, and the side-by-side view (photo | pose | result) as a second file.
Files get names a person recognises in their downloads folder.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dreampose.app.messages import OUT_OF_MEMORY, Eta, UserError, duration, is_out_of_memory, sentence
from dreampose.app.service import (
    AppService,
    Progress,
    check_frame,
    current_subject,
    file_stem,
    no_progress,
    recall,
    remember,
)
from dreampose.app.sessions import Session
from dreampose.rendering import render as rendering
from dreampose.rendering.render import RenderSettings
from pose_extraction.pose_sequence import PoseSequence

MAX_GRID_CELLS = 25
GRID_FILE = "grid.json"  # the last grid's scales and layout, to map a click to its cell


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


def download_name(session: Session, settings: RenderSettings, detail: str = "") -> str:
    """``dreampose_<photo>_<video>_sI8_sP3_seed0<detail>``: what a person sees in their downloads."""
    facts = recall(session)
    photo, video = file_stem(facts.get("photo"), "photo"), file_stem(facts.get("video"), "poses")
    return (
        f"dreampose_{photo}_{video}_sI{settings.image_guidance_scale:g}_sP{settings.pose_guidance_scale:g}"
        f"_seed{settings.seed}{detail}"
    )


# ----------------------------------------------------------------------------- step 4: one frame
def preview(
    app: AppService,
    session: Session,
    photos: list | None,
    frame: int,
    settings: RenderSettings,
    progress: Progress = no_progress,
) -> tuple[Path, str]:
    """One frame with ``settings`` as a PNG; returns its path and a line naming what was used."""
    photo = app.photos(session, photos)[0]
    poses = app.poses(session)
    frame = check_frame(poses, frame)
    settings = replace(settings, height=app.canvas[0], width=app.canvas[1])
    with session.job("preview") as cancel:
        progress(0, 1, "Loading the model")
        pipe = app.pipeline(session)
        eta = Eta()
        try:
            image = rendering.preview_frame(
                pipe, str(photo), poses, frame, settings, cancel=cancel,
                on_step=lambda d, t: progress(d, t, "Previewing: " + eta.text(d, t, "steps")),
            )  # fmt: skip
        except rendering.RenderCancelled:
            raise UserError("The preview was cancelled.") from None
        target = session.path(f"previews/{download_name(session, settings, f'_frame{frame}')}.png")
        _save_png(image, target)
    return target, _used(frame, settings, session)


def _used(frame: int, settings: RenderSettings, session: Session) -> str:
    who = "the finetuned subject" if current_subject(session) else "the base model (not finetuned)"
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
    progress: Progress = no_progress,
) -> tuple[Path, rendering.GuidanceGrid]:
    """One frame over an sI x sP grid (rows sI, columns sP), to choose weights by eye, as a PNG."""
    if len(image_scales) * len(pose_scales) > MAX_GRID_CELLS:
        raise UserError(f"The guidance grid takes at most {MAX_GRID_CELLS} cells (for example 5 x 5 values).")
    photo = app.photos(session, photos)[0]
    poses = app.poses(session)
    frame = check_frame(poses, frame)
    settings = replace(settings, height=app.canvas[0], width=app.canvas[1])
    eta = Eta()
    with session.job("grid") as cancel:
        progress(0, 1, "Loading the model")
        pipe = app.pipeline(session)
        try:
            grid = rendering.guidance_grid(
                pipe, str(photo), poses, frame, image_scales, pose_scales, settings,
                on_step=lambda d, t: progress(d, t, "Guidance grid: " + eta.text(d, t, "steps")),
                cancel=cancel,
            )  # fmt: skip
        except rendering.RenderCancelled:
            raise UserError("The guidance grid was cancelled.") from None
        name = f"dreampose_grid_{file_stem(recall(session).get('photo'), 'photo')}_frame{frame}_seed{settings.seed}"
        target = session.path(f"previews/{name}.png")
        _save_png(grid.image, target)
        layout = grid.layout.__dict__ if grid.layout is not None else None
        session.path(GRID_FILE).write_text(
            json.dumps({"image_scales": grid.image_scales, "pose_scales": grid.pose_scales, "layout": layout})
        )
    return target, grid


def grid_scales_at(session: Session, x: float, y: float) -> tuple[float, float] | None:
    """(sI, sP) of the cell of the session's last guidance grid under pixel (x, y)."""
    try:
        saved = json.loads((session.folder / GRID_FILE).read_text())
    except (OSError, ValueError):
        return None
    grid = rendering.GuidanceGrid(
        np.zeros((1, 1, 3), np.uint8), [], saved["image_scales"], saved["pose_scales"],
        rendering.GridLayout(**saved["layout"]) if saved.get("layout") else None,
    )  # fmt: skip
    return grid.scales_at(x, y)


# ----------------------------------------------------------------------------- step 5: the video
def render(
    app: AppService,
    session: Session,
    photos: list | None,
    first: int | None,
    last: int | None,
    settings: RenderSettings,
    side_by_side: bool = False,
    sound: bool = True,
    progress: Progress = no_progress,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
) -> RenderOutput:
    """Render frames ``first..last`` (inclusive; None: as far as one render may go) to an mp4
    at the poses' fps, plus a zip of PNGs and, if asked, the side-by-side video.

    ``sound``: keep the driving video's sound for the rendered frames. Cancelled or failed
    renders return the frames finished so far (``.partial.mp4``).
    """
    remember(session, next_range=None)  # set again only by a render that finishes
    photo = app.photos(session, photos)[0]
    poses = app.poses(session)
    frames = frame_range(app, poses, first, last)
    settings = replace(settings, height=app.canvas[0], width=app.canvas[1])
    folder = session.path(f"renders/{time.time_ns()}/frames").parent
    whole = len(frames) == len(poses)
    name = download_name(session, settings, "" if whole else f"_frames{frames[0]}-{frames[-1]}")
    output = folder / f"{name}.mp4"
    soundtrack = _soundtrack(session) if sound else None
    eta = Eta()
    error: Exception | None = None
    with session.job("render") as cancel:
        progress(0, 1, "Loading the model")
        pipe = app.pipeline(session)
        per_frame = rendering.steps_per_frame(pipe, settings)

        def on_step(done: int, total: int) -> None:
            line = f"Rendering frame {min(done // per_frame + 1, len(frames))} of {len(frames)}"
            left = eta.seconds_left(done, total)
            progress(done, total, line + (f", about {duration(left)} left" if left is not None else ""))

        try:
            video, result = rendering.render_video(
                pipe, str(photo), poses, output, settings, frames, frames_dir=folder / "frames",
                on_frame=on_frame, on_step=on_step, cancel=cancel, sound=soundtrack,
            )  # fmt: skip
            kept, cancelled = result.frames, result.cancelled
        except Exception as e:  # keep what finished; the app reports the reason
            error = UserError(OUT_OF_MEMORY) if is_out_of_memory(e) else e
            video, cancelled, result = rendering.partial_path(output), True, rendering.RenderResult()
            kept = [_read_png(p) for p in sorted((folder / "frames").glob("*.png"))]
            if not kept:
                raise error from e
        if not kept:
            raise UserError(
                "Rendering was cancelled before the first frame finished: there is nothing to show."
            )
        # Still inside the job: closing the tab waits for it before deleting the folder, so
        # nothing is written into a deleted folder.
        progress(len(kept), len(frames), "Writing the videos")
        both = None
        if side_by_side:
            both = _side_by_side(
                app, photo, poses, frames[: len(kept)], kept, folder / f"{name}_side_by_side.mp4"
            )
            shown = rendering.RenderResult(frame_indices=frames[: len(kept)])
            rendering.add_sound(both, shown, soundtrack, poses.fps, poses.fps)
        frames_zip = _zip_frames(folder / "frames", folder / f"{name}_frames.zip")
    next_range = None
    if not cancelled and frames[-1] + 1 < len(poses):
        next_range = app.render_range(len(poses), frames[-1] + 1)
    remember(session, next_range=next_range)
    message = _render_message(app, frames, len(kept), poses.fps, cancelled, error, result, next_range)
    return RenderOutput(
        video if video.is_file() else None,
        both,
        frames_zip,
        len(kept),
        poses.fps,
        cancelled,
        message,
        next_range,
    )


def render_live(app: AppService, session: Session, *args, **kwargs) -> Iterator[tuple]:
    """:func:`render` in a worker thread, as events: ``("progress", done, total, text)``,
    ``("frame", index, image)`` (each finished frame), then ``("done", RenderOutput)``; the
    render's error is raised at the end. Pending events are merged (the latest progress and
    frame win), so a slow consumer never falls behind. If the consumer stops listening (the
    tab closed), the render is cancelled.
    """
    events: queue.Queue = queue.Queue()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["result"] = render(
                app, session, *args, **kwargs,
                progress=lambda d, t, text: events.put(("progress", d, t, text)),
                on_frame=lambda index, frame: events.put(("frame", index, frame)),
            )  # fmt: skip
        except BaseException as e:
            outcome["error"] = e
        finally:
            events.put(None)

    worker = threading.Thread(target=work, name="dreampose-render", daemon=True)
    worker.start()
    finished = False
    try:
        while not finished:
            pending = [events.get()]
            while not events.empty():
                pending.append(events.get())
            finished = pending[-1] is None
            latest = {event[0]: event for event in pending if event is not None}
            yield from (latest[kind] for kind in ("progress", "frame") if kind in latest)
    finally:
        if not finished:
            session.cancel("render")
    if "error" in outcome:
        raise outcome["error"]
    yield ("done", outcome["result"])


def frame_range(app: AppService, poses: PoseSequence, first, last) -> list[int]:
    """Frames ``first..last``; an empty ``first`` is 0 and an empty ``last`` (or -1) goes as far as
    one render may (to the end, or the render limit)."""
    first = 0 if first in (None, "") else int(first)
    last = app.render_range(len(poses), first)[1] if last in (None, "", -1) else int(last)
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


def _soundtrack(session: Session) -> rendering.Soundtrack | None:
    facts = recall(session)
    if not facts.get("sound"):
        return None
    return rendering.Soundtrack(session.folder / facts["sound"], float(facts.get("sound_start", 0.0)))


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


def _save_png(image: np.ndarray, target: Path) -> Path:
    from PIL import Image

    tmp = target.with_suffix(".tmp.png")
    Image.fromarray(image).save(tmp)
    tmp.replace(target)
    return target


def _read_png(path: Path) -> np.ndarray:
    from dreampose.media.images import read_image

    return read_image(path)


def _zip_frames(frames_dir: Path, target: Path) -> Path | None:
    pngs = sorted(frames_dir.glob("*.png")) if frames_dir.is_dir() else []
    if not pngs:
        return None
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        for png in pngs:
            z.write(png, png.name)
    return target
