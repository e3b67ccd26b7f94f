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
from pose_extraction.densepose.model import DensePoseRCNN, InferenceSettings, RawDetections, raw_detections
from pose_extraction.densepose.postprocess import chart_to_labels_uv, int_box, rescale_boxes
from pose_extraction.densepose.preprocess import as_rgb_array, batch_images, padded_shape, resize_to_tensor
from pose_extraction.types import DetectedPerson, PersonBox

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


@dataclass
class _Features:
    """The FPN features of one network batch, kept so the DensePose head can run after detection."""

    maps: dict[str, torch.Tensor]
    size: int  # images in the batch


@dataclass
class FrameDetections:
    """One image's people as boxes and scores, before the DensePose head (``DensePoseExtractor.detect``).

    ``candidates[i]`` is row ``raw_rows[i]`` of ``raw`` (resized-image coordinates; its head outputs
    are empty); pass the index of the person to follow to ``DensePoseExtractor.densepose``. Holds its
    network batch's features until dropped.
    """

    candidates: list[PersonBox]
    original_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    raw: RawDetections
    raw_rows: list[int]
    features: _Features
    position: int  # this image's index in its network batch


class DensePoseExtractor:
    """DensePose R-CNN (densepose_rcnn_R_50_FPN_s1x) without detectron2.

    Call it on one RGB uint8 image (numpy (H, W, 3) or PIL) to get that image's people sorted by
    score, or on a list of images to get one such list per image. Images whose padded sizes agree
    (e.g. the frames of one video) run through the network together, ``batch_size`` at a time.

    "Boxes first" (what ``extract_poses`` does): ``detect`` finds everybody's boxes, the caller picks
    the person to follow, and ``densepose`` runs the DensePose head on that box alone, instead of on
    every detection (about 0.15 s each on 2 CPU cores; random or crowded frames have dozens).
    ``fp16`` (CUDA) and ``bf16`` (CUDA or CPU) run the network under autocast.
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
        bf16: bool = False,
        settings: InferenceSettings | None = None,
    ) -> None:
        self.device = torch.device(device)
        if fp16 and bf16:
            raise ValueError("choose fp16 or bf16, not both")
        if fp16 and self.device.type != "cuda":
            raise ValueError(f"fp16 needs a CUDA device; got device {self.device}. Use fp16=False on CPU.")
        if min_size < 32 or max_size < min_size:
            raise ValueError(f"need 32 <= min_size <= max_size; got min_size={min_size}, max_size={max_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        self.model = model.eval().to(self.device)
        self.min_size, self.max_size = min_size, max_size
        self.batch_size = batch_size
        self.fp16, self.bf16 = fp16, bf16
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
        """Full per-image results (people plus raw outputs), in input order; the DensePose head runs
        on every detection, or on the top ``settings.max_people``."""
        detections = self.detect(images)
        top = self.settings.max_people
        heads = self._head(detections, [list(range(len(d.raw.boxes)))[:top] for d in detections])
        results = []
        for det, head in zip(detections, heads, strict=True):
            raw = raw_detections(
                det.raw.boxes, det.raw.scores, head, (det.raw.proposal_boxes, det.raw.proposal_logits)
            )
            results.append(self._to_people(raw, det.original_hw, det.resized_hw, det.padded_hw))
        return results

    @torch.inference_mode()
    def detect(self, images: Sequence[ImageLike]) -> list[FrameDetections]:
        """Detection only (backbone, RPN, box head): each image's candidates, in input order."""
        # 0. Check inputs
        if isinstance(images, Image.Image) or (isinstance(images, np.ndarray) and images.ndim != 4):
            raise ValueError(
                "detect() and predict() take a list of images; call the extractor itself for one image"
            )
        rgbs = [as_rgb_array(im) for im in images]
        # 1. Resize and normalise on the CPU (PIL), as detectron2 does
        tensors = [resize_to_tensor(rgb, self.min_size, self.max_size) for rgb in rgbs]
        # 2. Group images by padded size: padding to a larger batch size would change their results
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, t in enumerate(tensors):
            groups[padded_shape(t.shape[1], t.shape[2])].append(i)
        results: list[FrameDetections | None] = [None] * len(rgbs)
        for (hp, wp), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                features, raws = self._detect_batch([tensors[i] for i in chunk])
                for position, (i, raw) in enumerate(zip(chunk, raws, strict=True)):
                    resized_hw = (int(tensors[i].shape[1]), int(tensors[i].shape[2]))
                    results[i] = self._to_candidates(
                        raw, rgbs[i].shape[:2], resized_hw, (hp, wp), features, position
                    )
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def densepose(
        self, detections: Sequence[FrameDetections], chosen: Sequence[int | None]
    ) -> list[DetectedPerson | None]:
        """The DensePose head on one chosen candidate per image (None: nobody), in input order.

        Gives the chosen person the labels and UV that ``predict`` gives them (the head works box by
        box). Images of one network batch share one head call.
        """
        if len(chosen) != len(detections):
            raise ValueError(f"got {len(chosen)} choices for {len(detections)} images")
        rows = []
        for det, choice in zip(detections, chosen, strict=True):
            if choice is not None and not 0 <= choice < len(det.candidates):
                raise ValueError(f"candidate {choice} chosen, but the image has {len(det.candidates)}")
            rows.append([] if choice is None else [det.raw_rows[choice]])
        heads = self._head(detections, rows)
        people: list[DetectedPerson | None] = []
        for det, row, head in zip(detections, rows, heads, strict=True):
            if not row:
                people.append(None)
                continue
            boxes, _ = rescale_boxes(det.raw.boxes[row], det.resized_hw, det.original_hw)
            people.append(_person(boxes[0], float(det.raw.scores[row[0]]), [h[0] for h in head]))
        return people

    # ------------------------------------------------------------------------------------------

    def _autocast(self):
        dtype = torch.float16 if self.fp16 else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.fp16 or self.bf16)

    def _detect_batch(self, tensors: list[torch.Tensor]) -> tuple[_Features, list[RawDetections]]:
        batch, sizes = batch_images(tensors)
        batch = batch.to(self.device)
        with self._autocast():
            features, proposals, detections = self.model.detect(batch, sizes, self.settings)
        no_head = (torch.zeros(0),) * 4
        raws = [
            _to_cpu(raw_detections(boxes, scores, no_head, proposal))
            for (boxes, scores), proposal in zip(detections, proposals, strict=True)
        ]
        return _Features(features, len(tensors)), raws

    def _head(
        self, detections: Sequence[FrameDetections], rows: Sequence[Sequence[int]]
    ) -> list[tuple[torch.Tensor, ...]]:
        """Raw head outputs (coarse, fine, u, v) for the given raw rows of each image, on the CPU."""
        out: list[tuple[torch.Tensor, ...] | None] = [None] * len(detections)
        batches: dict[int, list[int]] = defaultdict(list)  # network batch -> indices into detections
        for i, det in enumerate(detections):
            batches[id(det.features)].append(i)
        for indices in batches.values():
            features = detections[indices[0]].features
            boxes = [torch.zeros((0, 4))] * features.size
            for i in indices:
                boxes[detections[i].position] = detections[i].raw.boxes[list(rows[i])]
            device_boxes = [b.to(self.device) for b in boxes]
            with self._autocast():
                heads = self.model.densepose_outputs(features.maps, device_boxes)
            for i in indices:
                out[i] = tuple(h.detach().float().cpu() for h in heads[detections[i].position])
        return out  # type: ignore[return-value]

    @staticmethod
    def _to_candidates(raw, original_hw, resized_hw, padded_hw, features, position) -> FrameDetections:
        boxes, keep = rescale_boxes(raw.boxes, resized_hw, original_hw)
        rows = torch.nonzero(keep, as_tuple=True)[0].tolist()
        candidates = [PersonBox(boxes[r].numpy().astype(np.float32), float(raw.scores[r])) for r in rows]
        return FrameDetections(
            candidates, tuple(original_hw), resized_hw, padded_hw, raw, rows, features, position
        )

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
            head = (raw.coarse_segm[row], raw.fine_segm[row], raw.u[row], raw.v[row])
            people.append(_person(boxes[row], float(raw.scores[row]), head))
            rows.append(row)
        return ImagePrediction(people, tuple(original_hw), resized_hw, padded_hw, raw, rows)


def _person(box_xyxy: torch.Tensor, score: float, head: Sequence[torch.Tensor]) -> DetectedPerson:
    """A DetectedPerson from its box in image pixels and its raw 112x112 head outputs."""
    xywh = int_box(box_xyxy)
    labels, uv = chart_to_labels_uv(*head, xywh)
    return DetectedPerson(
        box_xyxy=box_xyxy.numpy().astype(np.float32),
        score=score,
        box_xywh=xywh,
        labels=labels.numpy().astype(np.uint8),
        uv=uv.numpy().astype(np.float32),
    )


def _to_cpu(raw: RawDetections) -> RawDetections:
    return RawDetections(**{k: v.detach().float().cpu() for k, v in vars(raw).items()})
