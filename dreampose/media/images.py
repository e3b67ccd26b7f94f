"""The one photo loader: every photo the project reads comes through :func:`read_image`.

Pose extraction, rendering, finetuning, training data and the app all see the same
pixels, the right way up. That matters: a phone photo stored sideways with an EXIF
orientation tag, read upright for its pose but sideways for rendering, would put the pose
on the wrong body. What it handles:

- EXIF orientation (phones store the picture sideways plus a rotation tag);
- transparency, composited onto white (a cut-out's usual background), not dropped to black;
- greyscale and bilevel, repeated to three channels; palette and CMYK converted to RGB;
- 16-bit images scaled to 8 bits (a plain conversion would clip them to all-white);
- a pixel limit checked from the header, before any pixel is decoded (decompression bombs).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 64 megapixels: every phone camera (48 MP at most today), not a 100-megapixel scan.
MAX_PHOTO_PIXELS = 64_000_000
_16_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def read_image(image, max_pixels: int = MAX_PHOTO_PIXELS) -> np.ndarray:
    """A path, PIL image or array as RGB uint8 (H, W, 3), upright.

    Raises FileNotFoundError for a missing file and ValueError, saying what to do, for
    anything that is not a readable picture or is larger than ``max_pixels``.
    """
    if isinstance(image, str | os.PathLike):
        return _read_file(Path(image), max_pixels)
    if isinstance(image, Image.Image):
        _check_pixels(image.width, image.height, max_pixels, "the photo")
        return _to_rgb(ImageOps.exif_transpose(image))
    return _array_to_rgb(np.asarray(image), max_pixels)


def _read_file(path: Path, max_pixels: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"photo not found: {path}")
    try:
        with Image.open(path) as img:
            _check_pixels(img.width, img.height, max_pixels, path.name)  # before decoding
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))
    except Image.DecompressionBombError as e:
        raise ValueError(
            f"{path.name} is far too large to be a photo ({e}); use a picture of at most "
            f"{max_pixels / 1e6:.0f} megapixels"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{path.name} is not a readable image ({e}); use a JPEG or PNG photo") from None


def _check_pixels(width: int, height: int, max_pixels: int, name: str) -> None:
    if width * height > max_pixels:
        raise ValueError(
            f"{name} is {width} x {height} = {width * height / 1e6:.0f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.0f} megapixels; scale it down first"
        )
    if width < 1 or height < 1:
        raise ValueError(f"{name} has no pixels ({width} x {height})")


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in _16_BIT_MODES or img.mode in ("I", "F"):
        return _array_to_rgb(np.asarray(img), max_pixels=None)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _array_to_rgb(array: np.ndarray, max_pixels: int | None) -> np.ndarray:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"a photo array must be H x W, H x W x 3 or H x W x 4; got shape {array.shape}")
    if max_pixels is not None:
        _check_pixels(array.shape[1], array.shape[0], max_pixels, "the photo")
    array = _to_uint8(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        return _to_rgb(Image.fromarray(array, "RGBA"))
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """8-bit values from 8-bit, 16-bit or 32-bit integer (16-bit range) pixels."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(f"photo values must be 0..255 or 0..65535; found {array.min()}..{array.max()}")
        if array.dtype == np.uint16 or array.max() > 255:  # a 16-bit picture
            return np.round(array.astype(np.float32) / 257.0).astype(np.uint8)
        return array.astype(np.uint8)
    raise ValueError(f"photo arrays must hold integers (uint8 0..255 or uint16); got {array.dtype}")


def pixels_digest(rgb: np.ndarray) -> str:
    """The SHA-256 of a picture's pixels and shape: the same photo, whatever file it came in."""
    return hashlib.sha256(np.ascontiguousarray(rgb).tobytes() + str(rgb.shape).encode()).hexdigest()
