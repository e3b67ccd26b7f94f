"""Driving video (or photo) in, pose sequence out.

``extract_poses`` streams frames from :mod:`dreampose.media.video_reader` in batches
through a DensePose extractor, keeps the one tracked person per frame
(:mod:`pose_extraction.tracking`), pastes their UV and part maps into frame-sized
arrays, and fills frames without them from the nearest frame that has them.

The extractor is anything callable on a list of RGB uint8 images that returns, per
image, a list of :class:`~pose_extraction.types.DetectedPerson` (the interface of
``pose_extraction.densepose.DensePoseExtractor``); tests pass a small fake. An extractor
that also has ``detect`` and ``densepose`` (the native port) runs "boxes first": detection
on every frame, the tracker picks the person from the boxes, and the DensePose head runs on
that person alone instead of on everybody detected.

Pose maps are stored at the frame size, shrunk (uniformly, nearest-neighbour) when the
longer side exceeds ``max_pose_side``: a 300-frame 4K video at full size would need
about 15 GB, and the 640 x 512 canvas never needs more than about 1000 pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from dreampose.media.images import read_image
from dreampose.media.video_reader import VideoLimits, VideoStream
from pose_extraction.pose_sequence import PoseSequence
from pose_extraction.tracking import DEFAULT_MIN_IOU, PersonTracker, nearest_found
from pose_extraction.types import DetectedPerson

ProgressCallback = Callable[[int, int], None]  # (frames done, frames expected)

DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_POSE_SIDE = 1024


class Extractor(Protocol):
    def __call__(self, images: list[np.ndarray]) -> list[list[DetectedPerson]]: ...


def extract_poses(
    input_path: str | os.PathLike,
    extractor: Extractor,
    fps: float | None = None,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    limits: VideoLimits | None = None,
    max_pose_side: int | None = DEFAULT_MAX_POSE_SIDE,
    min_iou: float = DEFAULT_MIN_IOU,
) -> PoseSequence:
    """Pose sequence of the main person in a video (or a photo: one frame).

    ``fps`` resamples (default: the video's own rate); ``start``/``end`` are seconds;
    ``progress(done, total)`` is called after each batch (``total`` is an estimate until
    the end). Frames where the person was not found are filled from the nearest frame
    that has them and flagged in ``missing``. Raises ``ValueError`` when nobody is found
    at all, or for unreadable or over-limit input.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    stream = VideoStream(input_path, fps=fps, start=start, end=end, max_frames=max_frames, limits=limits)
    out_h, out_w = _pose_size(stream.height, stream.width, max_pose_side)
    tracker = PersonTracker(min_iou)
    collected = _Collector(out_h, out_w, stream.height, stream.width)
    batch: list[np.ndarray] = []
    for frame in stream:
        batch.append(frame)
        if len(batch) == batch_size:
            _run_batch(batch, extractor, tracker, collected, progress, stream.expected_frames)
            batch = []
    if batch:
        _run_batch(batch, extractor, tracker, collected, progress, stream.expected_frames)
    if progress is not None:
        progress(collected.count, collected.count)
    if collected.count and not any(collected.found):
        name = os.path.basename(os.fspath(input_path))
        raise ValueError(
            f"no person was detected in any of the {collected.count} frames of {name}; use a video "
            "where one person is clearly visible (whole body, good light)"
        )
    seq = collected.sequence(stream.fps, (stream.height, stream.width))
    if not stream.info.is_image:  # a render can then keep the video's sound, in sync
        seq.source_video, seq.source_start = str(Path(input_path).resolve()), float(start or 0.0)
    return seq


def extract_image_pose(image, extractor: Extractor) -> PoseSequence:
    """One-frame pose sequence of the most confident person in a photo, at its full size.

    ``image``: a path, PIL image or array (any photo ``read_image`` reads). Raises ``ValueError`` ("no person
    found in the photo") when nobody is detected.
    """
    image = read_image(image)
    if _boxes_first(extractor):
        (detections,) = extractor.detect([image])
        scores = [p.score for p in detections.candidates]
        chosen = int(np.argmax(scores)) if scores else None
        best = extractor.densepose([detections], [chosen])[0]
    else:
        people = _detect(extractor, [image])[0]
        best = max(people, key=lambda p: p.score) if people else None
    if best is None:
        raise ValueError("no person found in the photo; use a photo where the whole body is clearly visible")
    collected = _Collector(image.shape[0], image.shape[1], image.shape[0], image.shape[1])
    collected.add(best)
    return collected.sequence(30.0, image.shape[:2])


# ---------------------------------------------------------------------------- helpers
class _Collector:
    """Accumulates one tracked person per frame as pasted, storage-size pose maps."""

    def __init__(self, out_h: int, out_w: int, frame_h: int, frame_w: int) -> None:
        self.out_h, self.out_w = out_h, out_w
        self.frame_h, self.frame_w = frame_h, frame_w
        self.scale_x, self.scale_y = out_w / frame_w, out_h / frame_h
        self.uv: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.boxes: list[np.ndarray] = []
        self.scores: list[float] = []
        self.found: list[bool] = []

    @property
    def count(self) -> int:
        return len(self.found)

    def add(self, person: DetectedPerson | None) -> None:
        if person is None:
            # Placeholder, replaced by the nearest found frame in sequence().
            self.uv.append(np.zeros((2, self.out_h, self.out_w), dtype=np.float16))
            self.labels.append(np.zeros((self.out_h, self.out_w), dtype=np.uint8))
            self.boxes.append(np.zeros(4, dtype=np.float32))
            self.scores.append(0.0)
            self.found.append(False)
            return
        uv, labels = person.paste(self.frame_h, self.frame_w)
        if (self.out_h, self.out_w) != (self.frame_h, self.frame_w):
            size = (self.out_w, self.out_h)
            uv = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_NEAREST) for c in uv])
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
        scale = np.array([self.scale_x, self.scale_y] * 2, dtype=np.float32)
        self.uv.append(np.clip(uv, 0.0, 1.0).astype(np.float16))
        self.labels.append(labels.astype(np.uint8))
        self.boxes.append(np.asarray(person.box_xyxy, dtype=np.float32) * scale)
        self.scores.append(float(person.score))
        self.found.append(True)

    def sequence(self, fps: float, source_size: tuple[int, int]) -> PoseSequence:
        source = nearest_found(self.found)  # raises when nobody was found
        return PoseSequence(
            uv=np.stack([self.uv[i] for i in source]),
            labels=np.stack([self.labels[i] for i in source]),
            boxes=np.stack([self.boxes[i] for i in source]).astype(np.float32),
            scores=np.array([self.scores[i] for i in source], dtype=np.float32),
            missing=~np.asarray(self.found, dtype=bool),
            fps=fps,
            source_size=source_size,
        )


def _run_batch(
    batch: list[np.ndarray],
    extractor: Extractor,
    tracker: PersonTracker,
    collected: _Collector,
    progress: ProgressCallback | None,
    expected: int | None,
) -> None:
    if _boxes_first(extractor):
        detections = extractor.detect(batch)
        chosen = [_chosen_index(tracker, d.candidates) for d in detections]
        for person in extractor.densepose(detections, chosen):
            collected.add(person)
    else:
        for people in _detect(extractor, batch):
            collected.add(tracker.update(people))
    if progress is not None:
        progress(collected.count, max(expected or 0, collected.count))


def _boxes_first(extractor: Extractor) -> bool:
    """Whether the extractor can detect first and run the head on chosen people only:
    ``detect(images)`` -> per image an object with ``.candidates`` (PersonBox list), and
    ``densepose(detections, chosen indices)`` -> DetectedPerson or None per image."""
    return callable(getattr(extractor, "detect", None)) and callable(getattr(extractor, "densepose", None))


def _chosen_index(tracker: PersonTracker, candidates: Sequence) -> int | None:
    """Index of the tracked person among a frame's candidates (None: not found)."""
    chosen = tracker.update(candidates)
    return None if chosen is None else next(i for i, c in enumerate(candidates) if c is chosen)


def _detect(extractor: Extractor, images: list[np.ndarray]) -> Sequence[Sequence[DetectedPerson]]:
    results = extractor(images)
    if len(results) != len(images):
        raise RuntimeError(f"the pose extractor returned {len(results)} results for {len(images)} images")
    return results


def _pose_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """Storage size: the frame size, uniformly shrunk so the longer side fits ``max_side``."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))
