"""The `dreampose` command line on the tiny model: files in, files out, clear errors."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from dreampose.cli import main
from pose_extraction.pose_sequence import PoseSequence
from tests.helpers.poses import SIZE, make_poses


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    assert main(["tiny-model", "--output", str(root / "model")]) == 0
    Image.fromarray(np.full((80, 60, 3), 200, np.uint8)).save(root / "photo.png")
    PoseSequence.from_uv(make_poses(5), fps=12.0).save(root / "poses.npz")
    return root


def common(files):
    return [
        "--model", str(files / "model"), "--image", str(files / "photo.png"), "--poses", str(files / "poses.npz"),
        "--steps", "2", "--height", str(SIZE), "--width", str(SIZE),
    ]  # fmt: skip


def test_render_writes_one_video_frame_per_pose_frame(files):
    out = files / "out.mp4"
    assert main(["render", *common(files), "--output", str(out), "--batch-frames", "2"]) == 0
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == 5 and seconds == pytest.approx(5 / 12, abs=0.05)
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["size"] == (SIZE, SIZE) and meta["fps"] == pytest.approx(12.0)
    assert meta["codec"] == "h264" and "yuv420p" in meta["pix_fmt"]


def test_render_frame_range_and_fps(files):
    out = files / "part.mp4"
    assert main(["render", *common(files), "--output", str(out), "--frames", "1:4", "--fps", "24"]) == 0
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 3


def test_preview_writes_a_png(files):
    out = files / "frame.png"
    assert main(["preview", *common(files), "--frame", "3", "--output", str(out)]) == 0
    assert Image.open(out).size == (SIZE, SIZE)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--frame", "9"], "--frame 9 does not exist: the poses have frames 0 to 4"),
        (["--image-guidance", "-2"], "image_guidance_scale must be a number from 0 to 30"),
        (["--pose-guidance", "inf"], "pose_guidance_scale must be a number from 0 to 30"),
        (["--height", "100"], "multiple of 64"),
        (["--seed", str(2**70)], "the seed must be a whole number from 0 to 2**63 - 1"),
        (["--turbo", "0"], "turbo must be a whole number of at least 1"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(files, capsys, extra, message):
    assert main(["preview", *common(files), "--output", str(files / "x.png"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "Loading pipeline" not in err, "bad settings are refused before the model loads"


def test_turbo_1_previews_exactly_the_plain_frame(files):
    plain, turbo = files / "plain.png", files / "turbo1.png"
    assert main(["preview", *common(files), "--frame", "2", "--output", str(plain)]) == 0
    assert main(["preview", *common(files), "--frame", "2", "--output", str(turbo), "--turbo", "1"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(plain)), np.asarray(Image.open(turbo)))


def test_bad_frame_range(files, capsys):
    assert main(["render", *common(files), "--output", str(files / "y.mp4"), "--frames", "3:99"]) == 2
    assert "outside the pose sequence" in capsys.readouterr().err


def test_not_a_model_folder(files, capsys, tmp_path):
    args = common(files)
    args[1] = str(tmp_path)
    assert main(["preview", *args, "--output", str(files / "z.png")]) == 2
    assert "not a DreamPose model folder" in capsys.readouterr().err


def test_python_dash_m_and_help():
    out = subprocess.run([sys.executable, "-m", "dreampose", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("render", "preview", "convert", "tiny-model"):
        assert command in out.stdout


def subject_pose_file(path, body: bool = True):
    """A subject pose whose body fills rows 20..59, columns 24..39 (or no body at all)."""
    uv = np.zeros((1, 2, SIZE, SIZE), np.float32)
    uv[0, :, 20:60, 24:40] = 0.5
    seq = PoseSequence.from_uv(uv)
    if not body:
        seq.labels[:] = 0
    return seq.save(path)


def test_subject_pose_aligns_the_driving_poses_to_the_subject(files, tmp_path):
    """--subject-pose: the first driving body takes the subject's height, centre and feet line."""
    from dreampose.cli import build_parser
    from dreampose.cli.options import render_inputs

    subject = subject_pose_file(tmp_path / "subject.npz")
    argv = ["preview", *common(files), "--output", str(tmp_path / "a.png"), "--subject-pose", str(subject)]
    _, aligned = render_inputs(build_parser().parse_args(argv))
    rows, cols = np.nonzero(aligned.labels[0])
    assert (rows.min(), rows.max() + 1) == pytest.approx((20, 60), abs=1)  # same height and ground line
    assert (cols.min() + cols.max() + 1) / 2 == pytest.approx(32, abs=1)  # same horizontal centre
    assert main(argv) == 0


def test_subject_pose_without_a_body_is_a_clear_error(files, tmp_path, capsys):
    subject = subject_pose_file(tmp_path / "empty.npz", body=False)
    argv = ["preview", *common(files), "--output", str(tmp_path / "c.png"), "--subject-pose", str(subject)]
    assert main(argv) == 2
    assert "empty.npz: no frame of this pose sequence shows a body" in capsys.readouterr().err


def test_guidance_grid_is_one_labelled_png_of_every_pair(files):
    from dreampose.rendering.grid import grid_mosaic

    out = files / "grid.png"
    argv = ["preview", *common(files), "--frame", "2", "--guidance-grid", "0,8:1,3,5", "--output", str(out)]
    assert main(argv) == 0
    grid = np.asarray(Image.open(out))
    blank = np.zeros((SIZE, SIZE, 3), np.uint8)
    _, layout = grid_mosaic([[blank] * 3] * 2, [0, 8], [1, 3, 5])  # rows sI, columns sP
    assert grid.shape == (*layout.size, 3)
    single = files / "single.png"
    argv = ["preview", *common(files), "--frame", "2", "--image-guidance", "8", "--pose-guidance", "5"]
    assert main([*argv, "--output", str(single)]) == 0
    y, x = layout.origin(1, 2)  # sI 8, sP 5
    np.testing.assert_array_equal(grid[y : y + SIZE, x : x + SIZE], np.asarray(Image.open(single)))


def test_grid_values_are_checked(files, capsys):
    argv = ["preview", *common(files), "--guidance-grid", "4,8", "--output", str(files / "g.png")]
    assert main(argv) == 2
    assert "SI_VALUES:SP_VALUES" in capsys.readouterr().err


def test_official_pose_zip_renders_like_the_pose_file(files, tmp_path):
    """The official frame_N_densepose.npy layout, zipped, is a valid --poses input."""
    from pose_extraction.official import export_official

    seq = PoseSequence.load(files / "poses.npz")
    folder = export_official(seq, tmp_path / "official")
    with zipfile.ZipFile(tmp_path / "poses.zip", "w") as z:
        for path in sorted(folder.iterdir()):
            z.write(path, f"poses/{path.name}")
    args = common(files)
    for name, poses in (("npz", files / "poses.npz"), ("zip", tmp_path / "poses.zip")):
        args[args.index("--poses") + 1] = str(poses)
        assert main(["preview", *args, "--frame", "1", "--output", str(tmp_path / f"{name}.png")]) == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "npz.png")), np.asarray(Image.open(tmp_path / "zip.png"))
    )
