"""Reading driving videos: containers and codecs, rotation, fps resampling, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dreampose.media.images import read_image
from dreampose.media.video_reader import VideoLimits, VideoStream, probe_video
from tests.helpers.poses import H264, encode, frame_index, marked_frames


def read_video(path, **request) -> tuple[np.ndarray, float]:
    """All frames of a short clip at once, and the rate they were read at."""
    stream = VideoStream(path, **request)
    return np.stack(list(stream)), stream.fps


N, FPS = 24, 12.0  # 2 seconds of 48 x 64 frames

FORMATS = {
    "h264.mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10"],
    "h265.mov": ["-c:v", "libx265", "-pix_fmt", "yuv420p", "-crf", "10", "-x265-params", "log-level=none"],
    "vp9.webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-crf", "10", "-b:v", "0"],
    "mjpeg.avi": ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "2"],
    "h264.mkv": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10"],
}


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    return marked_frames(N)


@pytest.fixture(scope="module")
def videos(tmp_path_factory, source) -> dict:
    folder = tmp_path_factory.mktemp("videos")
    return {name: encode(source, folder / name, FPS, args) for name, args in FORMATS.items()}


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(int) - b.astype(int)).mean()) < 6


@pytest.mark.parametrize("name", list(FORMATS))
def test_containers_and_codecs(videos, source, name):
    frames, fps = read_video(videos[name])
    assert frames.shape == (N, 48, 64, 3)
    assert fps == pytest.approx(FPS)
    assert [frame_index(f) for f in frames] == list(range(N))
    assert _close(frames[5], source[5])  # same orientation, marker top-left
    assert frames[5][2:14, 2:18].mean() > 230


@pytest.mark.parametrize(
    ("name", "rotation", "quarter_turns"),
    [
        # -display_rotation is counter-clockwise (ffmpeg docs); np.rot90 turns counter-clockwise.
        ("rot90.mp4", "90", 1),
        ("rot270.mov", "-90", -1),
        ("rot180.mp4", "180", 2),
    ],
)
def test_rotation_metadata_is_applied(tmp_path, source, name, rotation, quarter_turns):
    path = encode(source, tmp_path / name, FPS, H264, input_args=("-display_rotation", rotation))
    info = probe_video(path)
    assert abs(info.rotation) == pytest.approx(abs(float(rotation)))
    frames, _ = read_video(path)
    expected = np.rot90(source[3], quarter_turns)
    assert frames.shape[1:] == expected.shape
    assert _close(frames[3], expected)
    assert not _close(frames[3], np.rot90(source[3], quarter_turns + 2))  # the opposite turn differs
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])


@pytest.mark.parametrize("name", ["h264.mp4", "vp9.webm", "mjpeg.avi"])  # webm: millisecond timestamps
@pytest.mark.parametrize("target", [4, 5, 7, 24, 30])
def test_fps_resampling_keeps_the_frame_shown_at_each_instant(videos, name, target):
    frames, fps = read_video(videos[name], fps=target)
    assert fps == target
    # 2 s of video; output frame k is at k / target seconds, when source frame
    # floor(k * 12 / target) is on screen (down-sampling drops, up-sampling repeats).
    assert [frame_index(f) for f in frames] == [k * 12 // target for k in range(2 * target)]


def test_start_end_and_max_frames(videos):
    frames, _ = read_video(videos["h264.mkv"], start=0.5, end=1.5)
    assert [frame_index(f) for f in frames] == list(range(6, 18))
    frames, _ = read_video(videos["h264.mp4"], start=1.0, max_frames=3)
    assert [frame_index(f) for f in frames] == [12, 13, 14]
    stream = VideoStream(videos["h264.mp4"], fps=6, max_frames=100)
    assert stream.expected_frames == 12


def test_stopping_early_stops_ffmpeg(videos):
    stream = iter(VideoStream(videos["h264.mp4"]))
    first = next(stream)
    stream.close()  # must not hang or leave ffmpeg running
    assert frame_index(first) == 0


def test_single_image_is_one_frame_upright(tmp_path, source):
    img = Image.fromarray(source[0])
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation 6: display rotated 90 degrees clockwise
    img.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    frames, _ = read_video(tmp_path / "photo.jpg")
    assert frames.shape == (1, 64, 48, 3)
    assert _close(frames[0], np.rot90(source[0], -1))
    assert read_image(tmp_path / "photo.jpg").shape == (64, 48, 3)


def test_limits_are_named(videos):
    with pytest.raises(ValueError, match=r"limit of 1\.5 s \(max_duration_s\)"):
        VideoStream(videos["h264.mp4"], limits=VideoLimits(max_duration_s=1.5))
    VideoStream(videos["h264.mp4"], end=1.0, limits=VideoLimits(max_duration_s=1.5))  # a short part is fine
    with pytest.raises(ValueError, match=r"64 x 48.*max_pixels=1000"):
        VideoStream(videos["h264.mp4"], limits=VideoLimits(max_pixels=1000))


def test_bad_requests(videos):
    with pytest.raises(ValueError, match="start=5 s is at or after the end"):
        VideoStream(videos["h264.mp4"], start=5)
    with pytest.raises(ValueError, match="end must be after start"):
        VideoStream(videos["h264.mp4"], start=1, end=0.5)
    with pytest.raises(ValueError, match="fps must be a positive"):
        VideoStream(videos["h264.mp4"], fps=0)


def test_missing_empty_and_garbage_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty \(0 bytes\)"):
        read_video(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("not a video at all\n" * 10)
    with pytest.raises(ValueError, match="not a readable video"):
        read_video(tmp_path / "text.mp4")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="not a readable image"):
        read_video(tmp_path / "bad.png")


def test_audio_only_file(tmp_path):
    import subprocess

    import imageio_ffmpeg

    path = tmp_path / "song.m4a"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.5"]
    subprocess.run([*cmd, "-c:a", "aac", str(path)], check=True, timeout=60)
    with pytest.raises(ValueError, match="only audio"):
        read_video(path)


@pytest.mark.parametrize("name", ["h264.mp4", "vp9.webm", "h264.mkv"])
def test_truncated_video(tmp_path, videos, name):
    data = videos[name].read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or damaged|not a readable video"):
        read_video(cut)
