"""Shared fixtures: tiny random DreamPose components and small synthetic inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests.helpers.poses import make_poses

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_pipe():
    from dreampose.model.tiny import tiny_pipeline

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
    from dreampose.model.tiny import tiny_pipeline

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


@pytest.fixture
def poses() -> np.ndarray:
    return make_poses()


@pytest.fixture(scope="session")
def parity_weights(tmp_path_factory: pytest.TempPathFactory):
    """The DensePose parity fixture's weights, regenerated once per session (never committed)."""
    from tests.helpers.densepose import MISSING_REASON, PARITY, make_parity_weights

    if not (PARITY / "make_weights.py").is_file():
        pytest.skip(MISSING_REASON)
    return make_parity_weights(tmp_path_factory.mktemp("densepose-parity") / "weights.pkl")
