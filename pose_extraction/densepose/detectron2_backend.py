"""DensePose through detectron2 itself, for those who have it installed (``--pose-backend detectron2``).

It returns the same ``DetectedPerson`` lists as the native port, so the two can be swapped and
compared. detectron2 and its DensePose project have no package on PyPI; they must be built from
source. Nothing here is imported unless this backend is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from pose_extraction.densepose.checkpoint import is_safetensors, load_state_dict, match_state_dict
from pose_extraction.densepose.download import resolve_weights
from pose_extraction.densepose.postprocess import int_box
from pose_extraction.densepose.preprocess import as_rgb_array
from pose_extraction.types import DetectedPerson


class Detectron2NotAvailableError(ImportError, ValueError):
    """The detectron2 backend was asked for, but detectron2 or its DensePose project does not import."""


def _import_detectron2() -> None:
    try:
        import densepose  # noqa: F401
        import detectron2  # noqa: F401
    except ImportError as e:
        raise Detectron2NotAvailableError(
            f"the detectron2 DensePose backend needs the packages 'detectron2' and 'densepose' ({e}). "
            "They are not on PyPI: build detectron2 from source and install projects/DensePose, or use the "
            "built-in backend (--pose-backend native), which gives the same results."
        ) from e


def densepose_s1x_config(min_size: int = 800, max_size: int = 1333, score_threshold: float = 0.05):
    """detectron2 config equal to densepose_rcnn_R_50_FPN_s1x.yaml (+ its base) for inference.

    Written out here because pip-installed DensePose does not ship its yaml files.
    """
    from densepose import add_densepose_config
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_densepose_config(cfg)
    m = cfg.MODEL
    m.META_ARCHITECTURE = "GeneralizedRCNN"
    m.BACKBONE.NAME = "build_resnet_fpn_backbone"
    m.RESNETS.DEPTH = 50
    m.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    m.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    m.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    m.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    m.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    m.RPN.PRE_NMS_TOPK_TEST = 1000
    m.RPN.POST_NMS_TOPK_TEST = 1000
    m.DENSEPOSE_ON = True
    m.ROI_HEADS.NAME = "DensePoseROIHeads"
    m.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    m.ROI_HEADS.NUM_CLASSES = 1
    m.ROI_HEADS.SCORE_THRESH_TEST = score_threshold
    m.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    m.ROI_BOX_HEAD.NUM_FC = 2
    m.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    m.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 2
    m.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlign"
    m.ROI_DENSEPOSE_HEAD.NAME = "DensePoseV1ConvXHead"
    m.ROI_DENSEPOSE_HEAD.POOLER_TYPE = "ROIAlign"
    m.ROI_DENSEPOSE_HEAD.NUM_COARSE_SEGM_CHANNELS = 2
    cfg.INPUT.FORMAT = "BGR"
    cfg.INPUT.MIN_SIZE_TEST = min_size
    cfg.INPUT.MAX_SIZE_TEST = max_size
    return cfg


class Detectron2DensePoseExtractor:
    """Same interface as ``DensePoseExtractor``: RGB image(s) in, ``DetectedPerson`` lists out."""

    def __init__(self, model: torch.nn.Module, cfg, batch_size: int = 4) -> None:
        from detectron2.data import transforms as T

        self.model = model.eval()
        self.resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls,
        path_or_url: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        *,
        min_size: int = 800,
        max_size: int = 1333,
        score_threshold: float = 0.05,
        batch_size: int = 4,
        progress: bool = True,
    ) -> Detectron2DensePoseExtractor:
        """Build detectron2's model and load the model-zoo ``.pkl`` (or our safetensors copy)."""
        _import_detectron2()
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.modeling import build_model

        cfg = densepose_s1x_config(min_size, max_size, score_threshold)
        cfg.MODEL.DEVICE = str(device)
        model = build_model(cfg)
        path = resolve_weights(path_or_url, progress=progress)
        if is_safetensors(path):
            model.load_state_dict(match_state_dict(load_state_dict(path), model))
        else:
            DetectionCheckpointer(model).load(str(path))
        return cls(model, cfg, batch_size)

    def __call__(
        self, images: np.ndarray | Image.Image | Sequence[np.ndarray | Image.Image]
    ) -> list[DetectedPerson] | list[list[DetectedPerson]]:
        """People per image sorted by score; one list for one image, a list of lists for a list."""
        single = isinstance(images, np.ndarray | Image.Image)
        rgbs = [as_rgb_array(im) for im in ([images] if single else images)]
        people = []
        for start in range(0, len(rgbs), self.batch_size):
            people.extend(self._run([rgb[:, :, ::-1] for rgb in rgbs[start : start + self.batch_size]]))
        return people[0] if single else people

    @torch.inference_mode()
    def _run(self, bgr_images: list[np.ndarray]) -> list[list[DetectedPerson]]:
        from densepose.vis.extractor import DensePoseResultExtractor

        inputs = []
        for bgr in bgr_images:
            resized = self.resize.get_transform(bgr).apply_image(np.ascontiguousarray(bgr))
            tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
            inputs.append({"image": tensor, "height": bgr.shape[0], "width": bgr.shape[1]})
        outputs = self.model(inputs)
        extract = DensePoseResultExtractor()
        results = []
        for output in outputs:
            instances = output["instances"].to("cpu")
            if len(instances) == 0 or not instances.has("pred_densepose"):
                results.append([])
                continue
            charts, _ = extract(instances)
            people = []
            for box, score, chart in zip(instances.pred_boxes.tensor, instances.scores, charts, strict=True):
                people.append(
                    DetectedPerson(
                        box_xyxy=box.numpy().astype(np.float32),
                        score=float(score),
                        box_xywh=int_box(box),
                        labels=chart.labels.numpy().astype(np.uint8),
                        uv=chart.uv.numpy().astype(np.float32),
                    )
                )
            results.append(people)
        return results
