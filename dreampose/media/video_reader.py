"""Reading driving videos (and single photos) as RGB frames, the right way up.

Decoding goes through the ffmpeg binary bundled with ``imageio-ffmpeg`` so it works the
same everywhere (no system ffmpeg, no ``ffprobe``), and reads whatever that build reads:
H.264, H.265, VP9, AV1, MJPEG ... in mp4, mov, webm, avi, mkv.

Orientation: phones record sideways and store a rotation ("display matrix") in the file.
ffmpeg applies it by default ("autorotate", since ffmpeg 2.7), so frames arrive the way a
player shows them. We never assume the frame size: a one-frame probe run reports the size
*after* rotation, and that is the size we cut the raw stream into. Photos go through
the project's one photo loader (``dreampose.media.images``), upright from their EXIF tag.

Frames are always taken by presentation time with ffmpeg's ``fps`` filter, at the target
fps or else the video's average rate: each output instant gets the source frame shown at
that instant, so variable-frame-rate phone videos keep their timing.

Every problem a user can cause (unreadable, truncated, empty, audio-only, too long, too
large) is a ``ValueError`` saying what was wrong and what to do.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreampose.media.images import read_image

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})

# Decoded frames at or above this share of the expected count are accepted even when
# ffmpeg complained (a damaged packet it concealed); fewer means the file was cut short.
_TRUNCATION_TOLERANCE = 0.95


@dataclass(frozen=True)
class VideoLimits:
    """Largest input we agree to decode; bigger inputs are refused with the limit named.

    ``max_duration_s`` applies to the part selected with start/end; ``max_pixels`` to one
    frame (width x height). The defaults admit a 10-minute 4K phone video.
    """

    max_duration_s: float = 600.0
    max_pixels: int = 4096 * 2304


@dataclass(frozen=True)
class VideoInfo:
    """What the probe found. ``width``/``height`` are as displayed (after rotation)."""

    path: Path
    width: int
    height: int
    fps: float  # 0.0 when the file does not say
    duration_s: float | None  # None when the file does not say
    codec: str
    rotation: float  # degrees, as ffmpeg reports the display matrix (0 when none)
    has_audio: bool
    is_image: bool = False


def is_image_path(path: str | os.PathLike) -> bool:
    """True for a still photo, judged by its file suffix."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's ffmpeg (or the one ``IMAGEIO_FFMPEG_EXE`` names)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# ---------------------------------------------------------------------------- probing
def probe_video(path: str | os.PathLike, limits: VideoLimits | None = None) -> VideoInfo:
    """Read a video's size, fps, duration and rotation by decoding its first frame.

    Raises ``ValueError`` for a missing, empty, unreadable or audio-only file, and for
    frames over ``limits.max_pixels``.
    """
    path = _existing_file(path)
    limits = limits or VideoLimits()
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    cmd += ["-map", "0:v:0", "-frames:v", "1", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120)
    log = proc.stderr
    input_part, _, output_part = log.partition("\nOutput #0")
    video_in = _stream_lines(input_part, "Video")
    if not video_in:
        if _stream_lines(input_part, "Audio"):
            raise ValueError(f"{path.name} holds only audio: there is no video stream to read poses from")
        raise ValueError(
            f"{path.name} is not a readable video or image ({_ffmpeg_reason(log)}); "
            "re-export it as an mp4 (H.264) and try again"
        )
    video_out = _stream_lines(output_part, "Video")
    if proc.returncode != 0 or not video_out or _frames_written(log) == 0:
        raise ValueError(
            f"could not decode any frame of {path.name} ({_ffmpeg_reason(log)}); "
            "the file may be truncated or damaged"
        )
    width, height = _size(video_out[0])
    info = VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=_fps(video_in[0]),
        duration_s=_duration(input_part),
        codec=_codec(video_in[0]),
        rotation=_rotation(input_part),
        has_audio=bool(_stream_lines(input_part, "Audio")),
    )
    _check_pixels(info.width, info.height, limits, path.name)
    return info


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name} is empty (0 bytes)")
    return path


def _stream_lines(log: str, kind: str) -> list[str]:
    return [ln for ln in log.splitlines() if ln.lstrip().startswith("Stream #") and f": {kind}: " in ln]


def _size(line: str) -> tuple[int, int]:
    # "... yuv420p(progressive), 64x48 [SAR 1:1 DAR 4:3], ..." -- the first WxH after the codec.
    match = re.search(r"[ ,](\d{1,6})x(\d{1,6})[ ,\]]", line.split(": Video: ", 1)[1])
    if not match:
        raise ValueError(f"could not read the frame size from ffmpeg's report: {line.strip()}")
    return int(match.group(1)), int(match.group(2))


def _fps(line: str) -> float:
    for unit in ("fps", "tbr"):
        match = re.search(rf"([\d.]+)(k?) {unit}\b", line)
        if match:
            value = float(match.group(1)) * (1000 if match.group(2) else 1)
            if value > 0:
                return value
    return 0.0


def _duration(log: str) -> float | None:
    match = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", log)
    if not match:
        return None  # "Duration: N/A" (live-style streams, some webm)
    h, m, s = match.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def _codec(line: str) -> str:
    return line.split(": Video: ", 1)[1].split()[0].rstrip(",")


def _rotation(log: str) -> float:
    # ffmpeg >= 5 prints "displaymatrix: rotation of -90.00 degrees"; older ones "rotate : 90".
    match = re.search(r"rotation of (-?[\d.]+) degrees", log) or re.search(r"rotate\s*:\s*(-?\d+)", log)
    return float(match.group(1)) if match else 0.0


def _frames_written(log: str) -> int | None:
    counts = re.findall(r"frame=\s*(\d+)", log)
    return int(counts[-1]) if counts else None


def _ffmpeg_reason(log: str) -> str:
    """The most telling line of an ffmpeg error log, for error messages."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    keys = ("Invalid data", "moov atom", "ended prematurely", "partial file", "Error", "error", "failed")
    for key in keys:
        for ln in lines:
            if key in ln:
                return re.sub(r"^(\[[^\]]*\]\s*)+", "", ln)
    return lines[-1] if lines else "ffmpeg printed nothing"


def _check_pixels(width: int, height: int, limits: VideoLimits, name: str) -> None:
    if width * height > limits.max_pixels:
        raise ValueError(
            f"{name} is {width} x {height} = {width * height / 1e6:.3g} megapixels per frame, over the "
            f"limit of {limits.max_pixels / 1e6:.3g} megapixels (max_pixels={limits.max_pixels}); "
            "scale it down first (e.g. to 1080p) or raise the limit"
        )


# ---------------------------------------------------------------------------- decoding
class VideoStream:
    """Frames of one video (or photo) as RGB uint8 (H, W, 3), decoded lazily.

    ``fps`` is the rate of the frames it yields and ``expected_frames`` an estimate of
    how many there will be (for progress bars); iterate to decode. Iterating a video
    twice decodes it twice.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None = None,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        limits: VideoLimits | None = None,
    ) -> None:
        self.limits = limits or VideoLimits()
        check_request(fps, start, end, max_frames)
        self.start, self.end, self.max_frames = start, end, max_frames
        path = Path(path)
        if is_image_path(path):
            self._image = read_image(path)  # photos have their own (larger) pixel limit
            h, w = self._image.shape[:2]
            self.info = VideoInfo(path, w, h, fps or 0.0, None, "image", 0.0, False, is_image=True)
            self.fps = float(fps or 30.0)  # a photo has no rate; any positive value will do
            self.expected_frames = 1
            return
        self._image = None
        self.info = probe_video(path, self.limits)
        if fps is None and self.info.fps <= 0:
            raise ValueError(f"{path.name} does not state its frame rate; pass a target fps (e.g. --fps 30)")
        self.fps = float(fps or self.info.fps)
        self._duration = self._selected_duration()
        self.expected_frames = self._estimate_frames()

    # ---------------------------------------------------------------- selection
    def _selected_duration(self) -> float | None:
        """Seconds between start and end, checked against the video and the limit."""
        total = self.info.duration_s
        start = self.start or 0.0
        if total is not None and start >= total:
            raise ValueError(
                f"start={start:g} s is at or after the end of {self.info.path.name} ({total:.2f} s long)"
            )
        end = self.end if self.end is not None else total
        if end is not None and total is not None:
            end = min(end, total)
        duration = None if end is None else end - start
        if duration is not None and duration > self.limits.max_duration_s:
            raise ValueError(
                f"{self.info.path.name}: the part to read is {duration:.1f} s long, over the limit of "
                f"{self.limits.max_duration_s:g} s (max_duration_s); pick a shorter part with start/end "
                "or raise the limit"
            )
        return duration

    def _estimate_frames(self) -> int | None:
        estimate = None if self._duration is None else max(1, round(self._duration * self.fps))
        if self.max_frames is not None:
            estimate = self.max_frames if estimate is None else min(estimate, self.max_frames)
        return estimate

    # ---------------------------------------------------------------- iteration
    @property
    def height(self) -> int:
        return self.info.height

    @property
    def width(self) -> int:
        return self.info.width

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._image is not None:
            yield self._image.copy()
            return
        yield from self._decode()

    def _command(self) -> list[str]:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
        if self.start:
            cmd += ["-ss", f"{self.start:.6f}"]  # input seeking: fast, and exact when decoding
        if self.end is not None:
            cmd += ["-t", f"{self.end - (self.start or 0.0):.6f}"]
        cmd += ["-i", str(self.info.path), "-map", "0:v:0", "-an", "-sn", "-dn"]
        # Always by presentation time, also at the video's own rate: output frame k is the
        # source frame on screen at k / fps (round=up keeps the last frame starting at or
        # before that instant), so a variable-frame-rate phone video keeps its timing instead
        # of being played back frame after frame at its average rate. Timestamps are moved
        # 1 ms earlier (in microsecond units, settb=AVTB) because webm/mkv store them rounded
        # to the millisecond, which can put a frame just after the instant it really starts at.
        cmd += ["-vf", f"settb=AVTB,setpts=PTS-0.001/TB,fps=fps={self.fps:.6f}:round=up"]
        # passthrough: one output frame per frame leaving the filters, no duplication by the muxer
        cmd += ["-fps_mode", "passthrough"]
        if self.max_frames is not None:
            cmd += ["-frames:v", str(self.max_frames)]
        cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        return cmd

    def _decode(self) -> Iterator[np.ndarray]:
        h, w = self.info.height, self.info.width
        frame_bytes = h * w * 3
        # Unknown durations are bounded by counting frames instead.
        frame_limit = math.floor(self.limits.max_duration_s * self.fps) + 1
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(self._command(), stdout=subprocess.PIPE, stderr=errors)
            count = 0
            try:
                while True:
                    data = _read_exactly(proc.stdout, frame_bytes)
                    if not data:
                        break
                    if len(data) < frame_bytes:
                        raise ValueError(
                            f"{self.info.path.name}: frame {count} was cut short; the video is truncated or damaged"
                        )
                    count += 1
                    if count > frame_limit:
                        raise ValueError(
                            f"{self.info.path.name} is longer than the limit of "
                            f"{self.limits.max_duration_s:g} s (max_duration_s); pick a shorter part "
                            "with start/end or raise the limit"
                        )
                    yield np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3)
                returncode = proc.wait()
            finally:
                if proc.poll() is None:  # the caller stopped early: stop ffmpeg too
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            errors.seek(0)
            log = errors.read().decode("utf-8", "replace")
        self._check_complete(count, returncode, log)

    def _check_complete(self, count: int, returncode: int, log: str) -> None:
        name = self.info.path.name
        if count == 0:
            raise ValueError(
                f"no frame could be decoded from {name}"
                + (f" ({_ffmpeg_reason(log)})" if log.strip() else "")
                + "; check start/end and that the file plays"
            )
        expected = self.expected_frames
        short = expected is not None and count < _TRUNCATION_TOLERANCE * expected - 1
        if returncode != 0 or (log.strip() and short):
            raise ValueError(
                f"{name} is truncated or damaged: decoded {count} frames"
                + (f" of about {expected}" if expected else "")
                + f" ({_ffmpeg_reason(log)}); re-download or re-export the video"
            )


def check_request(fps: float | None, start: float | None, end: float | None, max_frames: int | None) -> None:
    """Refuse a reading request that cannot be met (the app checks its bundled poses with it too)."""
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number; got {fps}")
    if start is not None and not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start must be a time in seconds >= 0; got {start}")
    if end is not None and not (math.isfinite(end) and end > (start or 0.0)):
        raise ValueError(f"end must be after start (in seconds); got start={start or 0:g}, end={end}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1; got {max_frames}")


def _read_exactly(stream, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
