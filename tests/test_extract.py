"""Video (or photo) to pose sequence with a fake DensePose; the CLI command; previews."""

from __future__ import annotations

import numpy as np
import pytest

from dreampose.cli import main
from pose_extraction.extract import extract_image_pose, extract_poses
from pose_extraction.pose_sequence import PoseSequence
from pose_extraction.visualize import alignment_frames, part_palette, render_frame, write_preview
from tests.helpers.poses import H264, RedBoxExtractor, encode, marked_frames, person

N, FPS = 24, 12.0
# The red "person" of marked_frames(person=True) on 48 x 64 frames: rows 12..44, columns 32..44.
RED_BOX = [32, 12, 44, 44]
GONE = [5, 6, 7]  # frames where the person is hidden


@pytest.fixture(scope="module")
def dance(tmp_path_factory):
    frames = marked_frames(N, person=True)
    frames[GONE, 12:44, 32:44] = 128  # nobody there
    return encode(frames, tmp_path_factory.mktemp("dance") / "dance.mp4", FPS, H264)


def test_extract_tracks_fills_gaps_and_reports_progress(dance):
    extractor = RedBoxExtractor()
    calls = []
    seq = extract_poses(dance, extractor, batch_size=5, progress=lambda d, t: calls.append((d, t)))
    assert len(seq) == N and seq.fps == pytest.approx(FPS)
    assert (seq.height, seq.width) == (48, 64) and seq.source_size == (48, 64)
    assert extractor.batches == [5, 5, 5, 5, 4]
    assert seq.missing.nonzero()[0].tolist() == GONE
    assert seq.boxes[0].tolist() == pytest.approx(RED_BOX, abs=1)
    # 5 <- 4; 6 is 2 from 4 and from 8: the earlier wins; 7 <- 8
    for filled, source in [(5, 4), (6, 4), (7, 8)]:
        np.testing.assert_array_equal(seq.uv[filled], seq.uv[source])
    assert float(seq.uv[0, 0, 20, 38]) == 0.75 and float(seq.uv[0, 0, 2, 2]) == 0.0  # pasted at the box
    assert calls[-1] == (N, N)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_rotated_video_puts_the_person_where_a_player_shows_them(tmp_path):
    frames = marked_frames(6, person=True)
    path = encode(frames, tmp_path / "phone.mp4", FPS, H264, input_args=("-display_rotation", "90"))
    seq = extract_poses(path, RedBoxExtractor())
    assert (seq.height, seq.width) == (64, 48)
    # 90 degrees counter-clockwise: source (x, y) -> (y, 64 - x); the box (32, 12, 44, 44) becomes:
    assert seq.boxes[0].tolist() == pytest.approx([12, 64 - 44, 44, 64 - 32], abs=1)


def test_fps_window_and_storage_size(dance):
    seq = extract_poses(dance, RedBoxExtractor(), fps=6, start=1.0)
    assert len(seq) == 6 and seq.fps == 6
    small = extract_poses(dance, RedBoxExtractor(), max_frames=3, max_pose_side=32)
    assert len(small) == 3 and (small.height, small.width) == (24, 32)
    assert small.source_size == (48, 64)
    assert small.boxes[0].tolist() == pytest.approx([v / 2 for v in RED_BOX], abs=1)


def test_video_without_anybody_is_an_error(tmp_path):
    path = encode(marked_frames(4), tmp_path / "empty_room.mp4", FPS, H264)
    with pytest.raises(ValueError, match="no person was detected in any of the 4 frames of empty_room.mp4"):
        extract_poses(path, RedBoxExtractor())


def test_photo_input_and_subject_pose(tmp_path):
    from PIL import Image

    frame = marked_frames(1, person=True)[0]
    Image.fromarray(frame).save(tmp_path / "me.png")
    seq = extract_poses(tmp_path / "me.png", RedBoxExtractor())
    assert len(seq) == 1 and seq.boxes[0].tolist() == RED_BOX

    two = lambda images: [[person((0, 0, 4, 4), 0.5), person((10, 10, 8, 8), 0.9, label=3)] for _ in images]  # noqa: E731
    subject = extract_image_pose(frame, two)
    assert subject.boxes[0].tolist() == [10, 10, 18, 18]  # the most confident person
    assert int(subject.labels[0, 12, 12]) == 3
    with pytest.raises(ValueError, match="no person found in the photo"):
        extract_image_pose(Image.fromarray(frame), lambda images: [[] for _ in images])


def test_cli_writes_pose_file_preview_and_official_export(dance, tmp_path, monkeypatch, capsys):
    import dreampose.cli.extract_poses as command

    monkeypatch.setattr(command, "_load_extractor", lambda args: RedBoxExtractor())
    out = tmp_path / "out" / "poses.npz"
    argv = ["extract-poses", str(dance), "--output", str(out), "--max-frames", "10"]
    argv += ["--preview", str(tmp_path / "preview.mp4"), "--export-official", str(tmp_path / "official")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "no person found in 3 of 10 frames" in printed and "5-7" in printed
    seq = PoseSequence.load(out)
    assert len(seq) == 10 and seq.missing.nonzero()[0].tolist() == GONE
    assert len(list((tmp_path / "official").glob("frame_*_densepose.npy"))) == 10
    import imageio_ffmpeg

    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "preview.mp4"))[0] == 10
    assert sorted(p.name for p in out.parent.iterdir()) == ["poses.npz"]  # no temporary left


def test_cli_user_errors(dance, tmp_path, monkeypatch, capsys):
    import dreampose.cli.extract_poses as command

    monkeypatch.setattr(command, "_load_extractor", lambda args: RedBoxExtractor())
    assert main(["extract-poses", str(dance), "--output", str(tmp_path / "poses.txt")]) == 2
    assert "must end in .npz" in capsys.readouterr().err
    assert main(["extract-poses", str(tmp_path / "nope.mp4"), "--output", str(tmp_path / "p.npz")]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["extract-poses", str(dance), "-o", str(tmp_path / "p.npz"), "--max-duration", "1"]) == 2
    assert "max_duration_s" in capsys.readouterr().err
    assert not (tmp_path / "p.npz").exists()


# ---------------------------------------------------------------------------- previews
def test_preview_panels_and_colours(tmp_path):
    uv = np.zeros((2, 2, 80, 64), dtype=np.float32)
    uv[:, 0, 40:75, 10:50] = 1.0
    labels = np.zeros((2, 80, 64), dtype=np.uint8)
    labels[:, 40:75, 10:30], labels[:, 40:75, 30:50] = 1, 2
    seq = PoseSequence.from_uv(uv, fps=5, labels=labels)
    frame = render_frame(seq, 0)
    assert frame.shape == (80, 64 + 4 + 64, 3)
    palette = part_palette()
    assert palette.shape == (25, 3) and palette[0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in palette}) == 25  # every part its own colour
    assert frame[78, 60].tolist() == [0, 0, 0]  # background stays black
    assert frame[60, 15].tolist() == palette[1].tolist()  # part 1, left panel
    assert frame[60, 40].tolist() == palette[2].tolist()  # part 2
    assert frame[60, 68 + 15, 0] == 255  # UV panel: U = 1 -> full red
    before_after = next(alignment_frames(seq, seq, np.array([10, 40, 50, 75])))
    assert before_after.shape == (80, 132, 3)
    assert before_after[40, 30].tolist() == [255, 255, 255]  # subject box outline
    path = write_preview(seq, tmp_path / "p.mp4")
    import imageio_ffmpeg

    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 2


def test_detector_size_precision_and_batch_reach_the_extractor(monkeypatch):
    """The same DensePose options for every command: parsed, checked, handed to the extractor."""
    import torch

    from dreampose.cli import build_parser
    from dreampose.runtime.loading import DensePoseOptions
    from dreampose.runtime.options import load_densepose

    seen = {}
    monkeypatch.setattr(
        "pose_extraction.densepose.load_extractor",
        lambda backend, weights, device, **kwargs: seen.update(backend=backend, device=device, **kwargs),
    )

    def extract_args(*extra):
        return build_parser().parse_args(
            ["extract-poses", "in.mp4", "--output", "o.npz", "--device", "cpu", *extra]
        )

    load_densepose(extract_args("--detector-size", "512", "--pose-precision", "bf16"), batch_size=8)
    assert seen == {
        "backend": "native",
        "device": torch.device("cpu"),
        "min_size": 512,
        "batch_size": 1,
        "bf16": True,
    }
    assert DensePoseOptions(precision="fp16").extractor_kwargs(torch.device("cuda", 1), 8) == {
        "min_size": 800,
        "batch_size": 8,
        "fp16": True,
    }
    with pytest.raises(ValueError, match="--detector-size must be 32 to 1333 pixels; got 2000"):
        DensePoseOptions(detector_size=2000)
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        DensePoseOptions(precision="fp16").extractor_kwargs(torch.device("cpu"), 8)
    with pytest.raises(ValueError, match="needs the native backend"):
        DensePoseOptions(precision="bf16", backend="detectron2")
    finetune_args = build_parser().parse_args(
        ["finetune", "--image", "p.jpg", "--output", "o", "--detector-size", "640"]
    )
    assert finetune_args.detector_size == 640, "finetuning takes the same options"
