"""How much a faster DensePose setting changes the poses, on the parity fixture's images.

Compares against the model-zoo setting (fp32, detector size 800): a smaller ``--detector-size``
(the shorter side the detector resizes to), and lower precision (bf16 autocast on the CPU, fp16 and
bf16 on CUDA). For each image, the reference's top detections are matched by box IoU to the other
setting's detections and compared with ``pose_extraction.densepose.agreement`` (box IoU, the share
of body pixels with the same part label, UV difference where labels agree). Precision is measured
twice: the whole network, and the DensePose head alone on the reference's detections (features and
boxes from fp32), which separates rounding in the head from changed detections.

The weights are the fixture's random ones (the real architecture): they are far more sensitive
to rounding than trained weights are likely to be, and their UV values are raw regressions up to
about 45, not [0, 1]. Read the figures as an upper bound on the change, not as real-model accuracy.

    python benchmarks/densepose_agreement.py                        # 512 vs 800, bf16 on the CPU
    python benchmarks/densepose_agreement.py --device cuda --precisions fp16 bf16 --sizes 512 640
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.densepose_speed import PARITY, load_model  # noqa: E402
from pose_extraction.densepose import DensePoseExtractor, FrameDetections  # noqa: E402
from pose_extraction.densepose.agreement import PoseAgreement, compare_people, match_people  # noqa: E402

IMAGES = ("person_landscape.png", "person_portrait.png")
REFERENCE_SIZE = 800


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", help="weights file (default: regenerate the parity fixture's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", nargs="+", type=int, default=[512], help="detector sizes to compare with 800")
    p.add_argument("--precisions", nargs="+", default=["bf16"], choices=["fp16", "bf16"])
    p.add_argument("--top", type=int, default=4, help="reference detections compared per image")
    return p.parse_args(argv)


def extractor(model, device: str, size: int = REFERENCE_SIZE, precision: str = "fp32") -> DensePoseExtractor:
    return DensePoseExtractor(
        model, device, min_size=size, fp16=precision == "fp16", bf16=precision == "bf16", batch_size=1
    )


def compare_settings(
    reference: DensePoseExtractor,
    other: DensePoseExtractor,
    image: np.ndarray,
    top: int,
    head_only: bool = False,
) -> list[PoseAgreement | None]:
    """Agreement of the reference's top ``top`` people with their matches under ``other`` (None: no match).

    ``head_only``: ``other`` runs the DensePose head on the reference's own boxes, so changed
    detections drop out: at the same size on the reference's fp32 features (precision of the head),
    at another size scaled to it, on its own features.
    """
    ref_detections = reference.detect([image])
    candidates = ref_detections[0].candidates[:top]
    ref_people = [reference.densepose(ref_detections, [i])[0] for i in range(len(candidates))]
    if head_only:
        if (other.min_size, other.max_size) == (reference.min_size, reference.max_size):
            boxes_of_reference = ref_detections  # the reference's own (fp32) features too
        else:
            boxes_of_reference = _with_reference_boxes(other, ref_detections[0], image, len(candidates))
        other_people = [other.densepose(boxes_of_reference, [i])[0] for i in range(len(candidates))]
        return [compare_people(a, b, *image.shape[:2]) for a, b in zip(ref_people, other_people, strict=True)]
    other_detections = other.detect([image])
    pairs = match_people(candidates, other_detections[0].candidates)
    results: list[PoseAgreement | None] = []
    for i, j in pairs:
        if j is None:
            results.append(None)
            continue
        person = other.densepose(other_detections, [j])[0]
        results.append(compare_people(ref_people[i], person, *image.shape[:2]))
    return results


def _with_reference_boxes(other: DensePoseExtractor, ref: FrameDetections, image: np.ndarray, count: int):
    """``other``'s detections of ``image`` with the reference's first ``count`` boxes put in their place."""
    det = other.detect([image])[0]
    rows = ref.raw_rows[:count]
    sy, sx = det.resized_hw[0] / ref.resized_hw[0], det.resized_hw[1] / ref.resized_hw[1]
    boxes = ref.raw.boxes[rows] * torch.tensor([sx, sy, sx, sy])
    raw = dataclasses.replace(det.raw, boxes=boxes, scores=ref.raw.scores[rows])
    return [dataclasses.replace(det, raw=raw, raw_rows=list(range(count)), candidates=ref.candidates[:count])]


def summary(results: list[PoseAgreement | None]) -> str:
    matched = [r for r in results if r is not None]
    top1 = results[0].row() if results and results[0] is not None else "top person not found"
    if not matched:
        return f"matched 0/{len(results)}; {top1}"
    labels = np.mean([r.label_agreement for r in matched])
    uv = np.nanmean([r.uv_mean_abs_diff for r in matched])
    return f"matched {len(matched)}/{len(results)}, mean labels agree {labels:.1%}, UV diff {uv:.4f}; top: {top1}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = load_model(args.weights)
    images = {name: np.asarray(Image.open(PARITY / name).convert("RGB")) for name in IMAGES}
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}; reference: fp32, detector size {REFERENCE_SIZE}")  # fmt: skip
    if args.device == "cuda":  # the reference is true fp32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    reference = extractor(model, args.device)
    for name, image in images.items():
        print(f"== {name} ({image.shape[1]}x{image.shape[0]})")
        for size in args.sizes:
            start = time.perf_counter()
            smaller = extractor(model, args.device, size)
            for head_only in (True, False):
                what = "head on the 800 boxes" if head_only else "own detections"
                results = compare_settings(reference, smaller, image, args.top, head_only=head_only)
                print(f"  size {size}, {what}: {summary(results)}", flush=True)
            print(f"  ({time.perf_counter() - start:.0f} s)")
        for precision in args.precisions:
            if precision == "fp16" and args.device != "cuda":
                print("  fp16: skipped (needs CUDA; bf16 is the CPU stand-in)")
                continue
            low = extractor(model, args.device, precision=precision)
            for head_only in (True, False):
                what = "head on the fp32 boxes and features" if head_only else "whole network"
                results = compare_settings(reference, low, image, args.top, head_only=head_only)
                print(f"  {precision} {what}: {summary(results)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
