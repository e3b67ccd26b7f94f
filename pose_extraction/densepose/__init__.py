"""DensePose R-CNN (densepose_rcnn_R_50_FPN_s1x) inference without detectron2.

``DensePoseExtractor.from_pretrained()`` loads the official model-zoo weights (downloaded on first
use) or a safetensors copy; ``load_extractor(backend=...)`` picks this port or detectron2 itself.
Importing this package touches neither the network nor the weights.
"""

from __future__ import annotations

import os

import torch

from pose_extraction.densepose.checkpoint import CheckpointError, UnsafePickleError
from pose_extraction.densepose.download import DEFAULT_WEIGHTS_URL
from pose_extraction.densepose.extractor import DensePoseExtractor, FrameDetections, ImagePrediction
from pose_extraction.densepose.model import DensePoseRCNN, InferenceSettings

BACKENDS = ("native", "detectron2")

__all__ = [
    "BACKENDS",
    "DEFAULT_WEIGHTS_URL",
    "CheckpointError",
    "DensePoseExtractor",
    "DensePoseRCNN",
    "FrameDetections",
    "ImagePrediction",
    "InferenceSettings",
    "UnsafePickleError",
    "load_extractor",
]


def load_extractor(
    backend: str = "native",
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    **kwargs,
):
    """A DensePose extractor for ``backend`` ("native": this port; "detectron2": detectron2 itself).

    Both return ``list[DetectedPerson]`` per image. ``weights`` is a local path or URL (default: the
    official model-zoo file); ``kwargs`` go to the backend (e.g. ``min_size``, ``batch_size``).
    """
    if backend == "native":
        return DensePoseExtractor.from_pretrained(weights, device=device, **kwargs)
    if backend == "detectron2":
        from pose_extraction.densepose.detectron2_backend import Detectron2DensePoseExtractor

        return Detectron2DensePoseExtractor.from_pretrained(weights, device=device, **kwargs)
    raise ValueError(f"unknown DensePose backend {backend!r}; choose one of {', '.join(BACKENDS)}")
