"""Inputs that once became silent garbage or cost far more than they were worth.

16-bit photos, pose files that claim gigabytes, zips of zeros, pose sequences without a
body, variable-frame-rate videos, huge photos, and the words errors use for file names.
"""

from __future__ import annotations

import io
import re
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from dreampose.app.messages import UserError, sentence
from dreampose.app.uploads import AppLimits, check_upload_size, driving_kind, read_photo
from dreampose.media.images import read_image
from dreampose.media.npy import ArrayFileError, Budget, read_array
from dreampose.media.video_reader import VideoStream
from dreampose.rendering.poses import load_driving_poses
from pose_extraction.official import export_official, import_official
from pose_extraction.pose_sequence import PoseFileError, PoseSequence
from tests.helpers.forged import npy_claiming, npz_claiming, png_claiming
from tests.helpers.poses import H264, SIZE, frame_index, make_poses, marked_frames


def peak_bytes(action) -> int:
    """The most memory Python and numpy held at once while ``action`` ran (it may raise)."""
    tracemalloc.start()
    try:
        action()
    except (ValueError, UserError):
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# ----------------------------------------------------------------------------- 16-bit photos
@pytest.fixture(scope="module")
def photo16(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """A 16-bit greyscale PNG (values 257 * k), the same picture in 8 bits, and its RGB pixels."""
    rng = np.random.default_rng(0)
    grey = np.full((SIZE, SIZE), 150, np.uint8)
    grey[10:60, 20:44] = rng.integers(0, 120, size=(50, 24), dtype=np.uint8)  # a dark figure
    folder = tmp_path_factory.mktemp("photo16")
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "grey16.png")
    Image.fromarray(grey).save(folder / "grey8.png")
    assert Image.open(folder / "grey16.png").mode.startswith("I")  # really stored with 16 bits
    return folder / "grey16.png", folder / "grey8.png", np.repeat(grey[:, :, None], 3, axis=2)


def test_a_16_bit_photo_is_scaled_not_clipped_to_white(photo16):
    path16, _, expected = photo16
    assert np.array_equal(read_image(path16), expected)
    assert np.array_equal(read_photo(path16, AppLimits()), expected)  # the app's upload check
    (frame,) = list(VideoStream(path16))  # the pose extraction path
    assert np.array_equal(frame, expected)


def test_a_16_bit_photo_renders_and_finetunes_like_its_8_bit_copy(photo16, tiny_pipe, one_thread):
    from dreampose.training.finetune import prepare_subject

    path16, path8, _ = photo16
    poses = PoseSequence.from_uv(make_poses(1))
    frames = [
        tiny_pipe(
            str(p), poses, num_inference_steps=2, height=SIZE, width=SIZE, output_type="np",
            generator=torch.Generator().manual_seed(0),
        ).frames
        for p in (path16, path8)
    ]  # fmt: skip
    assert np.array_equal(frames[0], frames[1])
    subjects = [prepare_subject([str(p)], poses, SIZE, SIZE).images for p in (path16, path8)]
    assert np.array_equal(subjects[0], subjects[1])


# ----------------------------------------------------------------------------- photo pixel limits
def test_huge_photos_are_refused_from_the_header_everywhere(tmp_path):
    huge = png_claiming(tmp_path / "big.png", 10000, 10000)
    for read in (read_image, VideoStream, lambda p: read_photo(p, AppLimits())):
        with pytest.raises(ValueError, match="big.png is 10000 x 10000 = 100 megapixels"):
            read(huge)


# ----------------------------------------------------------------------------- pose files
def test_a_pose_file_claiming_391_gib_is_refused_without_allocating(tmp_path):
    forged = npz_claiming(tmp_path / "claims.npz", (100_000, 2, 1024, 1024))
    assert forged.stat().st_size < 2000
    with pytest.raises(
        PoseFileError,
        match=r"claims\.npz \(uv\) claims .*\(391 GiB\) but holds only 64 bytes; the file is damaged or forged",
    ):
        PoseSequence.load(forged)
    assert peak_bytes(lambda: PoseSequence.load(forged)) < 2e6
    with pytest.raises(ValueError, match="391 GiB"):
        load_driving_poses(forged)


def test_official_frames_claiming_too_much_are_refused(tmp_path):
    archive = tmp_path / "official.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("frame_0_densepose.npy", npy_claiming((2, 50_000, 50_000), "<f4"))
    with pytest.raises(ArrayFileError, match=r"frame_0_densepose.npy claims .*\(18.6 GiB\)"):
        import_official(archive)


def test_pickled_arrays_are_refused_before_loading(tmp_path):
    data = io.BytesIO()
    np.save(data, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ArrayFileError, match="Python objects"):
        read_array(io.BytesIO(data.getvalue()), "x.npy", len(data.getvalue()), Budget(10**6, "x"))


def _zeros_zip(path: Path, frames: int, height: int = 1080, width: int = 1920) -> Path:
    """Official poses of zeros: each 16.6 MB frame deflates to 16 KB."""
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, height, width), np.float32))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(frames):
            z.writestr(f"poses/frame_{i}_densepose.npy", buffer.getvalue())
    return path


def test_a_small_zip_that_unpacks_to_far_more_is_refused_from_its_directory(tmp_path):
    archive = _zeros_zip(tmp_path / "zeros.zip", 12)  # 200 MB of zeros in 200 KB
    limits = AppLimits(max_pose_frames=10)  # 10 frames of up to 8 MiB: 80 MiB

    def load():
        load_driving_poses(archive, max_frames=limits.max_pose_frames, max_bytes=limits.max_pose_bytes)

    with pytest.raises(
        ValueError, match=r"zeros.zip: 10 pose frames would unpack to 0.15 GiB, over the limit of 0.08 GiB"
    ):
        load()
    peak = peak_bytes(load)
    assert peak < 5e6, f"{peak / 1e6:.0f} MB were allocated before the refusal"


def test_only_the_frames_used_are_unpacked(tmp_path):
    seq = PoseSequence.from_uv(make_poses(6), fps=10.0)
    seq.save(tmp_path / "poses.npz")
    first = PoseSequence.load(tmp_path / "poses.npz", max_frames=2)
    assert len(first) == 2 and first.extra["frames_in_file"] == 6
    assert np.array_equal(first.uv, seq.uv[:2]) and np.array_equal(first.labels, seq.labels[:2])
    export_official(seq, tmp_path / "official")
    imported = import_official(tmp_path / "official", fps=10.0, max_frames=3)
    assert len(imported) == 3 and imported.extra["frames_in_file"] == 6
    # Frames past max_frames are never read: the same budget that refuses all 6 accepts 3.
    frame_bytes = (tmp_path / "official" / "frame_0_densepose.npy").stat().st_size
    with pytest.raises(ValueError, match="6 pose frames would unpack"):
        import_official(tmp_path / "official", max_bytes=4 * frame_bytes)
    assert len(import_official(tmp_path / "official", max_frames=3, max_bytes=4 * frame_bytes)) == 3


def test_a_pose_file_over_the_byte_budget_is_refused_before_unpacking(tmp_path):
    path = PoseSequence.from_uv(make_poses(6)).save(tmp_path / "poses.npz")
    with pytest.raises(PoseFileError, match=r"poses.npz would unpack to more than the 10 kB allowed"):
        PoseSequence.load(path, max_bytes=10_000)


def test_a_pose_sequence_without_any_body_is_refused(tmp_path):
    empty = PoseSequence.from_uv(np.zeros((4, 2, 32, 32), np.float32))
    assert not empty.missing.any()  # every frame claims a person was found ...
    empty.save(tmp_path / "nobody.npz")  # ... but none shows one
    with pytest.raises(PoseFileError, match="nobody.npz: no frame of this pose sequence shows a body"):
        PoseSequence.load(tmp_path / "nobody.npz")
    with pytest.raises(ValueError, match="zeros.zip: no frame of this pose sequence shows a body"):
        import_official(_zeros_zip(tmp_path / "zeros.zip", 3, 32, 32))


def test_a_pose_file_without_a_body_is_refused_before_its_uv_maps_are_unpacked(tmp_path):
    n, size = 40, 256
    empty = PoseSequence(
        uv=np.zeros((n, 2, size, size), np.float16), labels=np.zeros((n, size, size), np.uint8),
        boxes=np.zeros((n, 4), np.float32), scores=np.ones(n, np.float32), missing=np.zeros(n, bool),
    )  # fmt: skip
    path = empty.save(tmp_path / "zeros.npz")
    peak = peak_bytes(lambda: PoseSequence.load(path))
    assert peak < empty.uv.nbytes, (
        f"{peak / 1e6:.1f} MB held: the {empty.uv.nbytes / 1e6:.1f} MB of UV were read"
    )


# ----------------------------------------------------------------------------- videos
def test_a_variable_frame_rate_video_is_read_by_presentation_time(tmp_path):
    """Frames 0-4 every 0.1 s, a 0.4 s pause, frames 5-9 every 0.1 s. Read at the average
    rate, each output instant must show the frame on screen at that instant."""
    video = tmp_path / "vfr.mp4"
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-y"]
    cmd = [*ffmpeg, "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48", "-r", "10"]
    cmd += ["-i", "-", "-vf", "setpts='N+4*gte(N\\,5)'", "-fps_mode", "passthrough", *H264, str(video)]
    subprocess.run(cmd, input=marked_frames(10).tobytes(), check=True, timeout=60)
    log = subprocess.run(
        [*ffmpeg, "-i", str(video), "-vf", "showinfo", "-f", "null", "-"], capture_output=True, text=True
    )
    shown_at = [float(t) for t in re.findall(r"pts_time:([\d.]+)", log.stderr)]  # ffmpeg's own word
    assert shown_at == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.9, 1.0, 1.1, 1.2, 1.3])

    stream = VideoStream(video)
    frames = [frame_index(f) for f in stream]
    assert 7 < stream.fps < 7.5  # the average rate: 10 frames in 1.4 s
    instants = [k / stream.fps for k in range(len(frames))]
    assert min(abs(t - s) for t in instants for s in shown_at[1:]) > 0.003, "an instant is too close to call"
    expected = [max(i for i, t in enumerate(shown_at) if t <= instant) for instant in instants]
    assert frames == expected  # each instant shows the frame on screen then ...
    assert frames.count(4) >= 3 and frames != list(range(10))  # ... not 0..9 played at an even pace


# ----------------------------------------------------------------------------- words
@pytest.mark.parametrize(
    "message, shown",
    [
        ("text.mp4 is not a readable video", "text.mp4 is not a readable video."),
        ("poses_nan.npz: uv holds NaN or infinite values", "poses_nan.npz: uv holds NaN or infinite values."),
        ("could not decode frame 3", "Could not decode frame 3."),
        ("--frame 9 does not exist", "--frame 9 does not exist."),
    ],
)
def test_error_messages_show_file_names_as_given(message, shown):
    assert sentence(message) == shown


def test_an_empty_upload_is_named_once(tmp_path):
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(UserError) as e:
        check_upload_size(tmp_path / "empty.npz", AppLimits(), "driving video or pose file")
    assert str(e.value) == "The driving video or pose file is an empty file; please upload it again."


def test_uploads_are_told_apart_from_the_zip_directory_only(tmp_path):
    assert driving_kind(npz_claiming(tmp_path / "a.npz", (10**9, 2, 64, 64))) == "npz"
    assert driving_kind(_zeros_zip(tmp_path / "b.zip", 1, 8, 8)) == "official_zip"
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(UserError, match="holds neither a DreamPose pose file"):
        driving_kind(tmp_path / "c.zip")


# ----------------------------------------------------------------------------- through the app
@pytest.mark.slow
def test_the_app_refuses_forged_pose_files_and_absurd_settings(tmp_path):
    from gradio_client import Client, handle_file

    from tests.helpers.app import PHOTO, VIDEO, launch_tiny_app

    demo, service = launch_tiny_app(tmp_path / "sessions", max_pose_frames=6)
    try:
        client = Client(demo.local_url, verbose=False)

        def extract(driving: Path):
            return client.predict(
                photo=handle_file(PHOTO),
                driving_video=handle_file(driving),
                max_frames=6,
                api_name="/extract_poses",
            )

        PoseSequence.from_uv(np.zeros((3, 2, 32, 32), np.float32)).save(tmp_path / "nobody.npz")
        forged = {
            npz_claiming(
                tmp_path / "claims.npz", (100_000, 2, 1024, 1024)
            ): r"claims.npz \(uv\) claims .*391 GiB",
            tmp_path / "nobody.npz": "nobody.npz: no frame of this pose sequence shows a body",
            _zeros_zip(
                tmp_path / "zeros.zip", 3, 32, 32
            ): "zeros.zip: no frame of this pose sequence shows a body",
        }
        for upload, message in forged.items():
            with pytest.raises(Exception, match=message):
                extract(upload)
        extract(Path(VIDEO))
        tune = {"s_i": 8, "s_p": 3, "steps": 2, "sampler": "dpm++", "seed": 0}
        for name, value in (("s_i", 1e30), ("s_p", 1e30), ("seed", 2**70)):
            with pytest.raises(Exception, match=rf"\({name}\) must be a (whole )?number from 0 to"):
                client.predict(frame=0, fast=False, **{**tune, name: value}, api_name="/preview")
        image, _ = client.predict(frame=0, fast=False, **tune, api_name="/preview")
        assert Path(image).is_file()
    finally:
        demo.close()
        service.close()


def test_settings_past_the_sliders_are_refused_by_the_service_too():
    """A caller of the service (not the page) meets the same checks as the CLI."""
    from dreampose.rendering.settings import RenderSettings

    for kwargs in ({"image_guidance_scale": 1e30}, {"pose_guidance_scale": float("inf")}, {"seed": 2**70}):
        with pytest.raises(ValueError, match="must be"):
            RenderSettings(**kwargs)
