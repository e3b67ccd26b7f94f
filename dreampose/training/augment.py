"""Aligned crop-and-scale augmentation of an (image, pose) pair (paper section 4.3).

Finetuning on one photo and its pose quickly leads to "texture sticking": the model learns
to paste the photo's pixels at fixed canvas positions. The paper's remedy is to augment the
image-and-pose pair at every step, e.g. by random cropping. What matters is that the image
and its pose maps receive *exactly the same* geometric change, so the pose still describes
the person in the image. A crop is therefore sampled once, as fractions of the frame, and
applied to both, whatever their resolutions.

Flips are deliberately absent: mirroring swaps left and right body parts, which DensePose
encodes in its part labels and U, V charts, so a flipped pose would describe another body.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBox:
    """A crop as fractions of the frame: (top, left) corner and (height, width) size."""

    top: float
    left: float
    height: float
    width: float

    @classmethod
    def full(cls) -> CropBox:
        return cls(0.0, 0.0, 1.0, 1.0)

    def pixels(self, frame_height: int, frame_width: int) -> tuple[int, int, int, int]:
        """The crop in pixels (y0, x0, y1, x1) of a frame of this size, at least 1 x 1."""
        y0 = min(frame_height - 1, round(self.top * frame_height))
        x0 = min(frame_width - 1, round(self.left * frame_width))
        y1 = max(y0 + 1, min(frame_height, round((self.top + self.height) * frame_height)))
        x1 = max(x0 + 1, min(frame_width, round((self.left + self.width) * frame_width)))
        return y0, x0, y1, x1


def crop_image(image: np.ndarray, box: CropBox) -> np.ndarray:
    """Crop an RGB uint8 image (H, W, 3) to ``box`` and resize it back to H x W."""
    h, w = image.shape[:2]
    y0, x0, y1, x1 = box.pixels(h, w)
    if (y0, x0, y1, x1) == (0, 0, h, w):
        return image
    return cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1]), (w, h), interpolation=cv2.INTER_LINEAR)


def crop_pose(uv: np.ndarray, box: CropBox) -> np.ndarray:
    """Crop pose maps (..., H, W) to ``box`` and resize back to H x W.

    Nearest-neighbour, as everywhere poses are resampled: interpolating would blend U, V
    coordinates of different body parts (and the 0 background) into meaningless values.
    """
    h, w = uv.shape[-2:]
    y0, x0, y1, x1 = box.pixels(h, w)
    if (y0, x0, y1, x1) == (0, 0, h, w):
        return uv
    lead = uv.shape[:-2]
    planes = np.ascontiguousarray(uv[..., y0:y1, x0:x1]).reshape(-1, y1 - y0, x1 - x0)
    out = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_NEAREST) for p in planes])
    return out.reshape(*lead, h, w)
