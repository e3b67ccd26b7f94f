"""The training dataset layout, pair sampling, and condition dropout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreampose.training.data import PairDataset, find_videos
from dreampose.training.settings import ConditionDropout
from pose_extraction.pose_sequence import PoseSequence
from tests.helpers.training import write_dataset


def test_condition_dropout_rates_are_honoured():
    dropout = ConditionDropout(pose=0.05, image=0.10, both=0.15)
    drop_image, drop_pose = dropout.draw(200_000, torch.Generator().manual_seed(0))
    pose_only = (drop_pose & ~drop_image).float().mean().item()
    image_only = (drop_image & ~drop_pose).float().mean().item()
    both = (drop_image & drop_pose).float().mean().item()
    assert pose_only == pytest.approx(0.05, abs=0.003)
    assert image_only == pytest.approx(0.10, abs=0.003)
    assert both == pytest.approx(0.15, abs=0.003)
    none_image, none_pose = ConditionDropout(0, 0, 0).draw(1000)
    assert not none_image.any() and not none_pose.any()
    with pytest.raises(ValueError, match="sum to at most 1"):
        ConditionDropout(0.5, 0.5, 0.5)


def test_pairs_come_from_one_video_with_the_targets_pose_window(tmp_path):
    root = write_dataset(tmp_path, videos=2, frames=4)
    data = PairDataset(root, 64, 64)
    assert len(data) == 8
    for k in range(len(data)):
        v, j = data.index[k]
        item = data[k]
        frames = [data.frame(data.videos[v], f) for f in range(4)]
        target = item["target"].numpy()
        assert np.array_equal(target, frames[j])
        subject = next(f for f in range(4) if np.array_equal(item["subject"].numpy(), frames[f]))
        assert subject != j, "the subject frame is another frame of the same video"
        # pose window j-2 .. j+2 (edges repeat the nearest frame), every 8th pixel of the 64 x 64 poses
        uv = PoseSequence.load(root / f"video{v}" / "poses.npz").uv_float()
        window = [min(max(f, 0), 3) for f in range(j - 2, j + 3)]
        expected = uv[window][:, :, ::8, ::8].reshape(10, 8, 8)
        assert np.array_equal(item["pose"].numpy(), expected)


def test_bad_datasets_are_named(tmp_path):
    with pytest.raises(ValueError, match="no usable videos"):
        find_videos(tmp_path)
    (tmp_path / "a" / "frames").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"a: no frames in frames/.*poses.npz"):
        find_videos(tmp_path)
    root = write_dataset(tmp_path / "ds", videos=1, frames=3)
    PoseSequence.from_uv(np.zeros((2, 2, 64, 64), np.float32) + 0.5).save(root / "video0" / "poses.npz")
    with pytest.raises(ValueError, match="2 pose frames for 3 images"):
        PairDataset(root, 64, 64)[0]
