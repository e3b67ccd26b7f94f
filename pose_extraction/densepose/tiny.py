"""A tiny random DensePose for the offline demo: the real extractor's plumbing, noise for poses.

`python app.py --model tiny` must go through every step with no weights and no network.
:class:`TinyDensePose` takes what :class:`~pose_extraction.densepose.model.DensePoseRCNN` takes
(normalised, padded BGR batches) and returns the same ``RawDetections``, so the real
:class:`~pose_extraction.densepose.extractor.DensePoseExtractor` runs it unchanged: resizing,
batching, box rescaling, chart-to-UV post-processing and pasting are all exercised. Its few thousand
weights are random (seeded), so its part labels and U, V are noise, as the tiny diffusion model's
frames are; :func:`is_tiny_random` lets the app say so.

It always finds exactly one person, deterministically, because random detection weights may find
nobody and stop the demo. Detection is replaced by a plain rule: the person is what differs from the
background, judged per image row against the colours at that row's left and right edges (so vertical
gradients and floors count as background). The box is that region's bounding box (the central 60 % of
the image when nothing stands out) and the silhouette inside it is the same foreground mask, so the
noise has the person's outline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from pose_extraction.densepose.model import (
    DP_POOLER_RESOLUTION,
    DensePoseChartPredictor,
    DensePoseV1ConvXHead,
    InferenceSettings,
    RawDetections,
    raw_detections,
    to_pooler_rois,
)

FOREGROUND_DISTANCE = 40.0  # colour distance (0..255 scale) from the row's background that counts as person
MIN_FOREGROUND = 0.002  # below this share of pixels, nothing stands out: use the central box
OUTPUT_SIZE = 4 * DP_POOLER_RESOLUTION  # 112, as the real predictor's outputs
TINY_POSES_NOTE = "Test mode: these poses come from a tiny random pose detector, so inside the person's outline they are noise."


class TinyDensePose(nn.Module):
    """A few thousand seeded random weights in DensePose's head layout, with a rule-based detector."""

    tiny_random = True

    def __init__(self, channels: int = 8, hidden: int = 16, seed: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(  # stride 4, like the p2 map the real head pools from
            nn.Conv2d(3, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.densepose_head = DensePoseV1ConvXHead(channels, hidden, num_convs=2)
        self.densepose_predictor = DensePoseChartPredictor(hidden)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():  # seeded, independent of the global RNG
                p.copy_(torch.randn(p.shape, generator=generator) * (0.5 / max(p[0].numel(), 1) ** 0.5))
        # Flat picture regions give flat head outputs; a fixed smooth random pattern over the box
        # (fine parts, U, V) makes the noise vary inside the outline, as a real model's parts do.
        self.register_buffer("pattern", torch.randn(3, 25, 7, 7, generator=generator) * 2.0)

    def forward(
        self, images: Tensor, image_sizes: list[tuple[int, int]], settings: InferenceSettings | None = None
    ) -> list[RawDetections]:
        """images: (N, 3, Hp, Wp) mean-subtracted BGR; returns one person per image."""
        features, proposals, detections = self.detect(images, image_sizes, settings)
        heads = self.densepose_outputs(features, [boxes for boxes, _ in detections])
        return [
            raw_detections(boxes, scores, head, proposal)
            for (boxes, scores), head, proposal in zip(detections, heads, proposals, strict=True)
        ]

    def detect(
        self, images: Tensor, image_sizes: list[tuple[int, int]], settings: InferenceSettings | None = None
    ):
        """As ``DensePoseRCNN.detect``: (features, proposals, detections); exactly one person per
        image, found by :func:`person`. The features keep each image's silhouette for the head."""
        masks, boxes = zip(
            *(person(images[i, :, :h, :w]) for i, (h, w) in enumerate(image_sizes)), strict=True
        )
        features = {
            "p2": self.features(images / 128.0),
            "masks": list(masks),
        }  # pixels minus the mean: about ±128
        proposals = [(box[None], torch.zeros(1)) for box in boxes]
        detections = [(box[None], torch.ones(1)) for box in boxes]
        return features, proposals, detections

    def densepose_outputs(self, features: dict, boxes_per_image: list[Tensor]) -> list[tuple[Tensor, ...]]:
        """As ``DensePoseRCNN.densepose_outputs``: (coarse, fine, u, v) per image for its boxes."""
        return [
            self._head(features["p2"][i : i + 1], features["masks"][i], boxes)
            for i, boxes in enumerate(boxes_per_image)
        ]

    def _head(self, feature_map: Tensor, mask: Tensor, boxes: Tensor) -> tuple[Tensor, ...]:
        if len(boxes) == 0:
            return tuple(feature_map.new_zeros((0, c, OUTPUT_SIZE, OUTPUT_SIZE)) for c in (2, 25, 25, 25))
        rois = to_pooler_rois([boxes])
        pooled = roi_align(feature_map, rois, (DP_POOLER_RESOLUTION,) * 2, 0.25, 2, aligned=False)
        _, fine, u, v = self.densepose_predictor(self.densepose_head(pooled))
        pattern = F.interpolate(self.pattern, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        fine, u, v = fine + pattern[0], u + pattern[1], v + pattern[2]
        fine[:, 0] = -1e4  # never "background" among the parts: the silhouette decides that
        zeros = torch.zeros(len(boxes), 1, device=boxes.device)
        silhouettes = roi_align(
            mask[None, None], torch.cat([zeros, boxes], dim=1), (OUTPUT_SIZE,) * 2, 1.0, 2
        )
        coarse = (
            torch.cat([0.5 - silhouettes, silhouettes - 0.5], dim=1) * 20.0
        )  # inside the silhouette: body
        return coarse, fine, torch.sigmoid(u), torch.sigmoid(v)


def person(image: Tensor) -> tuple[Tensor, Tensor]:
    """Foreground mask (H, W) float and its box (4,) XYXY of one unpadded image (3, H, W)."""
    _, h, w = image.shape
    edge = max(2, w // 20)
    sides = torch.cat([image[:, :, :edge], image[:, :, w - edge :]], dim=2)  # (3, H, 2 * edge)
    background = sides.median(dim=2, keepdim=True).values  # one colour per row
    distance = (image - background).norm(dim=0)
    mask = (distance > FOREGROUND_DISTANCE).float()
    mask = F.max_pool2d(-F.max_pool2d(-mask[None], 3, 1, 1), 3, 1, 1)[0]  # opening: drop specks
    ys, xs = torch.nonzero(mask > 0, as_tuple=True)
    if len(ys) < MIN_FOREGROUND * h * w:
        box = torch.tensor([0.2 * w, 0.1 * h, 0.8 * w, 0.9 * h])
        return torch.ones(h, w), box
    box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
    return mask, box


def tiny_extractor(device: str | torch.device = "cpu", *, min_size: int = 128, max_size: int = 256, **kwargs):
    """The real extractor around :class:`TinyDensePose`, at a small detector size (fast on a CPU)."""
    from pose_extraction.densepose.extractor import DensePoseExtractor

    seed = kwargs.pop("seed", 0)
    return DensePoseExtractor(
        TinyDensePose(seed=seed), device, min_size=min_size, max_size=max_size, **kwargs
    )


def is_tiny_random(extractor) -> bool:
    """Whether ``extractor`` runs the tiny random DensePose (its poses are noise)."""
    return bool(getattr(getattr(extractor, "model", None), "tiny_random", False))
