"""Following one person through a video, and filling the frames where they were not found.

The official DreamPose preprocessing keeps "the first detection" of every frame, which
is simply the highest-scoring person of that frame: with two people on screen the pose
can jump from one to the other. Here the person is chosen once (the highest-scoring
person of the first frame in which anybody is found) and then followed by box overlap
(IoU) with where they were last seen. A frame where nobody overlaps enough counts as
missing, and is later filled with the pose of the nearest frame that has the person.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pose_extraction.types import DetectedPerson, PersonBox

# Consecutive boxes of one moving person overlap far more than this at video frame rates;
# a different person standing next to them overlaps far less.
DEFAULT_MIN_IOU = 0.3


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes given as x0, y0, x1, y1."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


class PersonTracker:
    """Online tracker: feed it each frame's detections in order, get back the chosen person.

    Online so that extraction can keep only the tracked person of each frame instead of
    every detection of the whole video.
    """

    def __init__(self, min_iou: float = DEFAULT_MIN_IOU) -> None:
        if not 0.0 < min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1]; got {min_iou}")
        self.min_iou = min_iou
        self.last_box: np.ndarray | None = None  # where the person was last seen

    def update(
        self, people: Sequence[DetectedPerson] | Sequence[PersonBox]
    ) -> DetectedPerson | PersonBox | None:
        """The tracked person among ``people`` (one frame), or None when not found. Only boxes and
        scores decide, so it can choose before the DensePose head runs (``PersonBox``)."""
        if not people:
            return None
        if self.last_box is None:
            # Not chosen yet: the most confident person of the first frame with anyone.
            chosen = max(people, key=lambda p: p.score)
        else:
            # Best overlap with the last sighting; the score only breaks exact ties.
            chosen = max(people, key=lambda p: (box_iou(p.box_xyxy, self.last_box), p.score))
            if box_iou(chosen.box_xyxy, self.last_box) < self.min_iou:
                return None  # somebody else: keep waiting for our person near the last sighting
        self.last_box = np.asarray(chosen.box_xyxy, dtype=np.float32)
        return chosen


def nearest_found(found: Sequence[bool] | np.ndarray) -> np.ndarray:
    """For every frame, the index of the nearest frame where the person was found.

    Found frames map to themselves; on a tie the earlier frame wins (the pose the viewer
    has just seen). Raises ``ValueError`` when the person is found in no frame.
    """
    found = np.asarray(found, dtype=bool)
    if found.ndim != 1 or found.size == 0:
        raise ValueError("need a non-empty list of per-frame flags")
    hits = np.flatnonzero(found)
    if hits.size == 0:
        raise ValueError(
            f"no person was detected in any of the {found.size} frames; use a video where one "
            "person is clearly visible (whole body, good light)"
        )
    frames = np.arange(found.size)
    after = np.searchsorted(hits, frames)  # first found frame at or after each frame
    next_hit = hits[np.minimum(after, hits.size - 1)]
    prev_hit = hits[np.maximum(after - 1, 0)]
    # Where no found frame precedes, prev_hit is hits[0] (after) and the comparison still
    # picks it because it is the only candidate; likewise at the end.
    use_prev = np.abs(frames - prev_hit) <= np.abs(next_hit - frames)
    return np.where(found, frames, np.where(use_prev, prev_hit, next_hit))


def format_frame_list(indices: Sequence[int] | np.ndarray) -> str:
    """Frame numbers as compact ranges for messages, e.g. ``3-5, 9, 12-13``."""
    indices = sorted(int(i) for i in indices)
    parts: list[str] = []
    start = prev = None
    for i in [*indices, None]:
        if start is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)
