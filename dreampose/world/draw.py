"""Rasterising body parts: each part is a region of pixels with its own surface coordinates.

A picture and its pose are painted from the same regions in the same (far to near) order, so the
pose's body labels cover exactly the pixels where the person is drawn. Edges are hard (labels
are indices, and a blended edge pixel would belong to neither side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

UV_FLOOR = 0.02  # body U, V are kept in [UV_FLOOR, 1]: 0 is the pose file's "no body"


@dataclass
class Region:
    """Pixels ``mask`` inside the box ``rows x cols`` with surface coordinates.

    ``u`` runs along the part (0 at its root), ``v`` across it (0.5 on its centre line), both in
    [0, 1]; ``along`` and ``across`` are the same in pixels (patterns keep their size on any part).
    """

    rows: slice
    cols: slice
    mask: np.ndarray
    u: np.ndarray
    v: np.ndarray
    along: np.ndarray
    across: np.ndarray


def _box(points, margin: float, size: tuple[int, int]) -> tuple[slice, slice] | None:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    y0, y1 = max(int(math.floor(min(ys) - margin)), 0), min(int(math.ceil(max(ys) + margin)) + 1, size[0])
    x0, x1 = max(int(math.floor(min(xs) - margin)), 0), min(int(math.ceil(max(xs) + margin)) + 1, size[1])
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)


def band(
    start, end, start_width: float, end_width: float, size: tuple[int, int], round_ends: bool
) -> Region | None:
    """A limb or a torso: the pixels within a half-width (tapering from ``start_width`` to
    ``end_width``) of the segment ``start`` -> ``end`` (pixels, x then y).

    ``round_ends`` caps both ends with half discs (limbs); without it the band stops square
    at its ends (torso, skirt).
    """
    box = _box([start, end], max(start_width, end_width) + 1, size)
    if box is None:
        return None
    rows, cols = box
    ys, xs = np.mgrid[rows, cols].astype(np.float32) + 0.5  # pixel centres
    d = np.subtract(end, start, dtype=np.float32)
    length = max(float(np.hypot(*d)), 1e-3)
    axis, normal = d / length, np.array([-d[1], d[0]], np.float32) / length
    qx, qy = xs - start[0], ys - start[1]
    t = (qx * axis[0] + qy * axis[1]) / length
    across = qx * normal[0] + qy * normal[1]
    tc = np.clip(t, 0.0, 1.0)
    width = start_width + (end_width - start_width) * tc
    if round_ends:
        mask = np.hypot((t - tc) * length, across) <= width
    else:
        mask = (t >= 0) & (t <= 1) & (np.abs(across) <= width)
    v = 0.5 + 0.5 * np.clip(across / np.maximum(width, 1e-3), -1, 1)
    return Region(rows, cols, mask, tc, v, tc * length, across)


def disk(centre, radius: float, size: tuple[int, int]) -> tuple[Region, np.ndarray] | None:
    """A disc and, for each of its pixels, the unit vector of the visible sphere point
    (x, y, z) with z towards the viewer: a head is shaded, split and coloured from it."""
    box = _box([centre], radius + 1, size)
    if box is None:
        return None
    rows, cols = box
    ys, xs = np.mgrid[rows, cols].astype(np.float32) + 0.5
    dx, dy = (xs - centre[0]) / radius, (ys - centre[1]) / radius
    mask = dx * dx + dy * dy <= 1.0
    dz = np.sqrt(np.clip(1.0 - dx * dx - dy * dy, 0.0, 1.0))
    region = Region(rows, cols, mask, np.zeros_like(dx), np.zeros_like(dx), dy * radius, dx * radius)
    return region, np.stack([dx, dy, dz])


@dataclass
class Canvas:
    """A picture and its pose maps, painted part by part from far to near."""

    rgb: np.ndarray  # (H, W, 3) float32, 0..255
    labels: np.ndarray  # (H, W) uint8
    uv: np.ndarray  # (2, H, W) float32

    @classmethod
    def over(cls, background: np.ndarray) -> Canvas:
        h, w = background.shape[:2]
        return cls(background.astype(np.float32), np.zeros((h, w), np.uint8), np.zeros((2, h, w), np.float32))

    def paint(self, region: Region, labels, colour: np.ndarray) -> None:
        """Paint ``region`` with ``labels`` (one part index, or one per pixel) and ``colour`` (h, w, 3)."""
        m = region.mask
        r, c = region.rows, region.cols
        self.rgb[r, c][m] = colour[m]
        self.labels[r, c][m] = labels if np.isscalar(labels) else np.asarray(labels)[m]
        self.uv[0, r, c][m] = UV_FLOOR + (1 - UV_FLOOR) * np.clip(region.u[m], 0, 1)
        self.uv[1, r, c][m] = UV_FLOOR + (1 - UV_FLOOR) * np.clip(region.v[m], 0, 1)

    def picture(self) -> np.ndarray:
        return np.clip(np.rint(self.rgb), 0, 255).astype(np.uint8)
