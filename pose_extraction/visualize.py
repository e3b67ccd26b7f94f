"""Pictures of pose sequences: what the model will be conditioned on, made visible.

Each preview frame shows two panels side by side: the body parts in distinct colours
(which part DensePose saw where) and the UV view (U in red, V in green), which shows the
surface coordinates the model actually receives. ``alignment_frames`` puts the driving
poses before and after "align to subject" next to each other, with the subject's body
box drawn on both, so a user can see why the animation will stand where it stands.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pose_extraction.pose_sequence import NUM_PART_LABELS, PoseSequence

_GAP = 4  # pixels of dark border between panels


def part_palette() -> np.ndarray:
    """(25, 3) uint8 RGB: black background, then 24 well-separated hues for the parts."""
    colours = [(0, 0, 0)]
    for i in range(NUM_PART_LABELS - 1):
        # Stepping the hue by a golden-ratio fraction keeps neighbouring indices (often
        # neighbouring body parts) far apart on the colour wheel.
        hue = (i * 0.618033988749895) % 1.0
        value = 1.0 if i % 2 == 0 else 0.75
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, value)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return np.array(colours, dtype=np.uint8)


_PALETTE = part_palette()


def render_parts(labels: np.ndarray) -> np.ndarray:
    """Part-index picture (H, W, 3) uint8 of one frame's labels (H, W)."""
    return _PALETTE[np.clip(labels, 0, NUM_PART_LABELS - 1)]


def render_uv(uv: np.ndarray) -> np.ndarray:
    """UV picture (H, W, 3) uint8 of one frame (2, H, W): U red, V green, body tinted blue."""
    uv = np.asarray(uv, dtype=np.float32)
    body = (uv != 0).any(axis=0)
    image = np.zeros((*uv.shape[1:], 3), dtype=np.uint8)
    image[..., 0] = np.round(uv[0] * 255)
    image[..., 1] = np.round(uv[1] * 255)
    image[..., 2] = body * 96  # so U = V = 0 body pixels are not lost against the background
    return image


def render_frame(seq: PoseSequence, index: int, title: str | None = None) -> np.ndarray:
    """One preview frame: parts and UV panels side by side, missing frames marked."""
    parts = render_parts(seq.labels[index])
    uv = render_uv(seq.uv[index])
    frame = _side_by_side([parts, uv])
    caption = title or f"frame {index}"
    if seq.missing[index]:
        caption += " (no person: filled in)"
    return _caption(frame, caption)


def preview_frames(seq: PoseSequence) -> Iterator[np.ndarray]:
    """Preview frames for the whole sequence, rendered one at a time."""
    for i in range(len(seq)):
        yield render_frame(seq, i)


def write_preview(seq: PoseSequence, path: str | os.PathLike, fps: float | None = None) -> Path:
    """Render ``seq`` to an mp4 (H.264) at its own frame rate unless ``fps`` is given."""
    from dreampose.media.video_writer import write_mp4

    return write_mp4(preview_frames(seq), path, fps or seq.fps)


def alignment_frames(
    before: PoseSequence, after: PoseSequence, subject_box: np.ndarray | None = None
) -> Iterator[np.ndarray]:
    """Before/after "align to subject", part colours, both on the same canvas.

    ``subject_box`` (x0, y0, x1, y1 on that canvas) is outlined in white on both panels.
    """
    if len(before) != len(after) or (before.height, before.width) != (after.height, after.width):
        raise ValueError("before and after must have the same number of frames and the same canvas size")
    for i in range(len(before)):
        panels = []
        for seq, label in ((before, "before"), (after, "after")):
            panel = render_parts(seq.labels[i]).copy()
            if subject_box is not None:
                x0, y0, x1, y1 = (int(round(float(v))) for v in subject_box)
                cv2.rectangle(panel, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), 1)
            panels.append(_caption(panel, label))
        yield _side_by_side(panels)


def write_alignment_preview(
    before: PoseSequence,
    after: PoseSequence,
    path: str | os.PathLike,
    subject_box: np.ndarray | None = None,
) -> Path:
    """Write :func:`alignment_frames` to an mp4 at the sequence's frame rate."""
    from dreampose.media.video_writer import write_mp4

    return write_mp4(alignment_frames(before, after, subject_box), path, after.fps)


def _side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    height = max(p.shape[0] for p in panels)
    gap = np.full((height, _GAP, 3), 40, dtype=np.uint8)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0))) for p in panels]
    pieces = [padded[0]]
    for p in padded[1:]:
        pieces += [gap, p]
    return np.concatenate(pieces, axis=1)


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    """Small white text with a dark outline in the top-left corner (readable on any colour)."""
    image = np.ascontiguousarray(image).copy()
    scale = max(0.35, image.shape[0] / 900)
    org = (4, int(14 * scale / 0.35))
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image
