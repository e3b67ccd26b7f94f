"""Steps 4 and 5 of the app: preview one frame (or a guidance grid of it), then render the
video. Both use the session's finetuned subject when it has one."""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dreampose import render as rendering
from dreampose.app.messages import OUT_OF_MEMORY, Eta, UserError, is_out_of_memory, sentence
from dreampose.app.service import AppService, Progress, check_frame, current_subject, no_progress
from dreampose.app.sessions import Session
from dreampose.render import RenderSettings
from pose_extraction.pose_sequence import PoseSequence

MAX_GRID_CELLS = 25


@dataclass
class RenderOutput:
    video: Path | None
    frames_zip: Path | None
    num_frames: int
    fps: float
    cancelled: bool
    message: str


def preview(
    app: AppService, session: Session, photos: list | None, frame: int, settings: RenderSettings
) -> tuple[np.ndarray, str]:
    """One frame with ``settings``; returns the frame and a line naming what was used."""
    photo = app.photos(session, photos)[0]
    poses = app.poses(session)
    frame = check_frame(poses, frame)
    settings = replace(settings, height=app.canvas[0], width=app.canvas[1])
    with session.job("preview"):
        image = rendering.preview_frame(app.pipeline(session), str(photo), poses, frame, settings)
    return image, _used(frame, settings, session)


def _used(frame: int, settings: RenderSettings, session: Session) -> str:
    who = "the finetuned subject" if current_subject(session) else "the base model (not finetuned)"
    return (
        f"Frame {frame}, seed {settings.seed}, sI {settings.image_guidance_scale:g}, "
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
) -> np.ndarray:
    """One frame over an sI x sP grid (rows sI, columns sP), to choose weights by eye."""
    if len(image_scales) * len(pose_scales) > MAX_GRID_CELLS:
        raise UserError(f"The guidance grid takes at most {MAX_GRID_CELLS} cells (for example 5 x 5 values).")
    photo = app.photos(session, photos)[0]
    poses = app.poses(session)
    frame = check_frame(poses, frame)
    settings = replace(settings, height=app.canvas[0], width=app.canvas[1])
    eta = Eta()
    with session.job("grid") as cancel:
        try:
            grid = rendering.guidance_grid(
                app.pipeline(session), str(photo), poses, frame, image_scales, pose_scales, settings,
                on_step=lambda d, t: progress(d, t, "Guidance grid: " + eta.text(d, t, "steps")),
                cancel=cancel,
            )  # fmt: skip
        except rendering.RenderCancelled:
            raise UserError("The guidance grid was cancelled.") from None
    return grid.image


def render(
    app: AppService,
    session: Session,
    photos: list | None,
    first: int | None,
    last: int | None,
    settings: RenderSettings,
    side_by_side: bool = False,
    progress: Progress = no_progress,
) -> RenderOutput:
    """Render frames ``first..last`` (inclusive) to an mp4 at the poses' fps, plus a zip of PNGs.

    Cancelled or failed renders return the frames finished so far (``.partial.mp4``).
    """
    photo = app.photos(session, photos)[0]
    poses = app.poses(session)
    frames = frame_range(app, poses, first, last)
    settings = replace(settings, height=app.canvas[0], width=app.canvas[1])
    folder = session.path(f"renders/{time.time_ns()}/video.mp4").parent
    eta = Eta()
    steps = settings.num_inference_steps

    def on_step(done: int, total: int) -> None:
        progress(done, total, "Rendering: " + eta.text(done // steps, len(frames), "frames"))

    error: Exception | None = None
    with session.job("render") as cancel:
        try:
            video, result = rendering.render_video(
                app.pipeline(session), str(photo), poses, folder / "video.mp4", settings, frames,
                frames_dir=folder / "frames", on_step=on_step, cancel=cancel,
            )  # fmt: skip
            kept, cancelled = result.frames, result.cancelled
        except Exception as e:  # keep what finished; the app reports the reason
            error = UserError(OUT_OF_MEMORY) if is_out_of_memory(e) else e
            video, cancelled = rendering.partial_path(folder / "video.mp4"), True
            kept = [_read_png(p) for p in sorted((folder / "frames").glob("*.png"))]
            if not kept:
                raise error from e
        # Still inside the job: closing the tab waits for it before deleting the folder.
        if side_by_side and kept:
            video = _side_by_side(app, photo, poses, frames[: len(kept)], kept, folder, poses.fps)
        frames_zip = _zip_frames(folder / "frames", folder / "frames.zip")
    message = _render_message(app, len(kept), len(frames), poses.fps, cancelled, error)
    return RenderOutput(
        video if video.is_file() else None, frames_zip, len(kept), poses.fps, cancelled, message
    )


def frame_range(app: AppService, poses: PoseSequence, first, last) -> list[int]:
    first = 0 if first in (None, "") else int(first)
    last = len(poses) - 1 if last in (None, "", -1) else int(last)
    if not 0 <= first <= last < len(poses):
        raise UserError(
            f"Frames {first} to {last} are not in the poses: choose frames between 0 and {len(poses) - 1}."
        )
    count = last - first + 1
    if count > app.limits.max_render_frames:
        raise UserError(
            f"That is {count} frames; this app renders at most {app.limits.max_render_frames} at a time. "
            "Choose a shorter range."
        )
    return list(range(first, last + 1))


def _side_by_side(app, photo, poses, indices, frames, folder, fps) -> Path:
    from pose_extraction.canvas import fit_image
    from pose_extraction.images import read_image
    from pose_extraction.video_writer import write_mp4
    from pose_extraction.visualize import render_parts

    height, width = app.canvas
    picture = fit_image(read_image(photo), height, width)
    gap = np.full((height, 4, 3), 40, np.uint8)
    composed = (
        np.concatenate([picture, gap, render_parts(poses.labels[i]), gap, frame], axis=1)
        for i, frame in zip(indices, frames, strict=True)
    )
    return write_mp4(composed, folder / "side_by_side.mp4", fps)


def _render_message(app, done: int, total: int, fps: float, cancelled: bool, error) -> str:
    if error is not None:
        return f"Rendering stopped after {done} of {total} frames: {sentence(error)} The finished frames are below."
    if cancelled:
        return f"Cancelled: {done} of {total} frames were finished; here they are."
    return f"Rendered {done} frames at {fps:g} fps." + (
        " (Tiny test model: the video is noise.)" if app.is_tiny else ""
    )


def _read_png(path: Path) -> np.ndarray:
    from pose_extraction.images import read_image

    return read_image(path)


def _zip_frames(frames_dir: Path, target: Path) -> Path | None:
    pngs = sorted(frames_dir.glob("*.png")) if frames_dir.is_dir() else []
    if not pngs:
        return None
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        for png in pngs:
            z.write(png, png.name)
    return target
