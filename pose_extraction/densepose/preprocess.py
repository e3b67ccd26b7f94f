"""Image preparation exactly as detectron2's DefaultPredictor does it (spec §2).

RGB uint8 in, then: PIL bilinear resize of the uint8 image (shortest edge ``min_size``, longest at most
``max_size``), BGR float32 CHW, minus the BGR pixel mean, zero padding to a multiple of 32. Resizing the
float tensor with ``F.interpolate`` or with OpenCV gives different pixels, so PIL it is.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from pose_extraction.densepose.model import SIZE_DIVISIBILITY

PIXEL_MEAN_BGR = (103.530, 116.280, 123.675)
PIXEL_STD_BGR = (1.0, 1.0, 1.0)


def as_rgb_array(image: np.ndarray | Image.Image) -> np.ndarray:
    """Check and return one image as an RGB uint8 (H, W, 3) array."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an RGB image as a numpy array or PIL image; got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected an RGB uint8 array of shape (H, W, 3); got dtype {image.dtype}, shape {image.shape}. "
            "Convert it first, e.g. np.asarray(PIL.Image.open(path).convert('RGB'))."
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {image.shape})")
    return image


def resized_shape(height: int, width: int, min_size: int = 800, max_size: int = 1333) -> tuple[int, int]:
    """(new_h, new_w) of ResizeShortestEdge: short side to min_size, long side at most max_size."""
    scale = min_size * 1.0 / min(height, width)
    if height < width:
        new_h, new_w = min_size, scale * width
    else:
        new_h, new_w = scale * height, min_size
    if max(new_h, new_w) > max_size:
        shrink = max_size * 1.0 / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_to_tensor(rgb: np.ndarray, min_size: int = 800, max_size: int = 1333) -> torch.Tensor:
    """Resized, mean-subtracted BGR float32 (3, h, w) tensor (not yet padded)."""
    new_h, new_w = resized_shape(rgb.shape[0], rgb.shape[1], min_size, max_size)
    # PIL resamples each channel on its own, so resizing RGB and flipping afterwards equals resizing BGR.
    resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR))
    bgr = resized[:, :, ::-1]
    x = torch.as_tensor(bgr.astype("float32").transpose(2, 0, 1))
    mean = torch.tensor(PIXEL_MEAN_BGR).view(-1, 1, 1)
    std = torch.tensor(PIXEL_STD_BGR).view(-1, 1, 1)
    return (x - mean) / std


def padded_shape(height: int, width: int) -> tuple[int, int]:
    """Size after zero padding to a multiple of SIZE_DIVISIBILITY."""
    d = SIZE_DIVISIBILITY
    return math.ceil(height / d) * d, math.ceil(width / d) * d


def batch_images(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Stack (3, h, w) tensors into one (N, 3, Hp, Wp) batch, zero-padded bottom/right.

    Padding comes after normalisation, so padded pixels equal the mean colour, as in detectron2.
    Returns the batch and each image's unpadded (h, w), used to clip boxes.
    """
    sizes = [(int(t.shape[1]), int(t.shape[2])) for t in tensors]
    hp, wp = padded_shape(max(h for h, _ in sizes), max(w for _, w in sizes))
    batch = tensors[0].new_zeros((len(tensors), 3, hp, wp))
    for i, t in enumerate(tensors):
        batch[i, :, : t.shape[1], : t.shape[2]] = t
    return batch, sizes
