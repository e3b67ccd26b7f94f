"""Fitting pictures and poses onto the output canvas without distortion.

The subject photo and every pose frame go through the same geometry: scale uniformly so
the whole source fits inside the canvas (height x width), centre it, and pad the rest
("letterbox"). Nothing is cropped, so no part of the body is lost. Images are padded by
replicating their edge pixels (a plausible background); poses are padded with 0, which
means "no body".
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CanvasFit:
    """Maps source pixel (x, y) to canvas pixel (x * scale + offset_x, y * scale + offset_y)."""

    scale: float
    offset_x: int
    offset_y: int
    resized_width: int
    resized_height: int

    @classmethod
    def compute(cls, src_height: int, src_width: int, height: int, width: int) -> CanvasFit:
        if min(src_height, src_width, height, width) < 1:
            raise ValueError(
                f"cannot fit a {src_height} x {src_width} picture onto a {height} x {width} canvas"
            )
        scale = min(height / src_height, width / src_width)
        rw = max(1, min(width, round(src_width * scale)))
        rh = max(1, min(height, round(src_height * scale)))
        return cls(scale, (width - rw) // 2, (height - rh) // 2, rw, rh)

    def box(self, box_xyxy: np.ndarray) -> np.ndarray:
        """Transform boxes (..., 4) given as x0, y0, x1, y1."""
        box = np.asarray(box_xyxy, dtype=np.float32) * self.scale
        return box + np.array([self.offset_x, self.offset_y] * 2, dtype=np.float32)


def fit_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fit an RGB uint8 image (H, W, 3) onto a height x width canvas (edge padding)."""
    fit = CanvasFit.compute(image.shape[0], image.shape[1], height, width)
    resized = cv2.resize(image, (fit.resized_width, fit.resized_height), interpolation=cv2.INTER_AREA)
    return _pad(resized, fit, height, width, mode="edge")


def fit_pose(uv: np.ndarray, labels: np.ndarray | None, height: int, width: int):
    """Fit pose maps (N, 2, H, W) and part labels (N, H, W) (or None) onto the canvas.

    Nearest-neighbour resampling: interpolating U/V would blend coordinates of different
    body parts (and the 0 background) into values that belong to no part.
    """
    fit = CanvasFit.compute(uv.shape[-2], uv.shape[-1], height, width)
    size = (fit.resized_width, fit.resized_height)
    out_uv = np.zeros((uv.shape[0], 2, height, width), dtype=uv.dtype)
    out_labels = None if labels is None else np.zeros((labels.shape[0], height, width), dtype=labels.dtype)
    ys = slice(fit.offset_y, fit.offset_y + fit.resized_height)
    xs = slice(fit.offset_x, fit.offset_x + fit.resized_width)
    for i in range(uv.shape[0]):
        for c in range(2):
            out_uv[i, c, ys, xs] = cv2.resize(uv[i, c], size, interpolation=cv2.INTER_NEAREST)
        if labels is not None:
            out_labels[i, ys, xs] = cv2.resize(labels[i], size, interpolation=cv2.INTER_NEAREST)
    return out_uv, out_labels, fit


def _pad(resized: np.ndarray, fit: CanvasFit, height: int, width: int, mode: str) -> np.ndarray:
    top, left = fit.offset_y, fit.offset_x
    bottom = height - fit.resized_height - top
    right = width - fit.resized_width - left
    pad = ((top, bottom), (left, right)) + ((0, 0),) * (resized.ndim - 2)
    return np.pad(resized, pad, mode=mode)
