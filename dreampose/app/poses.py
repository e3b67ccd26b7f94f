"""Step 2 of the app: a driving video (or pose file) to poses on the canvas, aligned to the
subject photo, with previews a person can check before rendering."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreampose.app.messages import Eta, UserError, sentence
from dreampose.app.service import AppService, Progress, no_progress
from dreampose.app.sessions import Session
from dreampose.app.uploads import check_upload_size, driving_kind
from pose_extraction.pose_sequence import PoseFileError, PoseSequence


@dataclass
class ExtractResult:
    preview_video: Path  # poses before/after alignment (or just the poses)
    subject_image: np.ndarray  # the photo next to its own pose
    num_frames: int
    fps: float
    message: str


class ExtractionCancelled(Exception):
    """Raised from the progress callback when the user cancels extraction."""


def extract_poses(
    app: AppService,
    session: Session,
    photos: list | None,
    driving: str | os.PathLike | None,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    align: bool = True,
    progress: Progress = no_progress,
):
    """Driving video / pose file -> poses on the canvas (aligned to the photo), with previews.

    Without a new ``driving`` upload the poses extracted before are placed again, so
    toggling "align" costs nothing.
    """
    photo_paths = app.photos(session, photos)
    notes: list[str] = []
    with session.job("poses") as cancel:
        if driving:
            raw = _read_driving(app, Path(driving), fps, start, end, max_frames, progress, notes, cancel)
            raw.save(session.raw_poses_path)  # kept even if the steps below fail
        elif session.raw_poses_path.is_file():
            raw = PoseSequence.load(session.raw_poses_path)
        else:
            raise UserError("Please add a driving video or a pose file (step 1).")
        subject = _subject_pose(app, session, photo_paths[0], required=align)
        preview, placed = _place(app, session, raw, subject, align)
    summary = f"{len(placed)} pose frames at {placed.fps:g} fps" + (
        ", aligned to the photo." if align else "."
    )
    return ExtractResult(
        preview,
        _subject_picture(app, photo_paths[0], subject),
        len(placed),
        placed.fps,
        " ".join([summary, *notes]),
    )


def _read_driving(app, path, fps, start, end, max_frames, progress, notes, cancel) -> PoseSequence:
    from dreampose.poses import load_driving_poses

    path = check_upload_size(path, app.limits, "driving video or pose file")
    kind = driving_kind(path)
    try:
        if kind == "video":
            seq = _extract_video(app, path, fps, start, end, max_frames, progress, notes, cancel)
        else:  # only the frames this app keeps are unpacked, within its byte budget
            cap, budget = app.limits.max_pose_frames, app.limits.max_pose_bytes
            seq = load_driving_poses(path, fps=fps or None, max_frames=cap, max_bytes=budget)
    except ExtractionCancelled:
        raise UserError("Pose extraction was cancelled; nothing was changed.") from None
    except (PoseFileError, ValueError) as e:
        if isinstance(e, UserError):
            raise
        raise UserError(sentence(e)) from e
    in_file = seq.extra.get("frames_in_file", len(seq))
    if in_file > app.limits.max_pose_frames:
        notes.append(
            f"The pose file has {in_file} frames; this app keeps the first {app.limits.max_pose_frames}."
        )
        seq = seq.select(slice(0, app.limits.max_pose_frames))
    return seq


def _extract_video(app, path, fps, start, end, max_frames, progress, notes, cancel) -> PoseSequence:
    from pose_extraction.densepose.tiny import TINY_POSES_NOTE, is_tiny_random
    from pose_extraction.extract import extract_poses as extract
    from pose_extraction.video_reader import VideoLimits

    limits = VideoLimits(max_duration_s=app.limits.max_video_seconds, max_pixels=app.limits.max_pixels)
    cap = app.limits.max_pose_frames
    max_frames = min(int(max_frames), cap) if max_frames else cap
    progress(0, 1, "Loading the pose detector (DensePose)")
    extractor = app.models.extractor()
    eta = Eta()

    def report(done: int, total: int) -> None:
        if cancel.is_set():
            raise ExtractionCancelled
        total = max(total, done)
        progress(done, total, "Finding poses: " + eta.text(done, total, "frames"))

    seq = extract(
        path, extractor, fps=fps or None, max_frames=max_frames, start=start or None, end=end or None,
        progress=report, limits=limits,
    )  # fmt: skip
    if len(seq) == max_frames and max_frames == cap:
        notes.append(f"Only the first {cap} frames were used (this app's limit).")
    if seq.missing.any():
        notes.append(f"Nobody was found in {int(seq.missing.sum())} frame(s); they reuse the nearest pose.")
    if is_tiny_random(extractor):
        notes.append(TINY_POSES_NOTE)
    return seq


def _subject_pose(app: AppService, session: Session, photo: Path, required: bool) -> PoseSequence | None:
    """The photo's own pose, cached per photo; None (or an error if required) without a person."""
    from pose_extraction.extract import extract_image_pose

    cached = session.folder / f"subject_pose_{photo.stem}.npz"
    if cached.is_file():
        return PoseSequence.load(cached)
    try:
        seq = extract_image_pose(photo, app.models.extractor())
    except ValueError as e:
        if required:
            raise UserError(
                "No person was found in the subject photo. Use a photo where the whole body is clearly "
                "visible, or untick 'Align poses to the photo'."
            ) from e
        return None
    seq.save(cached)
    return seq


def _place(app, session, raw, subject, align) -> tuple[Path, PoseSequence]:
    from dreampose.poses import place_poses
    from pose_extraction.placement import body_box, fit_sequence
    from pose_extraction.visualize import write_alignment_preview, write_preview

    height, width = app.canvas
    before = place_poses(raw, height, width)
    preview = session.path("poses_preview.mp4")
    if align and subject is not None:
        try:
            placed = place_poses(raw, height, width, subject, align=True)
        except ValueError as e:
            raise UserError(sentence(e)) from e
        box = body_box(fit_sequence(subject, height, width).labels[0])
        write_alignment_preview(before, placed, preview, subject_box=box)
    else:
        placed = before
        write_preview(placed, preview)
    placed.save(session.poses_path)
    return preview, placed


def _subject_picture(app: AppService, photo: Path, subject: PoseSequence | None) -> np.ndarray:
    """The photo on the canvas next to its own pose (blank when no person was found)."""
    from pose_extraction.canvas import fit_image
    from pose_extraction.images import read_image
    from pose_extraction.placement import fit_sequence
    from pose_extraction.visualize import render_parts

    height, width = app.canvas
    picture = fit_image(read_image(photo), height, width)
    pose = np.zeros_like(picture)
    if subject is not None:
        pose = render_parts(fit_sequence(subject, height, width).labels[0])
    gap = np.full((height, 4, 3), 40, np.uint8)
    return np.concatenate([picture, gap, pose], axis=1)
