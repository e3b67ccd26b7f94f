"""Aligned crop/scale augmentation: the image and its pose must move together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreampose.training.augment import CropBox, crop_image, crop_pose
from dreampose.training.settings import CropScale


def marked_pair(size: int = 64, pose_size: int = 64, y: int = 40, x: int = 20):
    """A black image with a white 4x4 marker at (y, x) and a pose with the same marker
    (given in fractions, so the pose may have another resolution)."""
    image = np.zeros((size, size, 3), np.uint8)
    image[y : y + 4, x : x + 4] = 255
    uv = np.zeros((2, pose_size, pose_size), np.float32)
    s = pose_size / size
    uv[:, round(y * s) : round((y + 4) * s), round(x * s) : round((x + 4) * s)] = 0.5
    return image, uv


def centre(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean() / mask.shape[0], xs.mean() / mask.shape[1]])


@pytest.mark.parametrize("pose_size", [64, 32])
def test_marker_stays_aligned_through_random_crops(pose_size):
    image, uv = marked_pair(pose_size=pose_size)
    generator = torch.Generator().manual_seed(0)
    crop = CropScale(0.6, 0.9)
    moved = 0
    for _ in range(20):
        box = crop.sample(generator)  # one box for both, as finetuning and the dataset do
        out_image, out_uv = crop_image(image, box), crop_pose(uv, box)
        assert out_image.shape == image.shape and out_uv.shape == uv.shape
        image_mark = out_image[..., 0] > 127
        pose_mark = out_uv[0] > 0
        if not image_mark.any():  # the crop cut the marker off: so must the pose
            assert not pose_mark.any()
            continue
        # same place, in fractions of the frame; one pose pixel of slack at half resolution
        assert np.abs(centre(image_mark) - centre(pose_mark)).max() < 1.5 / pose_size
        moved += np.abs(centre(image_mark) - np.array([42 / 64, 22 / 64])).max() > 0.02
    assert moved >= 10, "the crops should actually move the marker"


def test_crop_zooms_in_by_the_scale():
    image, uv = marked_pair()
    box = CropBox(top=0.5, left=0.0, height=0.5, width=0.5)  # bottom-left quarter, doubled
    out_image, out_uv = crop_image(image, box), crop_pose(uv, box)
    ys, xs = np.nonzero(out_image[..., 0] > 127)
    assert (ys.min(), xs.min()) == (16, 40) and ys.max() - ys.min() >= 6
    assert set(np.unique(out_uv)) <= {0.0, 0.5}, "poses are resampled nearest, never blended"


def test_full_box_changes_nothing():
    image, uv = marked_pair()
    assert crop_image(image, CropBox.full()) is image
    assert crop_pose(uv, CropBox.full()) is uv


@pytest.mark.parametrize("scales", [(0.0, 1.0), (0.9, 0.8), (0.5, 1.2)])
def test_bad_scales_are_refused(scales):
    with pytest.raises(ValueError, match="crop scales"):
        CropScale(*scales)
