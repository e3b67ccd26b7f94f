"""Writing videos that browsers play: H.264, yuv420p, exactly one frame per input frame."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dreampose.files import atomic_file


def write_mp4(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float) -> Path:
    """Write RGB uint8 frames (H, W, 3) to an H.264 yuv420p mp4 and check the frame count.

    The file appears only when complete (temporary file, then rename). Odd sizes are padded
    by one pixel because yuv420p needs even dimensions.
    """
    import imageio_ffmpeg

    path = Path(path)
    if not (fps > 0):
        raise ValueError(f"fps must be positive; got {fps}")
    with atomic_file(path) as tmp:
        count = _encode(frames, tmp, fps)
        written, _ = imageio_ffmpeg.count_frames_and_secs(str(tmp))
        if written != count:
            raise RuntimeError(f"the encoder wrote {written} frames instead of {count}")
    return path


def _encode(frames: Iterable[np.ndarray], path: Path, fps: float) -> int:
    """Encode ``frames`` into ``path``; return how many were sent."""
    import imageio_ffmpeg

    count = 0
    writer = None
    try:
        for frame in frames:
            frame = _even(np.ascontiguousarray(frame, dtype=np.uint8))
            if frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"video frames must be RGB (H, W, 3); got {frame.shape}")
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = imageio_ffmpeg.write_frames(
                    str(path),
                    size,
                    fps=fps,
                    codec="libx264",
                    pix_fmt_out="yuv420p",
                    macro_block_size=2,
                    quality=None,
                    output_params=["-crf", "18", "-movflags", "+faststart"],
                    ffmpeg_log_level="error",
                )
                writer.send(None)
            elif (frame.shape[1], frame.shape[0]) != size:
                raise ValueError(f"all frames must share one size; got {frame.shape} after {size}")
            writer.send(frame)
            count += 1
        if writer is None:
            raise ValueError("no frames to write")
    finally:
        if writer is not None:
            writer.close()
    return count


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame
