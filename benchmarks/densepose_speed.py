"""Frames per second of the native DensePose extractor (CPU, and CUDA when present).

Uses the parity fixture's weights (random, same architecture, so the same FLOPs as the real model)
regenerated from ``shared/densepose-parity``, or ``--weights`` if given. The frame is the fixture's
480x640 person image, repeated. Speed depends on how many detections the DensePose head runs on
(about 0.15 s each on 2 CPU cores at 28x28x512); random weights find ~60 "people" at 800 px, real
weights usually a handful. Modes:

- ``all``: the head on every detection (``extractor(frames)``; what pose extraction did before
  "boxes first");
- ``top1``: the head on the top detection only (``InferenceSettings(max_people=1)``);
- ``boxes-first``: what ``extract_poses`` does now: detection for every frame, the tracker picks
  the person from the boxes, the head runs on that one box.

    python benchmarks/densepose_speed.py                        # CPU, 800 and 512 px, batch 1 and 2
    python benchmarks/densepose_speed.py --device cuda --fp16   # adds fp16 rows on CUDA
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pose_extraction.densepose import DensePoseExtractor, InferenceSettings  # noqa: E402
from pose_extraction.densepose.model import DensePoseRCNN  # noqa: E402
from pose_extraction.extract import _chosen_index  # noqa: E402
from pose_extraction.tracking import PersonTracker  # noqa: E402

MODES = ("all", "top1", "boxes-first")

SHARED = Path(os.environ.get("DREAMPOSE_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
PARITY = SHARED / "densepose-parity"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", help="weights file (default: regenerate the parity fixture's)")
    p.add_argument("--device", nargs="+", default=None, help="devices (default: cpu, plus cuda when present)")
    p.add_argument("--sizes", nargs="+", type=int, default=[800, 512], help="shortest-edge sizes (min_size)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 2])
    p.add_argument("--frames", type=int, default=4, help="frames timed per setting (after one warm-up batch)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=["all", "boxes-first"])
    p.add_argument("--fp16", action="store_true", help="also time fp16 autocast on CUDA")
    p.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p.parse_args(argv)


def load_model(weights: str | None) -> DensePoseRCNN:
    if weights is not None:
        return DensePoseExtractor.from_pretrained(weights).model
    if not (PARITY / "make_weights.py").is_file():
        raise SystemExit(f"no --weights given and no parity fixture at {PARITY} (set DREAMPOSE_SHARED)")
    with tempfile.TemporaryDirectory(prefix="densepose-bench-") as folder:  # 256 MB: not kept
        tmp = Path(folder) / "weights.pkl"
        subprocess.run([sys.executable, str(PARITY / "make_weights.py"), "--out", str(tmp)], check=True)
        return DensePoseExtractor.from_pretrained(str(tmp)).model


def benchmark_frame() -> np.ndarray:
    path = PARITY / "person_landscape.png"
    if path.is_file():
        return np.asarray(Image.open(path).convert("RGB"))
    rng = np.random.default_rng(0)  # no fixture: a smooth random 480x640 frame
    return np.repeat(np.repeat(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), 16, 0), 16, 1)


def frames_per_second(
    extractor: DensePoseExtractor, frame: np.ndarray, frames: int, mode: str
) -> tuple[float, float, float]:
    """(frames/s, mean detections per frame, mean head boxes per frame), after one warm-up batch."""
    batch = [frame] * extractor.batch_size
    tracker = PersonTracker()

    def run() -> tuple[int, int]:
        if mode == "boxes-first":
            detections = extractor.detect(batch)
            chosen = [_chosen_index(tracker, d.candidates) for d in detections]
            extractor.densepose(detections, chosen)
            return sum(len(d.candidates) for d in detections), sum(c is not None for c in chosen)
        predictions = extractor.predict(batch)
        return sum(len(p.raw.boxes) for p in predictions), sum(len(p.people) for p in predictions)

    run()  # warm-up: allocator, cuDNN/oneDNN algorithm choice
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    done = detections = heads = 0
    start = time.perf_counter()
    while done < frames:
        d, h = run()
        done, detections, heads = done + len(batch), detections + d, heads + h
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start), detections / done, heads / done


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    model = load_model(args.weights)
    frame = benchmark_frame()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads on {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows CPU figures), "
        f"frame {frame.shape[1]}x{frame.shape[0]}"
    )
    print(
        f"{'device':<8}{'precision':<10}{'size':>6}{'batch':>7}{'mode':>13}{'dets/frame':>12}"
        f"{'heads/frame':>13}{'frames/s':>10}"
    )
    for device in devices:
        if device == "cuda":  # comparable numbers: no TF32 shortcuts in fp32
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        precisions = ["fp32"]
        precisions += ["fp16"] if args.fp16 and device == "cuda" else []
        precisions += ["bf16"] if args.bf16 else []
        for precision in precisions:
            for size in args.sizes:
                for batch_size in args.batch_sizes:
                    for mode in args.modes:
                        extractor = DensePoseExtractor(
                            model,
                            device,
                            min_size=size,
                            batch_size=batch_size,
                            fp16=precision == "fp16",
                            bf16=precision == "bf16",
                            settings=InferenceSettings(max_people=1 if mode == "top1" else None),
                        )
                        fps, dets, heads = frames_per_second(extractor, frame, args.frames, mode)
                        print(
                            f"{device:<8}{precision:<10}{size:>6}{batch_size:>7}{mode:>13}{dets:>12.1f}"
                            f"{heads:>13.1f}{fps:>10.3f}",
                            flush=True,
                        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
