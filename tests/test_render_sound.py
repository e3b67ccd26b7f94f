"""The rendered video keeps the driving video's sound, cut to the rendered frames and in sync
with them: `dreampose render --audio-from VIDEO` and ``render_video(sound=...)``.

The driving video lasts 2 s at 10 fps and its soundtrack is silent but for a 440 Hz tone from
0.5 s to 0.7 s, so where the tone starts in the output says which part of the sound it kept.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dreampose.cli import main
from dreampose.media.video_reader import probe_video
from pose_extraction.pose_sequence import PoseSequence
from tests.helpers.app import one_torch_thread, red_dancer_video, sound_onset
from tests.helpers.poses import make_poses


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sound")
    Image.fromarray(np.full((80, 60, 3), 200, np.uint8)).save(root / "photo.png")
    # Poses from 0.2 s of the driving video on, at its 10 fps (as `extract-poses --start 0.2` makes).
    PoseSequence.from_uv(np.concatenate([make_poses(6)] * 3), fps=10.0).save(root / "poses.npz")
    red_dancer_video(root / "song.mp4", frames=20, sound=True)
    red_dancer_video(root / "silent.mp4", frames=20)
    with one_torch_thread():
        yield root


def render(files, *extra: str) -> int:
    return main([
        "render", "--model", "tiny", "--image", str(files / "photo.png"), "--poses", str(files / "poses.npz"),
        "--steps", "1", "--scheduler", "ddim", "--height", "64", "--width", "64", *extra,
    ])  # fmt: skip


def test_the_sound_of_the_rendered_frames_only(files, capsys):
    out = files / "out.mp4"
    # Pose frames 1..6 show 0.3 s .. 0.8 s of the video: the tone starts 0.2 s into the output.
    code = render(files, "--output", str(out), "--frames", "1:7", "--audio-from", str(files / "song.mp4"),
                  "--audio-start", "0.2")  # fmt: skip
    assert code == 0 and "(6 frames at 10 fps, with sound)" in capsys.readouterr().out
    seconds, onset = sound_onset(out)
    assert abs(seconds - 0.6) < 0.05 and abs(onset - 0.2) < 0.03, (seconds, onset)


def test_no_audio_and_sounds_that_cannot_follow(files, capsys):
    song = ["--audio-from", str(files / "song.mp4"), "--audio-start", "0.2"]
    assert render(files, "--output", str(files / "quiet.mp4"), "--frames", "0:3", *song, "--no-audio") == 0
    assert not probe_video(files / "quiet.mp4").has_audio
    # At another fps than the poses' the sound could not stay in sync: the video stays silent, and says why.
    assert render(files, "--output", str(files / "fast.mp4"), "--frames", "0:3", "--fps", "24", *song) == 0
    assert "no sound: the video plays at 24 fps, not at the poses' 10 fps" in capsys.readouterr().out
    assert not probe_video(files / "fast.mp4").has_audio
    # A driving video without sound is refused before anything is rendered.
    assert render(files, "--output", str(files / "x.mp4"), "--audio-from", str(files / "silent.mp4")) == 2
    assert "that video has no sound" in capsys.readouterr().err and not (files / "x.mp4").exists()


def test_the_pose_file_remembers_its_video_so_the_sound_comes_by_default(files, monkeypatch, capsys):
    """extract-poses records the driving video and its start; render then keeps its sound with
    no flag (and --no-audio drops it), as a person following the README would expect."""
    import dreampose.cli.extract_poses as command
    from tests.helpers.poses import RedBoxExtractor

    monkeypatch.setattr(command, "_load_extractor", lambda args: RedBoxExtractor())
    poses = files / "from_song.npz"
    assert main(["extract-poses", str(files / "song.mp4"), "--start", "0.2", "--output", str(poses)]) == 0
    recorded = PoseSequence.load(poses)
    assert recorded.source_video == str((files / "song.mp4").resolve()) and recorded.source_start == 0.2
    out = files / "default_sound.mp4"
    argv = [
        "render",
        "--model",
        "tiny",
        "--image",
        str(files / "photo.png"),
        "--poses",
        str(poses),
        "--steps",
        "1",
    ]
    argv += ["--height", "64", "--width", "64", "--frames", "1:7", "--output", str(out)]
    assert main(argv) == 0
    seconds, onset = sound_onset(out)  # frames 1..6 show 0.3 s .. 0.8 s: the tone starts 0.2 s in
    assert abs(seconds - 0.6) < 0.05 and abs(onset - 0.2) < 0.03, (seconds, onset)
    assert main([*argv[:-1], str(files / "silent_by_choice.mp4"), "--no-audio"]) == 0
    assert not probe_video(files / "silent_by_choice.mp4").has_audio
