"""DensePose R-CNN (densepose_rcnn_R_50_FPN_s1x) inference without detectron2.

``DensePoseExtractor.from_pretrained()`` loads the official model-zoo weights (downloaded on first
use) or a safetensors copy; ``load_extractor(backend=...)`` picks this port or detectron2 itself.
Importing this package touches neither the network nor the weights.
"""

from __future__ import annotations

import importlib
import os

BACKENDS = ("native", "detectron2", "tiny")
DETECTOR_SIZE = 800  # the shorter side the model zoo's detector resizes images to
MAX_DETECTOR_SIZE = 1333  # its cap on the longer side: the shorter cannot exceed it
PRECISIONS = ("fp32", "fp16", "bf16")

# Names importable from here, loaded on first use so `import pose_extraction.densepose`
# (for BACKENDS, say) does not load torch.
_LAZY = {
    "CheckpointError": "checkpoint",
    "UnsafePickleError": "checkpoint",
    "DEFAULT_WEIGHTS_URL": "download",
    "DensePoseExtractor": "extractor",
    "FrameDetections": "extractor",
    "ImagePrediction": "extractor",
    "DensePoseRCNN": "model",
    "InferenceSettings": "model",
}

__all__ = ["BACKENDS", "DETECTOR_SIZE", "MAX_DETECTOR_SIZE", "PRECISIONS", "load_extractor", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"pose_extraction.densepose.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'pose_extraction.densepose' has no attribute {name!r}")


def load_extractor(
    backend: str = "native",
    weights: str | os.PathLike | None = None,
    device="cpu",
    **kwargs,
):
    """A DensePose extractor for ``backend`` ("native": this port; "detectron2": detectron2 itself;
    "tiny": a tiny random DensePose for offline demos and tests, whose poses are noise).

    All return ``list[DetectedPerson]`` per image. ``weights`` is a local path or URL (default: the
    official model-zoo file; "tiny" takes none); ``kwargs`` go to the backend (e.g. ``min_size``,
    ``batch_size``).
    """
    if backend == "native":
        from pose_extraction.densepose.extractor import DensePoseExtractor

        return DensePoseExtractor.from_pretrained(weights, device=device, **kwargs)
    if backend == "detectron2":
        from pose_extraction.densepose.detectron2_backend import Detectron2DensePoseExtractor

        return Detectron2DensePoseExtractor.from_pretrained(weights, device=device, **kwargs)
    if backend == "tiny":
        from pose_extraction.densepose.tiny import tiny_extractor

        if weights is not None:
            raise ValueError(
                "the tiny DensePose is random and takes no weights; drop the weights or the backend"
            )
        return tiny_extractor(device, **kwargs)
    raise ValueError(f"unknown DensePose backend {backend!r}; choose one of {', '.join(BACKENDS)}")
