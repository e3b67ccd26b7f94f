"""Frames on disk: the one way the project saves a picture, and the one name of frame k.

Every PNG the project writes (rendered frames, previews, grids, evaluation frames, dataset
frames, training samples) goes through :func:`save_png`: complete or not at all (a
temporary file renamed into place), so a crash or a full disk never leaves half a frame
that a resumed run would trust. Numbered frames are called ``frame_00012.png`` (pose frame
12), whoever writes them: :func:`save_frame` and :func:`frame_path`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dreampose.base.files import atomic_file

FRAME_NAME = "frame_{index:05d}.png"


def frame_path(folder: str | os.PathLike, index: int) -> Path:
    """Where frame ``index`` lives in ``folder``: ``folder/frame_00012.png``."""
    return Path(folder) / FRAME_NAME.format(index=index)


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an RGB uint8 image (H, W, 3) as a PNG at ``path``, atomically; return the path."""
    from PIL import Image

    path = Path(path)
    with atomic_file(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")
    return path


def save_frame(folder: str | os.PathLike, index: int, image: np.ndarray) -> Path:
    """Frame ``index`` as ``folder/frame_00012.png`` (the folder is made if needed)."""
    return save_png(frame_path(folder, index), image)


def save_frames(folder: str | os.PathLike, indices: Iterable[int], images: Iterable[np.ndarray]) -> None:
    """Several frames, numbered by ``indices``."""
    for index, image in zip(indices, images, strict=True):
        save_frame(folder, index, image)


def read_png(path: str | os.PathLike) -> np.ndarray:
    """A saved frame as RGB uint8; a ValueError saying what to do when it is damaged."""
    from dreampose.media.images import read_image

    try:
        return read_image(path)
    except ValueError as e:
        raise ValueError(f"cannot read {path} ({e}); delete it and run again to make it anew") from None
