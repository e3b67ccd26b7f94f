"""The offline demo: the example's shipped poses, and the tiny random DensePose of `--model tiny`."""

from __future__ import annotations

import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

from dreampose.app.examples import bundled_photo_pose, bundled_video_poses
from dreampose.media.video_reader import VideoStream
from pose_extraction.densepose import load_extractor
from pose_extraction.densepose.tiny import TINY_POSES_NOTE, is_tiny_random
from pose_extraction.pose_sequence import PoseSequence

ASSETS = Path(__file__).resolve().parents[1] / "assets"
VIDEO, PHOTO = ASSETS / "example_dance.mp4", ASSETS / "example_photo.png"


def drawn_figure(rgb: np.ndarray) -> np.ndarray:
    """Pixels of the example pictures that are not background, judged from the picture alone:
    colour far from the same row's left and right edges (the background is a vertical gradient)."""
    edges = np.concatenate([rgb[:, :3], rgb[:, -3:]], axis=1).astype(np.float32)
    background = np.median(edges, axis=1, keepdims=True)
    return np.linalg.norm(rgb.astype(np.float32) - background, axis=2) > 40


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# ----------------------------------------------------------------------------- shipped poses
def test_the_example_poses_cover_the_drawn_figure_frame_by_frame():
    poses = PoseSequence.load(ASSETS / "example_poses.npz")
    frames = list(VideoStream(VIDEO))
    assert len(poses) == len(frames) == 12 and poses.fps == 8.0 and poses.source_size == (160, 128)
    for i, frame in enumerate(frames):
        assert iou(poses.labels[i] > 0, drawn_figure(frame)) > 0.85, i
    assert not poses.missing.any() and set(np.unique(poses.labels)) >= {
        0,
        2,
        3,
        4,
        5,
        6,
        9,
        10,
        13,
        14,
        17,
        18,
        21,
        22,
        23,
        24,
    }
    body = poses.labels > 0
    assert (poses.uv[:, 0][body] > 0).all() and (poses.uv[:, 0][~body] == 0).all()

    photo = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    pose = PoseSequence.load(ASSETS / "example_photo_pose.npz")
    assert len(pose) == 1 and iou(pose.labels[0] > 0, drawn_figure(photo)) > 0.9


def test_the_example_poses_are_what_the_world_draws():
    from dreampose.world.examples import PHOTOS, VIDEOS, video_clip, video_scene
    from dreampose.world.scenes import render_clip

    assert len(PHOTOS) >= 3 and len(VIDEOS) >= 3
    for video in VIDEOS:
        frames, again = render_clip(video_scene(video), video_clip(video))
        shipped = PoseSequence.load(ASSETS / video.pose_file)
        for key in ("uv", "labels", "boxes", "missing"):
            np.testing.assert_array_equal(getattr(again, key), getattr(shipped, key), err_msg=key)
        assert bundled_video_poses(ASSETS / video.file) is not None, video.file
    for photo in PHOTOS:
        rgb = cv2.cvtColor(cv2.imread(str(ASSETS / photo.file)), cv2.COLOR_BGR2RGB)
        assert bundled_photo_pose(rgb) is not None, photo.file


def test_the_bundled_poses_are_found_by_content_only(tmp_path):
    shipped = PoseSequence.load(ASSETS / "example_poses.npz")
    found = bundled_video_poses(VIDEO)
    assert found is not None and np.array_equal(found.uv, shipped.uv)
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(VIDEO.read_bytes())
    assert bundled_video_poses(copy) is not None  # any name, same bytes
    copy.write_bytes(VIDEO.read_bytes()[:-1] + b"\0")
    assert bundled_video_poses(copy) is None

    photo = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    assert bundled_photo_pose(photo) is not None
    assert bundled_photo_pose(photo[:, ::-1].copy()) is None


# ----------------------------------------------------------------------------- tiny DensePose
@pytest.fixture(scope="module")
def tiny():
    return load_extractor("tiny")


@pytest.mark.parametrize(
    "image",
    [
        np.full((90, 70, 3), 200, np.uint8),  # nothing stands out: the central box
        np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8),  # noise everywhere
        np.zeros((6, 5, 3), np.uint8),  # tiny
    ],
    ids=["blank", "noise", "tiny"],
)
def test_the_tiny_densepose_always_finds_one_person(tiny, image):
    people = tiny(image)
    assert len(people) == 1
    person = people[0]
    x, y, w, h = person.box_xywh
    assert min(x, y) >= 0 and x + w <= image.shape[1] + 1 and y + h <= image.shape[0] + 1
    assert (person.labels > 0).any() and (person.uv >= 0).all() and (person.uv <= 1).all()


def test_the_tiny_densepose_outlines_the_person_and_is_deterministic(tiny):
    from pose_extraction.extract import extract_poses

    seq = extract_poses(VIDEO, tiny)
    drawn = PoseSequence.load(ASSETS / "example_poses.npz")
    assert len(seq) == 12 and not seq.missing.any()
    assert min(iou(seq.labels[i] > 0, drawn.labels[i] > 0) for i in range(12)) > 0.75
    assert len(np.unique(seq.labels[seq.labels > 0])) > 5  # noise: many parts inside the outline
    again = extract_poses(VIDEO, load_extractor("tiny"))
    assert np.array_equal(seq.uv, again.uv) and np.array_equal(seq.labels, again.labels)
    assert is_tiny_random(tiny) and not is_tiny_random(object())
    with pytest.raises(ValueError, match="takes no weights"):
        load_extractor("tiny", weights="model_final_162be9.pkl")


def test_the_tiny_app_extracts_an_uploaded_video_offline(tmp_path, monkeypatch):
    from dreampose.app.service import AppService
    from dreampose.app.steps import poses as pose_step
    from dreampose.media.video_writer import write_mp4

    rng = np.random.default_rng(1)
    frames = []
    for i in range(5):
        frame = np.full((96, 80, 3), 210, np.uint8)
        frame[20:85, 25 + 2 * i : 50 + 2 * i] = rng.integers(0, 120, size=(65, 25, 3), dtype=np.uint8)
        frames.append(frame)
    video = write_mp4(frames, tmp_path / "upload.mp4", 10.0)

    def refuse(*args, **kwargs):
        raise AssertionError("the tiny demo used the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    service = AppService("tiny", canvas=(64, 64), session_root=tmp_path / "sessions")
    result = pose_step.extract_poses(service, service.session("s"), [str(PHOTO)], str(video))
    assert result.num_frames == 5 and TINY_POSES_NOTE in result.message
    assert is_tiny_random(service.models.extractor())


def test_the_page_offers_every_person_with_every_clip_and_each_once_on_the_first_page():
    from dreampose.app.examples import example_pairs

    pairs = [tuple(Path(p).name for p in pair) for pair in example_pairs()]
    photos, videos = {p for p, _ in pairs}, {v for _, v in pairs}
    assert len(photos) >= 3 and len(videos) >= 3 and set(pairs) == {(p, v) for p in photos for v in videos}
    assert pairs[0] == (PHOTO.name, VIDEO.name)
    first_page = pairs[: len(photos)]
    assert {p for p, _ in first_page} == photos and len({v for _, v in first_page}) == len(first_page)
