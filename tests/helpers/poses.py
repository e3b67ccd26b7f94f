"""Shared helpers for the pose-sequence tests: tiny synthetic videos and a fake DensePose.

Videos are made with imageio-ffmpeg's own ffmpeg binary, so the tests need no system
ffmpeg. Each frame's background grey level encodes its index (``level(i)``) so a test can
tell which source frame it got back, and a white block in one corner shows orientation.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from pose_extraction.types import DetectedPerson

SIZE = 64  # canvas height and width for fast CPU tests (latents 8 x 8)
LEVEL_STEP = 5
LEVEL_BASE = 20


def level(index: int) -> int:
    """Background grey level of source frame ``index``."""
    return LEVEL_BASE + LEVEL_STEP * index


def frame_index(frame: np.ndarray) -> int:
    """Which source frame a decoded frame came from (the median ignores the marker)."""
    return round((float(np.median(frame)) - LEVEL_BASE) / LEVEL_STEP)


def marked_frames(n: int, height: int = 48, width: int = 64, person: bool = False) -> np.ndarray:
    """(n, H, W, 3) uint8: grey level(i), a white block at the top-left corner.

    With ``person``, a pure red rectangle (the fake detector's "person") sits right of centre.
    """
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        frames[i] = level(i)
    frames[:, 2:14, 2:18] = 255  # asymmetric: top-left, wider than tall
    if person:
        frames[:, height // 4 : height - 4, width // 2 : width // 2 + 12] = (255, 0, 0)
    return frames


def encode(
    frames: np.ndarray,
    path: Path,
    fps: float,
    codec_args: list[str],
    input_args: tuple[str, ...] = (),
) -> Path:
    """Encode RGB frames with ffmpeg (``codec_args`` pick codec and pixel format)."""
    import imageio_ffmpeg

    n, h, w, _ = frames.shape
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "-"]
    cmd += [*codec_args, str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True, timeout=60)
    if input_args:  # a second pass that only rewrites metadata (e.g. rotation)
        tmp = path.with_name("meta_" + path.name)
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        cmd += [*input_args, "-i", str(path), "-c", "copy", str(tmp)]
        subprocess.run(cmd, check=True, timeout=60)
        tmp.replace(path)
    return path


H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10"]


def person(box: tuple[int, int, int, int], score: float, u: float = 0.5, label: int = 1) -> DetectedPerson:
    """A DetectedPerson filling integer box (x, y, w, h) with one part and a constant U."""
    x, y, w, h = box
    uv = np.zeros((2, h, w), dtype=np.float32)
    uv[0], uv[1] = u, 0.25
    return DetectedPerson(
        box_xyxy=np.array([x, y, x + w, y + h], dtype=np.float32),
        score=score,
        box_xywh=(x, y, w, h),
        labels=np.full((h, w), label, dtype=np.uint8),
        uv=uv,
    )


class RedBoxExtractor:
    """Fake DensePose: the "person" is the set of pure-red pixels; no red, nobody.

    Records the batch sizes it was called with so tests can check batching.
    """

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, images):
        self.batches.append(len(images))
        out = []
        for img in images:
            img = np.asarray(img).astype(int)
            red = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)
            ys, xs = np.nonzero(red)
            if len(xs) == 0:
                out.append([])
                continue
            x, y = int(xs.min()), int(ys.min())
            out.append([person((x, y, int(xs.max()) + 1 - x, int(ys.max()) + 1 - y), 0.9, u=0.75)])
        return out


def make_poses(num_frames: int = 4, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """UV maps (N, 2, size, size) of a body box that moves right frame by frame."""
    rng = np.random.default_rng(seed)
    uv = np.zeros((num_frames, 2, size, size), dtype=np.float32)
    for i in range(num_frames):
        x = 8 + 6 * i
        uv[i, :, 10:58, x : x + 20] = rng.uniform(0.05, 1.0, size=(2, 48, 20))
    return uv
