"""How closely two DensePose results for the same image agree: one person against one person.

For comparing settings that should change little (fp16 or bf16 against fp32, a smaller detector
size against the model zoo's 800 px) on the same image. The measures are those of the parity
fixture's README, on full-frame maps so that boxes of different sizes compare:
- boxes: IoU, and the largest coordinate difference in pixels;
- labels: the share of body pixels (body in either result) that get the same part in both;
- UV: mean and largest absolute difference where both give the same part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pose_extraction.tracking import box_iou
from pose_extraction.types import DetectedPerson


@dataclass(frozen=True)
class PoseAgreement:
    box_iou: float
    box_max_diff: float  # px
    label_agreement: float  # 0..1 of the pixels that either result calls body
    uv_mean_abs_diff: float  # where both give the same part (nan when there is no such pixel)
    uv_max_abs_diff: float
    body_pixels: int  # pixels that either result calls body

    def row(self) -> str:
        return (
            f"IoU {self.box_iou:.3f}, box diff {self.box_max_diff:.1f} px, labels agree "
            f"{self.label_agreement:.1%} of {self.body_pixels} px, UV diff mean {self.uv_mean_abs_diff:.4f} "
            f"max {self.uv_max_abs_diff:.3f}"
        )


def compare_people(a: DetectedPerson, b: DetectedPerson, height: int, width: int) -> PoseAgreement:
    """Agreement of two results for one person in an image of ``height`` x ``width``."""
    uv_a, labels_a = a.paste(height, width)
    uv_b, labels_b = b.paste(height, width)
    body = (labels_a > 0) | (labels_b > 0)
    same = (labels_a == labels_b) & (labels_a > 0)
    uv_diff = np.abs(uv_a - uv_b)[:, same]
    return PoseAgreement(
        box_iou=box_iou(a.box_xyxy, b.box_xyxy),
        box_max_diff=float(np.abs(np.asarray(a.box_xyxy) - np.asarray(b.box_xyxy)).max()),
        label_agreement=float(same.sum() / body.sum()) if body.any() else 1.0,
        uv_mean_abs_diff=float(uv_diff.mean()) if uv_diff.size else float("nan"),
        uv_max_abs_diff=float(uv_diff.max()) if uv_diff.size else float("nan"),
        body_pixels=int(body.sum()),
    )


def match_people(
    reference: Sequence[DetectedPerson], other: Sequence[DetectedPerson], min_iou: float = 0.5
) -> list[tuple[int, int | None]]:
    """For each reference person, the index of the ``other`` person with the best box IoU (None when
    no box overlaps by ``min_iou``). Greedy by reference order (highest score first); each other
    person is matched at most once."""
    taken: set[int] = set()
    pairs: list[tuple[int, int | None]] = []
    for i, person in enumerate(reference):
        ious = [(box_iou(person.box_xyxy, q.box_xyxy), j) for j, q in enumerate(other) if j not in taken]
        best_iou, best = max(ious, default=(0.0, None))
        if best is not None and best_iou >= min_iou:
            taken.add(best)
            pairs.append((i, best))
        else:
            pairs.append((i, None))
    return pairs
