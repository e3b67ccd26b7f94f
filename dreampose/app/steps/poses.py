"""Step 2 of the app: a driving video (or pose file) to poses on the canvas, aligned to the
subject photo, with previews a person can check before rendering.

Every phase reports itself (loading the detector, reading the video, frame k of N) and can
be cancelled until the new poses are saved. The bundled example's poses ship with the app,
so the example needs no detector. A body that cannot be a person (a speck, a sliver, far
smaller than the photo's) is reported instead of silently blown up by the alignment.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dreampose.app.messages import Eta, UserError, sentence, warning
from dreampose.app.service import AppService, OnProgress, no_progress
from dreampose.app.sessions import Session
from dreampose.app.uploads import POSE_FRAME_BYTES, check_upload_size, driving_kind
from pose_extraction.pose_sequence import PoseFileError, PoseSequence

# A person's body on the canvas, before aligning: at least this share of the canvas height,
# and not thinner than a sliver. Alignment to the photo may scale it up at most this much.
MIN_BODY_HEIGHT = 0.08
MIN_BODY_ASPECT = 0.08  # width / height (and height / width)
MAX_ALIGN_SCALE = 4.0


@dataclass
class ExtractResult:
    preview_video: Path  # poses before/after alignment (or just the poses)
    subject_image: np.ndarray  # the photo next to its own pose
    num_frames: int
    fps: float
    message: str
    warnings: list[str] = field(default_factory=list)  # what the page shows prominently


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
    progress: OnProgress = no_progress,
) -> ExtractResult:
    """Driving video / pose file -> poses on the canvas (aligned to the photo), with previews.

    Without a new ``driving`` upload the poses extracted before are placed again, so
    toggling "align" costs nothing. Cancelling keeps the poses extracted before.
    """
    photo_paths = app.photos(session, photos)
    notes: list[str] = []
    warnings: list[str] = []
    with session.job("poses") as cancel:

        def check_cancel() -> None:
            if cancel.is_set():
                raise ExtractionCancelled

        try:
            key = _request_key(driving, fps, start, end, max_frames)
            facts = session.recall()
            if driving and facts.get("extracted") == key and session.raw_poses_path.is_file():
                # The same upload with the same options (the page sends the video again when
                # only "align" changed): place the poses extracted before, extract nothing.
                raw = PoseSequence.load(session.raw_poses_path)
                notes += facts.get("extract_notes", [])
                warnings += facts.get("extract_warnings", [])
            elif driving:
                raw = _read_driving(
                    app, session, Path(driving), fps, start, end, max_frames, progress, notes, warnings, check_cancel
                )  # fmt: skip
                check_cancel()
                raw.save(session.raw_poses_path)  # kept even if the steps below fail
                session.remember(extracted=key, extract_notes=notes, extract_warnings=warnings)
            elif session.raw_poses_path.is_file():
                raw = PoseSequence.load(session.raw_poses_path)
            else:
                raise UserError("Please add a driving video or a pose file (step 1).")
            subject = _subject_pose(app, session, photo_paths[0], align, progress, check_cancel)
        except ExtractionCancelled:
            raise UserError(
                "Pose extraction was cancelled; the poses you had before (if any) are kept."
            ) from None
        progress(0, 1, "Placing the poses on the canvas")
        preview, placed, aligned = _place(app, session, raw, subject, align, warnings)
    summary = f"{len(placed)} pose frames at {placed.fps:g} fps" + (
        ", aligned to the photo." if aligned else "."
    )
    if len(placed) > app.limits.max_render_frames:
        notes.append(
            f"One render covers at most {app.limits.max_render_frames} frames: the range is set to the first "
            f"{app.limits.max_render_frames}; render the rest in parts (step 5 sets the next part for you)."
        )
    return ExtractResult(
        preview,
        _subject_picture(app, photo_paths[0], subject),
        len(placed),
        placed.fps,
        " ".join([summary, *notes]),
        warnings,
    )


def _request_key(driving, fps, start, end, max_frames) -> str | None:
    """What identifies an extraction: the upload (its path, size and time) and the options."""
    if not driving or not Path(driving).is_file():
        return None
    stat = Path(driving).stat()
    return json.dumps(
        [str(Path(driving).resolve()), stat.st_size, stat.st_mtime_ns, fps, start, end, max_frames]
    )


def _read_driving(
    app, session, path, fps, start, end, max_frames, progress, notes, warnings, check_cancel
) -> PoseSequence:
    from dreampose.app.examples import BUNDLED_NOTE, bundled_video_poses
    from dreampose.rendering.poses import load_driving_poses

    path = check_upload_size(path, app.limits, "driving video or pose file", app.uploads)
    kind = driving_kind(path)
    cap = app.limits.max_pose_frames
    try:
        if kind != "video":
            progress(0, 1, "Reading the pose file")
            # Only the frames this app keeps are unpacked, within its byte budget.
            seq = load_driving_poses(
                path, fps=fps or None, max_frames=cap, max_bytes=app.limits.max_pose_bytes,
                max_frame_bytes=POSE_FRAME_BYTES,
            )  # fmt: skip
            session.remember(video=path.stem, sound=None)
        elif (bundled := bundled_video_poses(path)) is not None:
            seq = _at_times(bundled, fps, start, end, int(max_frames) if max_frames else None)
            notes.append(BUNDLED_NOTE)
            _keep_sound(session, path, start)
        else:
            seq = _extract_video(app, path, fps, start, end, max_frames, progress, notes, check_cancel)
            _keep_sound(session, path, start)
    except (PoseFileError, ValueError) as e:
        if isinstance(e, UserError):
            raise
        raise UserError(sentence(e)) from e
    in_file = seq.extra.get("frames_in_file", len(seq))  # a pose file is read up to the limit only
    if max(in_file, len(seq)) > cap:
        notes.append(f"The poses have {max(in_file, len(seq))} frames; this app keeps the first {cap}.")
        seq = seq.select(slice(0, cap))
    if seq.missing.any():
        warnings.append(
            f"Nobody was found in {int(seq.missing.sum())} of {len(seq)} frames; they reuse the pose of the "
            "nearest frame with a person. Check the pose video."
        )
    return seq


def _extract_video(app, path, fps, start, end, max_frames, progress, notes, check_cancel) -> PoseSequence:
    from dreampose.media.video_reader import VideoLimits
    from pose_extraction.densepose.tiny import TINY_POSES_NOTE, is_tiny_random
    from pose_extraction.extract import extract_poses as extract

    limits = VideoLimits(max_duration_s=app.limits.max_video_seconds, max_pixels=app.limits.max_pixels)
    cap = app.limits.max_pose_frames
    max_frames = min(int(max_frames), cap) if max_frames else cap
    progress(0, 1, "Loading the pose detector (DensePose)")
    extractor = app.models.extractor()
    check_cancel()
    progress(0, 1, "Reading the video")
    eta = Eta()

    def report(done: int, total: int) -> None:
        check_cancel()
        total = max(total, done)
        progress(done, total, "Finding poses: " + eta.text(done, total, "frames"))

    seq = extract(
        path, extractor, fps=fps or None, max_frames=max_frames, start=start or None, end=end or None,
        progress=report, limits=limits,
    )  # fmt: skip
    if len(seq) == max_frames and max_frames == cap:
        notes.append(f"Only the first {cap} frames were used (this app's limit).")
    if is_tiny_random(extractor):
        notes.append(TINY_POSES_NOTE)
    return seq


def _at_times(seq: PoseSequence, fps, start, end, max_frames: int | None) -> PoseSequence:
    """The frames of a pose sequence shown at ``start + k / fps`` (before ``end``), as the video
    reader would pick them from the video it was made from, under the reader's rules."""
    from dreampose.media.video_reader import check_request

    check_request(fps or None, start or None, end or None, max_frames)  # 0 and None: the defaults
    fps = float(fps or seq.fps)
    start = float(start or 0.0)
    length = len(seq) / seq.fps
    end = min(float(end), length) if end else length
    if start >= length:
        raise UserError(f"Start at {start:g} s is after the end of the video ({length:g} s long).")
    count = max(1, math.ceil((end - start) * fps - 1e-9))
    count = min(count, max_frames) if max_frames else count
    picked = [min(len(seq) - 1, int(math.floor((start + k / fps) * seq.fps + 1e-6))) for k in range(count)]
    out = seq.select(picked)
    out.fps = fps
    return out


def _keep_sound(session: Session, video: Path, start: float | None) -> None:
    """Keep the driving video's soundtrack for the render: pose frame k is its instant start + k / fps."""
    from dreampose.media.video_reader import probe_video

    keep = session.keep_driving_sound(video) if probe_video(video).has_audio else None
    session.remember(video=video.stem, sound=keep.name if keep else None, sound_start=float(start or 0.0))


def _subject_pose(app: AppService, session: Session, photo: Path, required: bool, progress, check_cancel):
    """The photo's own pose, cached per photo; None (or an error if required) without a person."""
    from dreampose.app.examples import bundled_photo_pose
    from dreampose.media.images import read_image
    from pose_extraction.extract import extract_image_pose

    cached = session.subject_pose_path(photo)
    if cached.is_file():
        return PoseSequence.load(cached)
    seq = bundled_photo_pose(read_image(photo))
    if seq is None:
        progress(0, 1, "Loading the pose detector (DensePose)")
        extractor = app.models.extractor()
        check_cancel()
        progress(0, 1, "Finding the pose in the photo")
        try:
            seq = extract_image_pose(photo, extractor)
        except ValueError as e:
            if required:
                raise UserError(
                    "No person was found in the subject photo. Use a photo where the whole body is clearly "
                    "visible, or untick 'Align poses to the photo'."
                ) from e
            return None
    seq.save(cached)
    return seq


def subject_poses(app: AppService, session: Session, photos: list[Path], progress, check_cancel):
    """One pose frame per subject photo, in order (for finetuning); None when the photos differ
    in size (one pose file holds frames of one size: finetuning then finds the poses itself)."""
    frames = [_subject_pose(app, session, photo, True, progress, check_cancel) for photo in photos]
    if len({(f.height, f.width) for f in frames}) != 1:
        return None
    return PoseSequence(
        uv=np.concatenate([f.uv for f in frames]),
        labels=np.concatenate([f.labels for f in frames]),
        boxes=np.concatenate([f.boxes for f in frames]),
        scores=np.concatenate([f.scores for f in frames]),
        missing=np.concatenate([f.missing for f in frames]),
        fps=frames[0].fps,
        source_size=frames[0].source_size,
    )


def implausible_body(
    before: PoseSequence, subject: PoseSequence | None, canvas: tuple[int, int]
) -> str | None:
    """Why the driving body on the canvas (before aligning) cannot be a person, or None.

    Aligning scales the whole sequence so its first body has the photo's body height; a
    speck or a sliver blown up that way gives garbage poses, so it is reported instead.
    """
    from pose_extraction.placement import body_box, fit_sequence, reference_box

    x0, y0, x1, y1 = (float(v) for v in reference_box(before))
    h, w = y1 - y0, x1 - x0
    height, width = canvas
    size = f"{w:.0f} x {h:.0f} pixels of the {width} x {height} canvas"
    if h < MIN_BODY_HEIGHT * height or w < 2:
        return f"the body found in the driving video is tiny ({size}), not a whole person"
    if w < MIN_BODY_ASPECT * h or h < MIN_BODY_ASPECT * w:
        return f"the body found in the driving video is a thin sliver ({size}), not a person's shape"
    if subject is not None:
        box = body_box(fit_sequence(subject, height, width).labels[0])
        if box is not None and (box[3] - box[1]) / h > MAX_ALIGN_SCALE:
            scale = (box[3] - box[1]) / h
            return (
                f"the body found in the driving video ({size}) is far smaller than the person in the photo: "
                f"aligning would blow it up {scale:.0f} times"
            )
    return None


def _place(app, session, raw, subject, align, warnings) -> tuple[Path, PoseSequence, bool]:
    from dreampose.rendering.poses import place_poses
    from pose_extraction.placement import body_box, fit_sequence
    from pose_extraction.visualize import write_alignment_preview, write_preview

    height, width = app.canvas
    before = place_poses(raw, height, width)
    preview = session.pose_preview_path
    problem = implausible_body(before, subject, app.canvas)
    if problem is not None:
        warnings.append(
            sentence(problem)
            + (" The poses were not aligned to the photo." if align and subject is not None else "")
            + " Check the pose video; a clip where one dancer fills more of the frame works better."
        )
    aligned = align and subject is not None and problem is None
    if aligned:
        try:
            placed = place_poses(raw, height, width, subject, align=True)
        except ValueError as e:
            raise UserError(sentence(e)) from e
        box = body_box(fit_sequence(subject, height, width).labels[0])
        write_alignment_preview(before, placed, preview, subject_box=box)
    else:
        write_preview(before, preview)
        # Official models stretch unaligned poses onto the canvas themselves, as the official code does.
        placed = place_poses(raw, height, width, numerics=app.numerics)
    placed.save(session.poses_path)
    return preview, placed, aligned


def _subject_picture(app: AppService, photo: Path, subject: PoseSequence | None) -> np.ndarray:
    """The photo on the canvas next to its own pose (blank when no person was found)."""
    from dreampose.media.canvas import fit_image
    from dreampose.media.images import read_image
    from pose_extraction.placement import fit_sequence
    from pose_extraction.visualize import render_parts

    height, width = app.canvas
    picture = fit_image(read_image(photo), height, width)
    pose = np.zeros_like(picture)
    if subject is not None:
        pose = render_parts(fit_sequence(subject, height, width).labels[0])
    gap = np.full((height, 4, 3), 40, np.uint8)
    return np.concatenate([picture, gap, pose], axis=1)


def warnings_text(result: ExtractResult) -> str:
    """The result's message with its warnings first, prominent."""
    return "\n\n".join([*(warning(w) for w in result.warnings), result.message])
