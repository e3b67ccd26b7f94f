"""Frames per second of the native DensePose extractor (CPU, and CUDA when present).

Uses the parity fixture's weights (random, same architecture, so the same FLOPs as the real model)
regenerated from ``shared/densepose-parity``, or ``--weights`` if given. The frame is the fixture's
480x640 person image, repeated. Speed depends on how many detections the DensePose head runs on
(about 0.15 s each on 2 CPU cores at 28x28x512); random weights find ~60 "people" at 800 px, real
weights usually a handful, so ``--max-people`` (default 1: DreamPose animates one person) caps the
head and ``--max-people 0`` runs it on every detection.

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

SHARED = Path(os.environ.get("DREAMPOSE_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
PARITY = SHARED / "densepose-parity"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", help="weights file (default: regenerate the parity fixture's)")
    p.add_argument("--device", nargs="+", default=None, help="devices (default: cpu, plus cuda when present)")
    p.add_argument("--sizes", nargs="+", type=int, default=[800, 512], help="shortest-edge sizes (min_size)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 2])
    p.add_argument("--frames", type=int, default=4, help="frames timed per setting (after one warm-up batch)")
    p.add_argument(
        "--max-people", type=int, default=1, help="DensePose head on the top N detections; 0 = all"
    )
    p.add_argument("--fp16", action="store_true", help="also time fp16 autocast on CUDA")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p.parse_args(argv)


def load_model(weights: str | None) -> DensePoseRCNN:
    if weights is None:
        if not (PARITY / "make_weights.py").is_file():
            raise SystemExit(f"no --weights given and no parity fixture at {PARITY} (set DREAMPOSE_SHARED)")
        tmp = Path(tempfile.mkdtemp(prefix="densepose-bench-")) / "weights.pkl"
        subprocess.run([sys.executable, str(PARITY / "make_weights.py"), "--out", str(tmp)], check=True)
        weights = str(tmp)
    return DensePoseExtractor.from_pretrained(weights).model


def benchmark_frame() -> np.ndarray:
    path = PARITY / "person_landscape.png"
    if path.is_file():
        return np.asarray(Image.open(path).convert("RGB"))
    rng = np.random.default_rng(0)  # no fixture: a smooth random 480x640 frame
    return np.repeat(np.repeat(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), 16, 0), 16, 1)


def frames_per_second(extractor: DensePoseExtractor, frame: np.ndarray, frames: int) -> tuple[float, float]:
    """(frames/s, mean detections per frame), after one warm-up batch."""
    batch = [frame] * extractor.batch_size
    extractor.predict(batch)  # warm-up: allocator, cuDNN/oneDNN algorithm choice
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    done, detections = 0, 0
    start = time.perf_counter()
    while done < frames:
        predictions = extractor.predict(batch)
        done += len(batch)
        detections += sum(len(p.raw.boxes) for p in predictions)
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start), detections / done


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    model = load_model(args.weights)
    frame = benchmark_frame()
    settings = InferenceSettings(max_people=args.max_people or None)
    heads = f"top {args.max_people}" if args.max_people else "all"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads on {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows CPU figures), "
        f"frame {frame.shape[1]}x{frame.shape[0]}"
    )
    print(
        f"{'device':<8}{'precision':<10}{'min_size':>9}{'batch':>7}{'heads':>8}{'dets/frame':>12}{'frames/s':>10}"
    )
    for device in devices:
        if device == "cuda":  # comparable numbers: no TF32 shortcuts in fp32
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        precisions = [False, True] if (args.fp16 and device == "cuda") else [False]
        for fp16 in precisions:
            for size in args.sizes:
                for batch_size in args.batch_sizes:
                    extractor = DensePoseExtractor(
                        model, device, min_size=size, batch_size=batch_size, fp16=fp16, settings=settings
                    )
                    fps, dets = frames_per_second(extractor, frame, args.frames)
                    precision = "fp16" if fp16 else "fp32"
                    print(
                        f"{device:<8}{precision:<10}{size:>9}{batch_size:>7}{heads:>8}{dets:>12.1f}{fps:>10.3f}"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
