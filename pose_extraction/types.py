"""What a DensePose backend returns for one detected person (and, before its head runs, its box)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PersonBox:
    """A person found by the detector, before the DensePose head ran: enough to choose whom to follow."""

    box_xyxy: np.ndarray  # float32 (4,): x0, y0, x1, y1 in image coordinates
    score: float


@dataclass(frozen=True)
class DetectedPerson:
    """One person found by DensePose in one image.

    ``labels`` and ``uv`` cover the integer box ``box_xywh`` (x, y, w, h), so pasting them
    at (x, y) in an all-zero image of the frame's size gives the full-frame pose.
    """

    box_xyxy: np.ndarray  # float32 (4,): x0, y0, x1, y1 in image coordinates
    score: float
    box_xywh: tuple[int, int, int, int]  # the integer box used for pasting
    labels: np.ndarray  # uint8 (h, w): part index 0..24, 0 = background
    uv: (
        np.ndarray
    )  # float32 (2, h, w): U, V as the head predicts them (in [0, 1] for real weights), 0 on background

    def paste(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Full-frame (uv float32 (2, H, W), labels uint8 (H, W)), clipped to the frame."""
        uv = np.zeros((2, height, width), dtype=np.float32)
        labels = np.zeros((height, width), dtype=np.uint8)
        x, y, w, h = self.box_xywh
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, width), min(y + h, height)
        if x1 > x0 and y1 > y0:
            src = np.s_[y0 - y : y1 - y, x0 - x : x1 - x]
            labels[y0:y1, x0:x1] = self.labels[src]
            uv[:, y0:y1, x0:x1] = self.uv[(slice(None), *src)]
        return uv, labels
