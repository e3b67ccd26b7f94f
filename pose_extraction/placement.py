"""Placing driving poses on the output canvas, optionally aligned to the subject's body.

Two steps, both keeping body proportions:

1. **Fit**: the driving frames are letterboxed onto the canvas (640 x 512 by default)
   with :func:`dreampose.media.canvas.fit_pose`, exactly like the subject photo.
2. **Align to subject**: one scale and one shift for the *whole* sequence, chosen so the
   body in the first frame has the subject's body height, is centred on the subject
   horizontally and stands on the subject's ground line (the bottom of their body box).
   Using one transform for every frame keeps the dancer's own motion (steps, jumps)
   intact; only where the dance happens and how tall the dancer is change.

Misaligned poses (a small dancer far from where the subject stands) are the most common
reason animations look wrong, so alignment is on by default when the subject's pose is
known. Everything here is plain numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dreampose.media.canvas import fit_pose
from pose_extraction.pose_sequence import PoseSequence

DEFAULT_HEIGHT, DEFAULT_WIDTH = 640, 512


@dataclass(frozen=True)
class Alignment:
    """Maps canvas point (x, y) to (x * scale + shift_x, y * scale + shift_y)."""

    scale: float
    shift_x: float
    shift_y: float

    def box(self, box_xyxy: np.ndarray) -> np.ndarray:
        """Transform boxes (..., 4) given as x0, y0, x1, y1."""
        box = np.asarray(box_xyxy, dtype=np.float64) * self.scale
        return (box + np.array([self.shift_x, self.shift_y] * 2)).astype(np.float32)


def body_box(labels: np.ndarray) -> np.ndarray | None:
    """Box x0, y0, x1, y1 (pixel edges) around the body pixels (label > 0), or None."""
    ys, xs = np.nonzero(np.asarray(labels) > 0)
    if xs.size == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def alignment_between(driving_box: np.ndarray, subject_box: np.ndarray) -> Alignment:
    """The scale and shift that put ``driving_box`` onto ``subject_box``.

    Heights are matched, horizontal centres and bottoms (the ground line) coincide; the
    width follows from the scale, so the driving body's proportions are kept.
    """
    dx0, dy0, dx1, dy1 = (float(v) for v in driving_box)
    sx0, sy0, sx1, sy1 = (float(v) for v in subject_box)
    if dy1 <= dy0 or sy1 <= sy0:
        raise ValueError(
            f"cannot align poses: a body box has no height (driving {driving_box}, subject {subject_box})"
        )
    scale = (sy1 - sy0) / (dy1 - dy0)
    shift_x = (sx0 + sx1) / 2 - scale * (dx0 + dx1) / 2
    shift_y = sy1 - scale * dy1
    return Alignment(scale, shift_x, shift_y)


def warp_pose(uv: np.ndarray, labels: np.ndarray, alignment: Alignment) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``alignment`` to pose maps (N, 2, H, W) and (N, H, W), same canvas size.

    Nearest-neighbour (UV values of different parts must not blend); what leaves the
    canvas is cut off and uncovered canvas is background (0).
    """
    height, width = labels.shape[-2:]
    rows, row_ok = _source_indices(height, alignment.scale, alignment.shift_y)
    cols, col_ok = _source_indices(width, alignment.scale, alignment.shift_x)
    keep = row_ok[:, None] & col_ok[None, :]
    out_uv = uv[..., rows[:, None], cols[None, :]] * keep.astype(uv.dtype)
    out_labels = labels[..., rows[:, None], cols[None, :]] * keep.astype(labels.dtype)
    return out_uv, out_labels


def _source_indices(size: int, scale: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """For each output pixel along one axis, the source pixel whose area holds its centre."""
    centres = np.arange(size) + 0.5
    source = np.floor((centres - shift) / scale).astype(np.int64)
    valid = (source >= 0) & (source < size)
    return np.clip(source, 0, size - 1), valid


def fit_sequence(seq: PoseSequence, height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH) -> PoseSequence:
    """Letterbox a pose sequence onto a height x width canvas (no distortion, no crop)."""
    if (seq.height, seq.width) == (height, width):
        return seq
    uv, labels, fit = fit_pose(seq.uv, seq.labels, height, width)
    return _replace(seq, uv, labels, fit.box(seq.boxes))


def reference_box(seq: PoseSequence) -> np.ndarray:
    """Body box of the first frame where the person was actually detected."""
    first = int(np.flatnonzero(~seq.missing)[0]) if (~seq.missing).any() else 0
    box = body_box(seq.labels[first])
    return seq.boxes[first].astype(np.float32) if box is None else box


def align_to_subject(seq: PoseSequence, subject_box: np.ndarray) -> tuple[PoseSequence, Alignment]:
    """Scale and shift the whole sequence so its first body lands on ``subject_box``.

    ``subject_box`` (x0, y0, x1, y1) is in the sequence's own pixels: fit both onto the
    same canvas first (:func:`place_on_canvas` does all of it).
    """
    alignment = alignment_between(reference_box(seq), subject_box)
    uv, labels = warp_pose(seq.uv, seq.labels, alignment)
    return _replace(seq, uv, labels, alignment.box(seq.boxes)), alignment


def place_on_canvas(
    seq: PoseSequence,
    height: int = DEFAULT_HEIGHT,
    width: int = DEFAULT_WIDTH,
    subject: PoseSequence | None = None,
    align: bool = True,
) -> PoseSequence:
    """Fit ``seq`` onto the canvas and, when the subject's pose is given, align to it.

    ``subject`` is the subject photo's pose (one frame, any size: it is fitted onto the
    canvas the same way as the photo itself).
    """
    placed = fit_sequence(seq, height, width)
    if subject is None or not align:
        return placed
    subject = fit_sequence(subject, height, width)
    box = body_box(subject.labels[0])
    if box is None:
        raise ValueError("the subject's pose has no body pixels; cannot align the driving poses to it")
    aligned, _ = align_to_subject(placed, box)
    return aligned


def _replace(seq: PoseSequence, uv: np.ndarray, labels: np.ndarray, boxes: np.ndarray) -> PoseSequence:
    return PoseSequence(
        uv=uv,
        labels=labels,
        boxes=np.asarray(boxes, dtype=np.float32),
        scores=seq.scores,
        missing=seq.missing,
        fps=seq.fps,
        source_size=seq.source_size,
        source_video=seq.source_video,
        source_start=seq.source_start,
    )
