"""Shared fixtures: tiny random DreamPose components and small synthetic inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

SIZE = 64  # canvas height and width for fast CPU tests (latents 8 x 8)


@pytest.fixture
def tiny_pipe():
    from dreampose.tiny import tiny_pipeline

    return tiny_pipeline(seed=0)


@pytest.fixture
def one_thread():
    """The tiny models are so small that a second thread costs more than it gives."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A tiny random DreamPose model saved as a folder, as users pass with --model."""
    from dreampose.tiny import tiny_pipeline

    folder = tmp_path_factory.mktemp("base")
    tiny_pipeline(0).save_pretrained(folder)
    return folder


@pytest.fixture
def subject_image() -> np.ndarray:
    """A 96 x 80 RGB photo stand-in: a coloured figure on a light background."""
    rng = np.random.default_rng(0)
    image = np.full((96, 80, 3), 230, dtype=np.uint8)
    image[20:90, 25:55] = rng.integers(0, 255, size=(70, 30, 3), dtype=np.uint8)
    return image


def make_poses(num_frames: int = 4, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """UV maps (N, 2, size, size) of a body box that moves right frame by frame."""
    rng = np.random.default_rng(seed)
    uv = np.zeros((num_frames, 2, size, size), dtype=np.float32)
    for i in range(num_frames):
        x = 8 + 6 * i
        uv[i, :, 10:58, x : x + 20] = rng.uniform(0.05, 1.0, size=(2, 48, 20))
    return uv


@pytest.fixture
def poses() -> np.ndarray:
    return make_poses()


@pytest.fixture(scope="session")
def parity_weights(tmp_path_factory: pytest.TempPathFactory):
    """The DensePose parity fixture's weights, regenerated once per session (never committed)."""
    from _densepose_helpers import MISSING_REASON, PARITY, make_parity_weights

    if not (PARITY / "make_weights.py").is_file():
        pytest.skip(MISSING_REASON)
    return make_parity_weights(tmp_path_factory.mktemp("densepose-parity") / "weights.pkl")
