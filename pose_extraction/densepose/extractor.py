"""``DensePoseExtractor``: RGB images in, detected people (box, score, part labels, UV) out."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pose_extraction.densepose.checkpoint import load_state_dict, match_state_dict
from pose_extraction.densepose.download import resolve_weights
from pose_extraction.densepose.model import DensePoseRCNN, InferenceSettings, RawDetections
from pose_extraction.densepose.postprocess import chart_to_labels_uv, int_box, rescale_boxes
from pose_extraction.densepose.preprocess import as_rgb_array, batch_images, padded_shape, resize_to_tensor
from pose_extraction.types import DetectedPerson

ImageLike = np.ndarray | Image.Image


@dataclass
class ImagePrediction:
    """Everything the extractor computed for one image; ``people`` is what most callers want.

    ``raw`` keeps the model's outputs in resized-image coordinates (debugging and parity tests);
    ``raw_rows[i]`` is the row of ``raw`` that ``people[i]`` came from.
    """

    people: list[DetectedPerson]
    original_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    raw: RawDetections
    raw_rows: list[int]


class DensePoseExtractor:
    """DensePose R-CNN (densepose_rcnn_R_50_FPN_s1x) without detectron2.

    Call it on one RGB uint8 image (numpy (H, W, 3) or PIL) to get that image's people sorted by
    score, or on a list of images to get one such list per image. Images whose padded sizes agree
    (e.g. the frames of one video) run through the network together, ``batch_size`` at a time.
    """

    def __init__(
        self,
        model: DensePoseRCNN,
        device: str | torch.device = "cpu",
        *,
        min_size: int = 800,
        max_size: int = 1333,
        batch_size: int = 4,
        fp16: bool = False,
        settings: InferenceSettings | None = None,
    ) -> None:
        self.device = torch.device(device)
        if fp16 and self.device.type != "cuda":
            raise ValueError(f"fp16 needs a CUDA device; got device {self.device}. Use fp16=False on CPU.")
        if min_size < 32 or max_size < min_size:
            raise ValueError(f"need 32 <= min_size <= max_size; got min_size={min_size}, max_size={max_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        self.model = model.eval().to(self.device)
        self.min_size, self.max_size = min_size, max_size
        self.batch_size = batch_size
        self.fp16 = fp16
        self.settings = settings or InferenceSettings()

    @classmethod
    def from_pretrained(
        cls,
        path_or_url: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        *,
        progress: bool = True,
        **kwargs,
    ) -> DensePoseExtractor:
        """Load weights from a ``.pkl``/``.safetensors`` path or URL (default: the official model zoo file,
        downloaded once into ``$DREAMPOSE_CACHE`` or ``~/.cache/dreampose``). ``kwargs`` go to ``__init__``.
        """
        model = DensePoseRCNN()
        loaded: dict[str, dict] = {}

        def verify(path: Path) -> None:  # a fresh download must load and fit before it enters the cache
            loaded["state_dict"] = match_state_dict(load_state_dict(path), model)

        path = resolve_weights(path_or_url, verify=verify, progress=progress)
        state_dict = loaded.get("state_dict") or match_state_dict(load_state_dict(path), model)
        model.load_state_dict(state_dict)
        return cls(model, device, **kwargs)

    # ------------------------------------------------------------------------------------------

    def __call__(
        self, images: ImageLike | Sequence[ImageLike]
    ) -> list[DetectedPerson] | list[list[DetectedPerson]]:
        """People per image, sorted by descending score: a list for one image, a list of lists for a list
        (or for an (N, H, W, 3) array of frames).
        """
        if isinstance(images, Image.Image) or (isinstance(images, np.ndarray) and images.ndim != 4):
            return self.predict([images])[0].people
        return [p.people for p in self.predict(images)]

    @torch.inference_mode()
    def predict(self, images: Sequence[ImageLike]) -> list[ImagePrediction]:
        """Full per-image results (people plus raw outputs), in input order."""
        # 0. Check inputs
        if isinstance(images, Image.Image) or (isinstance(images, np.ndarray) and images.ndim != 4):
            raise ValueError("predict() takes a list of images; call the extractor itself for one image")
        rgbs = [as_rgb_array(im) for im in images]
        # 1. Resize and normalise on the CPU (PIL), as detectron2 does
        tensors = [resize_to_tensor(rgb, self.min_size, self.max_size) for rgb in rgbs]
        # 2. Group images by padded size: padding to a larger batch size would change their results
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, t in enumerate(tensors):
            groups[padded_shape(t.shape[1], t.shape[2])].append(i)
        results: list[ImagePrediction | None] = [None] * len(rgbs)
        for (hp, wp), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                raws = self._forward([tensors[i] for i in chunk])
                for i, raw in zip(chunk, raws, strict=True):
                    resized_hw = (int(tensors[i].shape[1]), int(tensors[i].shape[2]))
                    results[i] = self._to_people(raw, rgbs[i].shape[:2], resized_hw, (hp, wp))
        return results  # type: ignore[return-value]

    def _forward(self, tensors: list[torch.Tensor]) -> list[RawDetections]:
        batch, sizes = batch_images(tensors)
        batch = batch.to(self.device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
            raws = self.model(batch, sizes, self.settings)
        return [_to_cpu(r) for r in raws]

    @staticmethod
    def _to_people(
        raw: RawDetections,
        original_hw: tuple[int, int],
        resized_hw: tuple[int, int],
        padded_hw: tuple[int, int],
    ) -> ImagePrediction:
        boxes, keep = rescale_boxes(raw.boxes, resized_hw, original_hw)
        people, rows = [], []
        for row in torch.nonzero(keep, as_tuple=True)[0].tolist():
            if row >= len(raw.coarse_segm):  # beyond max_people: detected, but no DensePose head run
                break
            xywh = int_box(boxes[row])
            labels, uv = chart_to_labels_uv(
                raw.coarse_segm[row], raw.fine_segm[row], raw.u[row], raw.v[row], xywh
            )
            people.append(
                DetectedPerson(
                    box_xyxy=boxes[row].numpy().astype(np.float32),
                    score=float(raw.scores[row]),
                    box_xywh=xywh,
                    labels=labels.numpy().astype(np.uint8),
                    uv=uv.numpy().astype(np.float32),
                )
            )
            rows.append(row)
        return ImagePrediction(people, tuple(original_hw), resized_hw, padded_hw, raw, rows)


def _to_cpu(raw: RawDetections) -> RawDetections:
    return RawDetections(**{k: v.detach().float().cpu() for k, v in vars(raw).items()})
