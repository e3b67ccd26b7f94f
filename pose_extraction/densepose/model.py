"""DensePose R-CNN ``densepose_rcnn_R_50_FPN_s1x`` in plain torch + torchvision.ops (inference only).

A port of detectron2's DensePose project (Güler et al., "DensePose: Dense Human Pose Estimation In The
Wild", CVPR 2018, with the decoder of Neverova et al., "Correlated Uncertainty for Learning Dense
Correspondences from Noisy Labels", 2019) written from ``shared/reference/densepose-r50-fpn-s1x.md``.
Module and parameter names equal detectron2's, so the official state dict loads without renaming.

Every numeric convention follows detectron2, not torchvision's detection models (see the spec, §10):
FrozenBN through ``F.batch_norm``, stride in the 1x1 conv, unrounded anchors with offset 0, RPN NMS on
raw logits, person in column 0 of ``cls_score``, ``roi_align(aligned=False)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, roi_align

# Box coding (Box2BoxTransform): no "+1" anywhere; the log-space scale is clamped from above only.
SCALE_CLAMP = math.log(1000.0 / 16)
RPN_BOX_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
ROI_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)

FPN_LEVELS = ("p2", "p3", "p4", "p5")  # pooled by the box head and fused by the decoder
RPN_LEVELS = ("p2", "p3", "p4", "p5", "p6")
FPN_STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
ANCHOR_SIZES = {"p2": 32, "p3": 64, "p4": 128, "p5": 256, "p6": 512}
ASPECT_RATIOS = (0.5, 1.0, 2.0)  # h / w, in detectron2's order
SIZE_DIVISIBILITY = 32

NUM_COARSE_SEGM_CHANNELS = 2  # background, foreground
NUM_PATCHES = 24  # body parts; fine segmentation has NUM_PATCHES + 1 channels (0 = background)
DP_POOLER_RESOLUTION = 28
BOX_POOLER_RESOLUTION = 7
HEAD_CHUNK = 128  # DensePose head runs on at most this many boxes at once, to bound memory


@dataclass(frozen=True)
class InferenceSettings:
    """Thresholds of the detection stages; the defaults are the config that produced the official results."""

    score_threshold: float = 0.05  # ROI_HEADS.SCORE_THRESH_TEST
    nms_threshold: float = 0.5  # ROI_HEADS.NMS_THRESH_TEST
    detections_per_image: int = 100  # TEST.DETECTIONS_PER_IMAGE
    rpn_pre_nms_topk: int = 1000  # per level
    rpn_post_nms_topk: int = 1000  # per image
    rpn_nms_threshold: float = 0.7
    max_people: int | None = None  # run the DensePose head on the top N detections only (None: all)


@dataclass
class RawDetections:
    """One image's detections in resized-image coordinates, with the raw 112x112 DensePose outputs.

    ``coarse_segm`` (N, 2, 112, 112), ``fine_segm``/``u``/``v`` (N, 25, 112, 112) are raw logits and
    regression values (no activation, no clamping). Rows align with ``boxes`` and ``scores``; when
    ``max_people`` limits the head they cover only the first rows.
    """

    boxes: Tensor  # (N, 4) float32 XYXY, clipped to the resized image
    scores: Tensor  # (N,) person probability, descending
    coarse_segm: Tensor
    fine_segm: Tensor
    u: Tensor
    v: Tensor
    proposal_boxes: Tensor  # (P, 4) RPN proposals after NMS, by descending objectness (debugging)
    proposal_logits: Tensor  # (P,)


# ----------------------------------------------------------------------------------------------
# Building blocks


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics, computed with ``F.batch_norm`` as detectron2 does at inference.

    ``x * scale + shift`` (torchvision's formula) is equal up to float rounding only; this call keeps
    the op sequence of the reference so CPU results match it to the last bit.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )


class ConvNorm(nn.Conv2d):
    """Bias-free conv followed by FrozenBN; the BN lives at ``<conv>.norm`` as in detectron2's keys."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        self.norm = FrozenBatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(super().forward(x))


class ConvReLU(nn.Conv2d):
    """Conv with bias and a ReLU folded into the module, so ``nn.Sequential`` indices match the keys."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x))


# ----------------------------------------------------------------------------------------------
# Backbone: ResNet-50 (FrozenBN, STRIDE_IN_1X1) + FPN + LastLevelMaxPool


class BasicStem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvNorm(3, 64, 7, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    """ResNet bottleneck with the stride in the first 1x1 conv (detectron2's STRIDE_IN_1X1=True)."""

    def __init__(self, in_channels: int, out_channels: int, bottleneck: int, stride: int) -> None:
        super().__init__()
        self.shortcut = (
            ConvNorm(in_channels, out_channels, 1, stride) if in_channels != out_channels else None
        )
        self.conv1 = ConvNorm(in_channels, bottleneck, 1, stride)
        self.conv2 = ConvNorm(bottleneck, bottleneck, 3)
        self.conv3 = ConvNorm(bottleneck, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out += self.shortcut(x) if self.shortcut is not None else x
        return F.relu_(out)


class ResNet50(nn.Module):
    """Bottom-up path: stem, then res2..res5 with [3, 4, 6, 3] blocks; returns res2..res5."""

    STAGE_BLOCKS = (3, 4, 6, 3)

    def __init__(self) -> None:
        super().__init__()
        self.stem = BasicStem()
        in_channels = 64
        for i, num_blocks in enumerate(self.STAGE_BLOCKS):
            bottleneck, out_channels = 64 * 2**i, 256 * 2**i
            first_stride = 1 if i == 0 else 2
            blocks = []
            for b in range(num_blocks):
                blocks.append(
                    BottleneckBlock(in_channels, out_channels, bottleneck, first_stride if b == 0 else 1)
                )
                in_channels = out_channels
            self.add_module(f"res{i + 2}", nn.Sequential(*blocks))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.stem(x)
        outputs = {}
        for k in range(2, 6):
            x = getattr(self, f"res{k}")(x)
            outputs[f"res{k}"] = x
        return outputs


class FPN(nn.Module):
    """Feature pyramid over res2..res5 (sum fusion, nearest x2), plus p6 = max_pool(k=1, s=2) of p5."""

    def __init__(self) -> None:
        super().__init__()
        self.bottom_up = ResNet50()
        for k, in_channels in zip(range(2, 6), (256, 512, 1024, 2048), strict=True):
            self.add_module(f"fpn_lateral{k}", nn.Conv2d(in_channels, 256, 1))
            self.add_module(f"fpn_output{k}", nn.Conv2d(256, 256, 3, padding=1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        res = self.bottom_up(x)
        prev = self.fpn_lateral5(res["res5"])
        features = {"p5": self.fpn_output5(prev)}
        for k in (4, 3, 2):
            top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
            prev = getattr(self, f"fpn_lateral{k}")(res[f"res{k}"]) + top_down
            features[f"p{k}"] = getattr(self, f"fpn_output{k}")(prev)
        features["p6"] = F.max_pool2d(features["p5"], kernel_size=1, stride=2, padding=0)
        return {name: features[name] for name in RPN_LEVELS}


# ----------------------------------------------------------------------------------------------
# Boxes


def apply_deltas(deltas: Tensor, boxes: Tensor, weights: tuple[float, float, float, float]) -> Tensor:
    """Decode (dx, dy, dw, dh) deltas (R, 4) relative to boxes (R, 4) into XYXY boxes (R, 4)."""
    deltas = deltas.float()
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0] / wx
    dy = deltas[:, 1] / wy
    dw = torch.clamp(deltas[:, 2] / ww, max=SCALE_CLAMP)
    dh = torch.clamp(deltas[:, 3] / wh, max=SCALE_CLAMP)
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    pred_w = torch.exp(dw) * widths
    pred_h = torch.exp(dh) * heights
    return torch.stack(
        (
            pred_ctr_x - 0.5 * pred_w,
            pred_ctr_y - 0.5 * pred_h,
            pred_ctr_x + 0.5 * pred_w,
            pred_ctr_y + 0.5 * pred_h,
        ),
        dim=-1,
    )


def clip_boxes(boxes: Tensor, height: float, width: float) -> Tensor:
    """Clamp XYXY boxes to [0, width] x [0, height]."""
    return torch.stack(
        (
            boxes[:, 0].clamp(min=0, max=width),
            boxes[:, 1].clamp(min=0, max=height),
            boxes[:, 2].clamp(min=0, max=width),
            boxes[:, 3].clamp(min=0, max=height),
        ),
        dim=-1,
    )


def nonempty(boxes: Tensor) -> Tensor:
    """Mask of boxes with strictly positive width and height."""
    return ((boxes[:, 2] - boxes[:, 0]) > 0) & ((boxes[:, 3] - boxes[:, 1]) > 0)


def cell_anchors(size: int) -> Tensor:
    """The 3 unrounded anchors (XYXY around 0) of one level, ratio = h / w, in ASPECT_RATIOS order."""
    anchors = []
    for ratio in ASPECT_RATIOS:
        w = math.sqrt(size**2.0 / ratio)
        h = ratio * w
        anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(anchors)


def grid_anchors(height: int, width: int, stride: int, cells: Tensor) -> Tensor:
    """Anchors over a feature map (offset 0): location-major (row-major over H, W), then the 3 cells."""
    shifts_x = torch.arange(0, width * stride, step=stride, dtype=torch.float32, device=cells.device)
    shifts_y = torch.arange(0, height * stride, step=stride, dtype=torch.float32, device=cells.device)
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return (shifts.view(-1, 1, 4) + cells.view(1, -1, 4)).reshape(-1, 4)  # (H*W*A, 4)


def to_pooler_rois(boxes_per_image: list[Tensor]) -> Tensor:
    """(R, 5) rois (batch index, x0, y0, x1, y1) for torchvision's roi_align."""
    boxes = torch.cat(boxes_per_image, dim=0)
    sizes = torch.tensor([len(b) for b in boxes_per_image], device=boxes.device)
    indices = torch.repeat_interleave(
        torch.arange(len(boxes_per_image), dtype=boxes.dtype, device=boxes.device), sizes
    )
    return torch.cat([indices[:, None], boxes], dim=1)


# ----------------------------------------------------------------------------------------------
# RPN


class StandardRPNHead(nn.Module):
    def __init__(self, channels: int = 256, num_anchors: int = len(ASPECT_RATIOS)) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness_logits = nn.Conv2d(channels, num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(channels, num_anchors * 4, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        t = F.relu(self.conv(x))
        return self.objectness_logits(t), self.anchor_deltas(t)


class RPN(nn.Module):
    """Proposals: per-level top-k on raw logits, clip, drop empty, NMS per level, keep the best."""

    def __init__(self) -> None:
        super().__init__()
        self.rpn_head = StandardRPNHead()
        self._anchor_cache: dict[tuple, Tensor] = {}

    def anchors(self, level: str, height: int, width: int, device: torch.device) -> Tensor:
        key = (level, height, width, str(device))
        if key not in self._anchor_cache:
            cells = cell_anchors(ANCHOR_SIZES[level]).to(device)
            self._anchor_cache[key] = grid_anchors(height, width, FPN_STRIDES[level], cells)
        return self._anchor_cache[key]

    def forward(
        self, features: dict[str, Tensor], image_sizes: list[tuple[int, int]], settings: InferenceSettings
    ) -> list[tuple[Tensor, Tensor]]:
        """Returns per image (proposal boxes (P, 4), objectness logits (P,)), sorted by logit."""
        num_images = len(image_sizes)
        batch_idx = torch.arange(num_images, device=features["p2"].device)[:, None]
        top_boxes, top_logits, level_ids = [], [], []
        for level_id, level in enumerate(RPN_LEVELS):
            logits, deltas = self.rpn_head(features[level])
            n, a, h, w = logits.shape
            logits = logits.float().permute(0, 2, 3, 1).flatten(1)  # (N, H*W*A)
            deltas = deltas.view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).flatten(1, -2)  # (N, H*W*A, 4)
            k = min(settings.rpn_pre_nms_topk, logits.shape[1])
            logits_k, idx = logits.topk(k, dim=1)
            # Decoding is row-wise, so decoding the top-k rows only gives the same boxes as decoding all.
            anchors = self.anchors(level, h, w, logits.device)[idx]  # (N, k, 4)
            boxes = apply_deltas(
                deltas[batch_idx, idx].reshape(-1, 4), anchors.reshape(-1, 4), RPN_BOX_WEIGHTS
            )
            top_boxes.append(boxes.view(n, k, 4))
            top_logits.append(logits_k)
            level_ids.append(torch.full((k,), level_id, dtype=torch.int64, device=logits.device))
        boxes_all, logits_all, levels = (
            torch.cat(top_boxes, 1),
            torch.cat(top_logits, 1),
            torch.cat(level_ids),
        )
        return [
            self._select(boxes_all[i], logits_all[i], levels, image_sizes[i], settings)
            for i in range(num_images)
        ]

    @staticmethod
    def _select(
        boxes: Tensor,
        logits: Tensor,
        levels: Tensor,
        image_size: tuple[int, int],
        settings: InferenceSettings,
    ) -> tuple[Tensor, Tensor]:
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(logits)
        boxes, logits, levels = boxes[valid], logits[valid], levels[valid]
        boxes = clip_boxes(boxes, *image_size)
        keep = nonempty(boxes)
        boxes, logits, levels = boxes[keep], logits[keep], levels[keep]
        keep = batched_nms(boxes.float(), logits, levels, settings.rpn_nms_threshold)[
            : settings.rpn_post_nms_topk
        ]
        return boxes[keep], logits[keep]


# ----------------------------------------------------------------------------------------------
# ROI heads: box head, then the DensePose decoder, head and predictor


class FastRCNNConvFCHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(256 * BOX_POOLER_RESOLUTION**2, 1024)
        self.fc2 = nn.Linear(1024, 1024)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.fc1(torch.flatten(x, start_dim=1)))
        return F.relu(self.fc2(x))


class FastRCNNOutputLayers(nn.Module):
    """Scores over [person, background] (background LAST) and class-specific deltas for the one class."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_score = nn.Linear(1024, 2)
        self.bbox_pred = nn.Linear(1024, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class Decoder(nn.Module):
    """Panoptic-FPN style fusion of p2..p5 into one 256-channel map at stride 4."""

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        for level in FPN_LEVELS:
            stride = FPN_STRIDES[level]
            head_length = max(1, int(math.log2(stride) - math.log2(4)))
            ops: list[nn.Module] = []
            for _ in range(head_length):
                ops.append(ConvReLU(channels, channels, 3, padding=1))
                if stride != 4:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(level, nn.Sequential(*ops))
        self.predictor = nn.Conv2d(channels, channels, 1)

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        x = self.p2(features["p2"])
        for level in FPN_LEVELS[1:]:
            x = x + getattr(self, level)(features[level])
        return self.predictor(x)


class DensePoseV1ConvXHead(nn.Module):
    def __init__(self, in_channels: int = 256, hidden: int = 512, num_convs: int = 8) -> None:
        super().__init__()
        for i in range(1, num_convs + 1):
            self.add_module(
                f"body_conv_fcn{i}", nn.Conv2d(in_channels if i == 1 else hidden, hidden, 3, padding=1)
            )
        self.num_convs = num_convs

    def forward(self, x: Tensor) -> Tensor:
        for i in range(1, self.num_convs + 1):
            x = F.relu(getattr(self, f"body_conv_fcn{i}")(x))
        return x


class DensePoseChartPredictor(nn.Module):
    """Four ConvTranspose2d (28 -> 56) then bilinear x2 (-> 112); raw outputs, no activation."""

    def __init__(self, in_channels: int = 512) -> None:
        super().__init__()

        def deconv(out_channels: int) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)

        self.ann_index_lowres = deconv(NUM_COARSE_SEGM_CHANNELS)
        self.index_uv_lowres = deconv(NUM_PATCHES + 1)
        self.u_lowres = deconv(NUM_PATCHES + 1)
        self.v_lowres = deconv(NUM_PATCHES + 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        def up(t: Tensor) -> Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        return (
            up(self.ann_index_lowres(x)),
            up(self.index_uv_lowres(x)),
            up(self.u_lowres(x)),
            up(self.v_lowres(x)),
        )


def assign_box_levels(boxes: Tensor) -> Tensor:
    """Index 0..3 of the pyramid level (p2..p5) each box is pooled from (canonical 224 px at p4)."""
    sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = torch.floor(4 + torch.log2(sizes / 224 + 1e-8))  # the 1e-8 sits inside the log, as in detectron2
    return torch.clamp(levels, min=2, max=5).to(torch.int64) - 2


def multilevel_roi_align(features: dict[str, Tensor], boxes_per_image: list[Tensor], size: int) -> Tensor:
    """ROIAlign (aligned=False, sampling 2) of each box on its own level, results in box order."""
    rois = to_pooler_rois(boxes_per_image)
    levels = assign_box_levels(rois[:, 1:])
    first = features[FPN_LEVELS[0]]
    output = first.new_zeros((len(rois), first.shape[1], size, size))
    for i, level in enumerate(FPN_LEVELS):
        inds = torch.nonzero(levels == i, as_tuple=True)[0]
        pooled = roi_align(
            features[level], rois[inds], (size, size), 1.0 / FPN_STRIDES[level], 2, aligned=False
        )
        output[inds] = pooled.to(output.dtype)
    return output


class DensePoseROIHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.box_head = FastRCNNConvFCHead()
        self.box_predictor = FastRCNNOutputLayers()
        self.decoder = Decoder()
        self.densepose_head = DensePoseV1ConvXHead()
        self.densepose_predictor = DensePoseChartPredictor()

    def detect(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_sizes: list[tuple[int, int]],
        settings: InferenceSettings,
    ) -> list[tuple[Tensor, Tensor]]:
        """Box head inference: per image (boxes (N, 4), scores (N,)) after the score threshold and NMS."""
        pooled = multilevel_roi_align(features, proposals, BOX_POOLER_RESOLUTION)
        cls_logits, deltas = self.box_predictor(self.box_head(pooled))
        boxes = apply_deltas(deltas, torch.cat(proposals), ROI_BOX_WEIGHTS)
        probs = F.softmax(cls_logits.float(), dim=-1)
        counts = [len(p) for p in proposals]
        return [
            _box_inference_single_image(b, p, size, settings)
            for b, p, size in zip(boxes.split(counts), probs.split(counts), image_sizes, strict=True)
        ]

    def densepose(self, features: dict[str, Tensor], boxes_per_image: list[Tensor]) -> tuple[Tensor, ...]:
        """Raw (coarse, fine, u, v) 112x112 outputs for all boxes of all images, in box order."""
        decoded = self.decoder(features)
        rois = to_pooler_rois(boxes_per_image)
        outputs = []
        for start in range(0, len(rois), HEAD_CHUNK):
            pooled = roi_align(
                decoded, rois[start : start + HEAD_CHUNK], (DP_POOLER_RESOLUTION,) * 2, 0.25, 2, aligned=False
            )
            outputs.append(self.densepose_predictor(self.densepose_head(pooled)))
        return tuple(torch.cat(parts).float() for parts in zip(*outputs, strict=True))


def _box_inference_single_image(
    boxes: Tensor, probs: Tensor, image_size: tuple[int, int], settings: InferenceSettings
) -> tuple[Tensor, Tensor]:
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(probs).all(dim=1)
    boxes, scores = boxes[valid], probs[valid][:, 0]  # column 0 is the person, the last is background
    boxes = clip_boxes(boxes, *image_size)
    keep = scores > settings.score_threshold
    boxes, scores = boxes[keep], scores[keep]
    classes = torch.zeros_like(scores, dtype=torch.int64)
    keep = batched_nms(boxes, scores, classes, settings.nms_threshold)[: settings.detections_per_image]
    return boxes[keep], scores[keep]


# ----------------------------------------------------------------------------------------------
# The whole model


class DensePoseRCNN(nn.Module):
    """``densepose_rcnn_R_50_FPN_s1x``: takes normalized, padded BGR batches; returns RawDetections.

    Its ``state_dict()`` keys and shapes are exactly those of detectron2's model (335 entries).
    """

    def __init__(self) -> None:
        super().__init__()
        self.backbone = FPN()
        self.proposal_generator = RPN()
        self.roi_heads = DensePoseROIHeads()

    def forward(
        self, images: Tensor, image_sizes: list[tuple[int, int]], settings: InferenceSettings | None = None
    ) -> list[RawDetections]:
        """images: (N, 3, Hp, Wp) from ``preprocess.batch_images``; image_sizes: unpadded (h, w) each."""
        settings = settings or InferenceSettings()
        features, proposals, detections = self.detect(images, image_sizes, settings)
        head_boxes = [boxes[: settings.max_people] for boxes, _ in detections]
        heads = self.densepose_outputs(features, head_boxes)
        return [
            raw_detections(boxes, scores, head, proposal)
            for (boxes, scores), head, proposal in zip(detections, heads, proposals, strict=True)
        ]

    def detect(
        self, images: Tensor, image_sizes: list[tuple[int, int]], settings: InferenceSettings | None = None
    ) -> tuple[dict[str, Tensor], list[tuple[Tensor, Tensor]], list[tuple[Tensor, Tensor]]]:
        """Everything before the DensePose head: (FPN features, RPN proposals (boxes, logits) per image,
        detections (boxes (N, 4), scores (N,)) per image). Keep the features to run the head later on
        the boxes that matter (``densepose_outputs``)."""
        settings = settings or InferenceSettings()
        features = self.backbone(images)
        proposals = self.proposal_generator(features, image_sizes, settings)
        detections = self.roi_heads.detect(features, [p[0] for p in proposals], image_sizes, settings)
        return features, proposals, detections

    def densepose_outputs(
        self, features: dict[str, Tensor], boxes_per_image: list[Tensor]
    ) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """(coarse_segm, fine_segm, u, v) per image for its boxes (resized-image XYXY), in box order.

        The head works box by box, so running it on a chosen few gives those boxes what running it on
        all of them gives (tested)."""
        if sum(len(b) for b in boxes_per_image) > 0:
            heads = self.roi_heads.densepose(features, boxes_per_image)
        else:  # nobody anywhere: the head has nothing to do (detectron2 skips it too)
            channels = (NUM_COARSE_SEGM_CHANNELS,) + (NUM_PATCHES + 1,) * 3
            heads = tuple(features["p2"].new_zeros((0, c, 112, 112), dtype=torch.float32) for c in channels)
        counts = [len(b) for b in boxes_per_image]
        per_part = [h.split(counts) for h in heads]
        return [tuple(part[i] for part in per_part) for i in range(len(boxes_per_image))]


def raw_detections(
    boxes: Tensor, scores: Tensor, head: tuple[Tensor, ...], proposals: tuple[Tensor, Tensor]
) -> RawDetections:
    """Assemble one image's RawDetections from ``detect`` and ``densepose_outputs`` parts."""
    coarse_segm, fine_segm, u, v = head
    return RawDetections(
        boxes=boxes,
        scores=scores,
        coarse_segm=coarse_segm,
        fine_segm=fine_segm,
        u=u,
        v=v,
        proposal_boxes=proposals[0],
        proposal_logits=proposals[1],
    )
