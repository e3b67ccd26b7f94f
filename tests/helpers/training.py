"""Synthetic subjects for the training tests: a textured figure and its exact pose map."""

from __future__ import annotations

import numpy as np

from pose_extraction.pose_sequence import PoseSequence


def figure(size: int = 64, x0: int = 20, y0: int = 12, w: int = 24, h: int = 40, seed: int = 0):
    """An RGB uint8 photo of a striped figure on grey, and its UV pose (2, H, W) in [0, 1].

    The pose is exact: U, V are the figure's normalised coordinates inside its box, 0 off it.
    """
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 128, np.uint8)
    colours = rng.integers(0, 256, (2, 3))
    ys, xs = np.mgrid[0:h, 0:w]
    stripes = ((ys // 4) % 2).astype(bool)
    image[y0 : y0 + h, x0 : x0 + w] = np.where(stripes[..., None], colours[0], colours[1])
    uv = np.zeros((2, size, size), np.float32)
    uv[0, y0 : y0 + h, x0 : x0 + w] = (xs + 1) / w
    uv[1, y0 : y0 + h, x0 : x0 + w] = (ys + 1) / h
    return image, uv


def subject(n: int = 1, size: int = 64):
    """``n`` photos of one figure at different places, and their PoseSequence."""
    images, uvs = [], []
    for i in range(n):
        image, uv = figure(size, x0=12 + 8 * i, y0=10 + 2 * i, seed=0)
        images.append(image)
        uvs.append(uv)
    return images, PoseSequence.from_uv(np.stack(uvs))


def write_dataset(root, videos: int = 2, frames: int = 4, size: int = 64):
    """A dataset in the documented layout: figures sliding to the right, exact poses."""
    from PIL import Image

    for v in range(videos):
        folder = root / f"video{v}"
        (folder / "frames").mkdir(parents=True)
        uvs = []
        for f in range(frames):
            image, uv = figure(size, x0=8 + 4 * f, y0=8 + 2 * v, seed=v)
            Image.fromarray(image).save(folder / "frames" / f"{f:06d}.png")
            uvs.append(uv)
        PoseSequence.from_uv(np.stack(uvs)).save(folder / "poses.npz")
    return root
