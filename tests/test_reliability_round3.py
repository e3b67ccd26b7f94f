"""Reliability, round three (issue 23, the CLI and library items): finished frames are kept
whatever the final write raises, bad render and fine-tune values are refused before any
model loads, the model fingerprint is the same in every process, and SIGTERM of a render
keeps its frames as Ctrl-C does."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from dreampose.cli import main
from tests.test_reliability_cli import files, finetune_args, model_loads, one_error_line, render_args  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("FFMPEG call failed with 183: av_interleaved_write_frame(): No space left"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["imageio-runtime-error", "enospc"],
)
def test_any_failure_of_the_final_write_keeps_the_frames(files, tmp_path, capsys, monkeypatch, error):  # noqa: F811
    import dreampose.media.video_writer

    def failing_write(frames, path, fps):
        list(frames)
        raise error

    monkeypatch.setattr(dreampose.media.video_writer, "write_mp4", failing_write)
    assert main(["render", *render_args(files), "--output", str(tmp_path / "out.mp4")]) == 1
    line = one_error_line(capsys, "render")
    rescued = tmp_path / "out_frames"
    assert (
        "could not write out.mp4" in line and f"the 3 rendered frames are saved as PNGs in {rescued}" in line
    )
    assert sorted(p.name for p in rescued.iterdir()) == [f"frame_0000{i}.png" for i in range(3)]


@pytest.mark.parametrize(
    ("fps", "words"),
    [
        ("-5", "fps must be a number in (0, 1000]; got -5"),
        ("nan", "fps must be a number in (0, 1000]; got nan"),
        ("inf", "fps must be a number in (0, 1000]; got inf"),
        ("1e9", "fps must be a number in (0, 1000]; got 1e+09"),
        ("0", "fps 0 is not a frame rate; omit --fps to use the pose file's rate"),
    ],
)
def test_a_bad_fps_is_refused_before_the_model_loads(files, tmp_path, capsys, model_loads, fps, words):  # noqa: F811
    argv = ["render", *render_args(files), "--output", str(tmp_path / "out.mp4"), "--fps", fps]
    assert main(argv) == 2
    assert words in one_error_line(capsys, "render")
    assert model_loads == []


def test_finetune_with_no_steps_at_all_is_refused(files, tmp_path, capsys, model_loads):  # noqa: F811
    argv = finetune_args(files)
    assert main([*argv, "--output", str(tmp_path / "m"), "--unet-steps", "0", "--vae-steps", "0"]) == 2
    assert "nothing would be fine-tuned" in one_error_line(capsys, "finetune")
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


FINGERPRINT = (
    "from dreampose.model.tiny import tiny_pipeline\n"
    "from dreampose.training.common import model_fingerprint\n"
    "pipe = tiny_pipeline()\n"
    "pipe.unet.register_to_config(_use_default_values=sorted(vars(type(pipe.unet)), key=hash)[:40])\n"
    "print(model_fingerprint(pipe))\n"
)


def test_the_model_fingerprint_is_the_same_under_any_hash_seed():
    """diffusers builds ``_use_default_values`` from a set: its order follows PYTHONHASHSEED
    (here made to, as diffusers does when a config leaves values at their defaults)."""
    prints = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", FINGERPRINT], env=env, capture_output=True, text=True, check=True
        )
        prints.add(out.stdout.strip())
    assert len(prints) == 1, prints


def test_sigterm_of_a_cli_render_keeps_the_finished_frames(files, tmp_path):  # noqa: F811
    output = tmp_path / "out.mp4"
    frames_dir = tmp_path / "frames"
    argv = [sys.executable, "-m", "dreampose", "render", *render_args(files), "--output", str(output)]
    argv += ["--frames-dir", str(frames_dir), "--steps", "30"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # an event, not a sleep: the first finished frame on disk (frames are renamed into
        # place when complete, so the hidden ".frame_*.tmp.png" being written does not count)
        while not (frames_dir.exists() and any(frames_dir.glob("frame_*.png"))):
            if proc.poll() is not None:
                pytest.fail(f"the render ended before its first frame: {proc.stdout.read()}")
            time.sleep(0.05)  # a poll interval while waiting for the event, not a deadline
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out
    assert "interrupted" in out and "Traceback" not in out, out
    partial = tmp_path / "out.partial.mp4"
    assert partial.exists() and partial.stat().st_size > 0, out
    kept = sorted(frames_dir.glob("frame_*.png"))
    assert kept and Image.open(kept[0]).size[0] > 0, out


def _npz_without_labels(inputs: Path, path: Path) -> Path:
    """The fixture's pose file with its ``labels.npy`` member left out."""
    import zipfile

    with zipfile.ZipFile(inputs / "poses.npz") as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if info.filename != "labels.npy":
                dst.writestr(info, src.read(info))
    return path


def test_an_npz_without_labels_is_named_as_a_pose_file_missing_labels(files, tmp_path, capsys, model_loads):  # noqa: F811
    broken = _npz_without_labels(files, tmp_path / "poses.npz")
    argv = ["render", *render_args(files), "--output", str(tmp_path / "out.mp4"), "--poses", str(broken)]
    assert main(argv) == 2
    line = one_error_line(capsys, "render")
    assert "not a DreamPose pose file: missing labels" in line and "frame_N_densepose" not in line, line
    assert model_loads == []


def test_the_app_reads_an_npz_without_labels_as_a_pose_file(files, tmp_path):  # noqa: F811
    from dreampose.app.uploads import driving_kind

    assert driving_kind(_npz_without_labels(files, tmp_path / "poses.npz")) == "npz"
