"""From raw detections to people: boxes back in image pixels, then part labels and UV per box (spec §8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pose_extraction.densepose.model import clip_boxes, nonempty


def rescale_boxes(
    boxes: Tensor, resized_hw: tuple[int, int], original_hw: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """Boxes from resized to original pixels, clipped; returns (boxes, keep mask of non-empty boxes).

    The DensePose maps are box-relative, so they are not resized here; the caller drops the rows
    that the mask drops.
    """
    scale_x = original_hw[1] / resized_hw[1]
    scale_y = original_hw[0] / resized_hw[0]
    boxes = boxes.clone()
    boxes[:, 0::2] *= scale_x
    boxes[:, 1::2] *= scale_y
    boxes = clip_boxes(boxes, *original_hw)
    return boxes, nonempty(boxes)


def int_box(box_xyxy: Tensor) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the chart: the float XYWH truncated toward zero, w and h at least 1.

    w comes from the float width, so x + w can differ from trunc(x1) by one; this is what detectron2
    pastes with, so it is what we paste with.
    """
    xywh = box_xyxy.clone()
    xywh[2:] -= xywh[:2]
    x, y, w, h = (int(v) for v in xywh.long().tolist())
    return x, y, max(w, 1), max(h, 1)


def chart_to_labels_uv(
    coarse_segm: Tensor, fine_segm: Tensor, u: Tensor, v: Tensor, box_xywh: tuple[int, int, int, int]
) -> tuple[Tensor, Tensor]:
    """Resample one detection's 112x112 outputs to its integer box; returns labels (h, w) int64 0..24
    and uv (2, h, w) float32, U and V taken from each pixel's own part channel, 0 on background.

    Inputs are one detection's maps: coarse (2, S, S), fine/u/v (25, S, S).
    """
    _, _, w, h = box_xywh

    def resample(t: Tensor) -> Tensor:
        return F.interpolate(t[None].float(), (h, w), mode="bilinear", align_corners=False)[0]

    foreground = resample(coarse_segm).argmax(dim=0) > 0
    labels = resample(fine_segm).argmax(dim=0) * foreground.long()
    index = labels[None]
    u_own = resample(u).gather(0, index)[0]
    v_own = resample(v).gather(0, index)[0]
    uv = torch.stack((u_own, v_own))
    uv = torch.where(labels[None] > 0, uv, torch.zeros((), dtype=uv.dtype, device=uv.device))
    return labels, uv
