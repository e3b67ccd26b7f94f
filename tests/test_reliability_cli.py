"""The CLI never ends in a traceback, and refuses unwritable outputs before the long work.

Every input here once ended in a Python traceback (or, worse, in work thrown away at the
end): each now prints one line saying what failed and what to do, and exits non-zero.
Outputs that are folders, read-only, or on a full disk are refused before DensePose, the
model or the sampler runs; a video that cannot be written at the very end keeps its frames.
"""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreampose.cli import extract_poses as extract_command
from dreampose.cli import main
from pose_extraction.pose_sequence import PoseSequence
from tests.helpers.disks import full_folder, read_only_folder
from tests.helpers.forged import npz_claiming, png_claiming
from tests.helpers.poses import SIZE, RedBoxExtractor, make_poses


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    Image.fromarray(np.full((SIZE, SIZE, 3), 200, np.uint8)).save(root / "photo.png")  # as the poses
    PoseSequence.from_uv(make_poses(3), fps=12.0).save(root / "poses.npz")
    PoseSequence.from_uv(make_poses(1), fps=12.0).save(root / "one.npz")
    png_claiming(root / "huge.png", 20000, 20000)
    png_claiming(root / "big.png", 10000, 10000)
    return root


@pytest.fixture
def fake_densepose(monkeypatch):
    """A DensePose that records being run: the checks must come before it."""
    extractor = RedBoxExtractor()
    monkeypatch.setattr(extract_command, "_load_extractor", lambda args: extractor)
    return extractor


@pytest.fixture
def model_loads(monkeypatch):
    """Records model loads (and refuses them): the output checks must come before."""
    import dreampose.runtime.loading

    loads = []

    def load_pipeline(model, *args, **kwargs):
        loads.append(model)
        raise RuntimeError("the model was loaded before the output was checked")

    monkeypatch.setattr(dreampose.runtime.loading, "load_pipeline", load_pipeline)
    return loads


def render_args(files, image: str = "photo.png") -> list[str]:
    return [
        "--model", "tiny", "--image", str(files / image), "--poses", str(files / "poses.npz"),
        "--steps", "2", "--height", str(SIZE), "--width", str(SIZE),
    ]  # fmt: skip


def finetune_args(files) -> list[str]:
    """``dreampose finetune`` on the tiny model, the photo and its one pose frame."""
    return [
        "finetune",
        "--model",
        "tiny",
        "--image",
        str(files / "photo.png"),
        "--poses",
        str(files / "one.npz"),
    ]


def one_error_line(capsys, command: str) -> str:
    """The command's only error line (the last line on stderr), checked to come without a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"dreampose {command}: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], err
    return errors[0]


# ----------------------------------------------------------------------------- inputs
def test_a_20000_pixel_square_png_for_extract_poses(files, tmp_path, capsys, fake_densepose):
    assert main(["extract-poses", str(files / "huge.png"), "-o", str(tmp_path / "p.npz")]) == 2
    line = one_error_line(capsys, "extract-poses")
    assert "huge.png" in line and "megapixels" in line
    assert fake_densepose.batches == []


def test_render_applies_the_photo_pixel_limit(files, tmp_path, capsys):
    assert main(["render", *render_args(files, "big.png"), "--output", str(tmp_path / "a.mp4")]) == 2
    line = one_error_line(capsys, "render")
    assert "big.png is 10000 x 10000 = 100 megapixels, over the limit of 64 megapixels" in line
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.parametrize(
    "option, value",
    [("--image-guidance", "inf"), ("--pose-guidance", "1e30"), ("--image-guidance", "nan")],
)
def test_absurd_guidance_is_refused_with_the_range(files, tmp_path, capsys, option, value):
    assert main(["render", *render_args(files), "--output", str(tmp_path / "g.mp4"), option, value]) == 2
    assert "must be a number from 0 to 30" in one_error_line(capsys, "render")


def test_a_seed_past_2_to_the_63(files, tmp_path, capsys):
    big = str(2**70)
    assert main(["preview", *render_args(files), "--output", str(tmp_path / "s.png"), "--seed", big]) == 2
    assert "from 0 to 2**63 - 1" in one_error_line(capsys, "preview")
    argv = finetune_args(files)
    small = ["--height", str(SIZE), "--width", str(SIZE)]
    assert main([*argv, *small, "--output", str(tmp_path / "ft"), "--seed", big]) == 2
    assert "from 0 to 2**63 - 1" in one_error_line(capsys, "finetune")


def test_a_pose_file_whose_header_claims_391_gib(files, tmp_path, capsys):
    poses = npz_claiming(tmp_path / "claims.npz", (100_000, 2, 1024, 1024))
    argv = render_args(files)
    argv[argv.index("--poses") + 1] = str(poses)
    assert main(["preview", *argv, "--output", str(tmp_path / "c.png")]) == 2
    assert "claims.npz (uv) claims (100000, 2, 1024, 1024) float16 values (391 GiB)" in one_error_line(
        capsys, "preview"
    )


def test_finetune_accepts_the_tiny_model(files, tmp_path, capsys):
    argv = finetune_args(files)
    argv += ["--output", str(tmp_path / "subject"), "--unet-steps", "1", "--vae-steps", "0"]
    assert main([*argv, "--height", str(SIZE), "--width", str(SIZE), "--lora-rank", "4"]) == 0
    assert (tmp_path / "subject").is_dir() and any((tmp_path / "subject").iterdir())


@pytest.mark.parametrize("how", ["option", "environment"])
def test_finetune_takes_the_densepose_weights_like_every_densepose_command(
    files, tmp_path, capsys, monkeypatch, how
):
    weights = tmp_path / "my_densepose.pkl"  # absent: the error must name it
    argv = [
        "finetune",
        "--model",
        "tiny",
        "--image",
        str(files / "photo.png"),
        "--output",
        str(tmp_path / "ft"),
    ]
    if how == "option":
        argv += ["--densepose-weights", str(weights)]
    else:
        monkeypatch.setenv("DREAMPOSE_DENSEPOSE_WEIGHTS", str(weights))
    assert main(argv) == 2
    assert f"DensePose weights not found: {weights}" in one_error_line(capsys, "finetune")


# ----------------------------------------------------------------------------- outputs
def _commands(files, out: Path) -> dict[str, list[str]]:
    """Each command writing to ``out`` (a file name inside the folder under test, or that folder)."""
    photo, poses = str(files / "photo.png"), str(files / "one.npz")
    return {
        "render": ["render", *render_args(files), "--output", str(out / "v.mp4")],
        "render --frames-dir": [
            "render", *render_args(files), "--output", str(files.parent / "ok.mp4"), "--frames-dir", str(out / "f"),
        ],
        "preview": ["preview", *render_args(files), "--output", str(out / "p.png")],
        "extract-poses": ["extract-poses", photo, "-o", str(out / "p.npz")],
        "tiny-model": ["tiny-model", "--output", str(out / "model")],
        "convert-densepose": ["convert-densepose", "--weights", str(files / "absent.pkl"), "--output", str(out / "w.safetensors")],
        "finetune": ["finetune", "--model", "tiny", "--image", photo, "--poses", poses, "--output", str(out / "ft")],
    }  # fmt: skip


COMMANDS = list(_commands(Path("."), Path(".")))


@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_output_is_refused_first(files, tmp_path, capsys, fake_densepose, model_loads, name):
    with read_only_folder(tmp_path / "ro") as folder:
        argv = _commands(files, folder)[name]
        assert main(argv) == 2
        line = one_error_line(capsys, argv[0])
    assert "cannot write to" in line and "choose another folder" in line
    assert fake_densepose.batches == []
    assert model_loads == []


@pytest.mark.parametrize("name", COMMANDS)
def test_full_disk_is_refused_first(files, tmp_path, capsys, monkeypatch, fake_densepose, model_loads, name):
    with full_folder(tmp_path / "full", monkeypatch) as folder:
        argv = _commands(files, folder)[name]
        assert main(argv) == 2
        line = one_error_line(capsys, argv[0])
    assert "No space left on device" in line or "MB are free" in line, line
    assert fake_densepose.batches == []
    assert model_loads == []


@pytest.mark.parametrize("name", ["render", "preview", "extract-poses", "convert-densepose"])
def test_an_output_file_that_is_a_folder_is_refused_first(
    files, tmp_path, capsys, fake_densepose, model_loads, name
):
    argv = _commands(files, tmp_path)[name]
    Path(argv[argv.index("--output" if "--output" in argv else "-o") + 1]).mkdir()
    assert main(argv) == 2
    assert "is a folder; give a file name" in one_error_line(capsys, argv[0])
    assert model_loads == []


@pytest.mark.parametrize("name", ["tiny-model", "finetune"])
def test_an_output_folder_that_is_a_file_is_refused_first(files, tmp_path, capsys, model_loads, name):
    argv = _commands(files, tmp_path)[name]
    Path(argv[argv.index("--output") + 1]).write_text("not a folder")
    assert main(argv) == 2
    assert "exists and is not a folder" in one_error_line(capsys, argv[0])
    assert model_loads == []


def test_when_the_video_write_fails_at_the_end_the_frames_are_kept(files, tmp_path, capsys, monkeypatch):
    import dreampose.media.video_writer

    def disk_full(frames, path, fps):
        list(frames)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(dreampose.media.video_writer, "write_mp4", disk_full)
    assert main(["render", *render_args(files), "--output", str(tmp_path / "out.mp4")]) == 1
    line = one_error_line(capsys, "render")
    rescued = tmp_path / "out_frames"
    assert (
        f"could not write out.mp4 (No space left on device); the 3 rendered frames are saved as PNGs in {rescued}"
        in line
    )
    assert sorted(p.name for p in rescued.iterdir()) == [f"frame_0000{i}.png" for i in range(3)]
    assert np.asarray(Image.open(rescued / "frame_00002.png")).shape == (SIZE, SIZE, 3)


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    import dreampose.cli.tiny_model

    def broken(args):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(dreampose.cli.tiny_model, "run", broken)  # add_parser picks it up
    argv = ["tiny-model", "--output", str(tmp_path / "m")]
    assert main(argv) == 1
    line = one_error_line(capsys, "tiny-model")
    assert "unexpected RuntimeError: first line second line (run again with `dreampose --debug" in line
    with pytest.raises(RuntimeError, match="first line"):
        main(["--debug", *argv])
