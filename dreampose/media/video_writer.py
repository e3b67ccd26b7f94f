"""Writing videos that browsers play: H.264, yuv420p, exactly one frame per input frame, and
giving them the driving video's sound (AAC), cut to the frames they show."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dreampose.base.files import atomic_file


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


# ---------------------------------------------------------------------------- sound
def add_audio(video: str | os.PathLike, source: str | os.PathLike, start: float, duration: float) -> bool:
    """Give ``video`` the soundtrack of ``source`` from ``start`` for ``duration`` seconds.

    Used so a rendered dance keeps the driving video's music: rendered frame k of a range
    starting at pose frame ``first`` shows the instant ``t0 + (first + k) / fps`` of the
    driving video, so the matching sound starts at ``t0 + first / fps`` and lasts as long as
    the rendered frames. The video stream is copied untouched; the sound is encoded as AAC
    (what every browser plays in an mp4). The file is replaced only when the new one is
    complete. Returns False (and leaves ``video`` as it was) when ``source`` has no sound.
    """
    import subprocess

    from dreampose.media.video_reader import ffmpeg_exe, probe_video

    video, source = Path(video), Path(source)
    if not (duration > 0) or start < 0:
        raise ValueError(f"the sound needs start >= 0 and a positive duration; got {start}, {duration}")
    if not probe_video(source).has_audio:
        return False
    with atomic_file(video) as tmp:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(video)]
        cmd += ["-ss", f"{start:.6f}", "-t", f"{duration:.6f}", "-i", str(source)]  # exact: audio is decoded
        cmd += ["-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "160k"]
        cmd += ["-t", f"{duration:.6f}", "-movflags", "+faststart", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600)
        if proc.returncode != 0:
            raise OSError(f"could not add the sound of {source.name}: {proc.stderr.strip()[-300:]}")
    return True
