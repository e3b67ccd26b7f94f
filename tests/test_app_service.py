"""The app's service on the tiny model: each step, its errors, and session isolation.

A fake DensePose (``RedBoxExtractor``: the red shirt of the example figure is "the
person") keeps these tests fast and independent of the DensePose weights.
"""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from dreampose.app import finetune as finetune_step
from dreampose.app import poses as pose_step
from dreampose.app import render as render_step
from dreampose.app.messages import UserError
from dreampose.app.models import model_status
from dreampose.app.service import AppService
from dreampose.app.uploads import AppLimits
from dreampose.render import RenderSettings, parse_scales
from pose_extraction.pose_sequence import PoseSequence
from tests.helpers import ASSETS
from tests.helpers.poses import RedBoxExtractor

PHOTO = str(ASSETS / "example_photo.png")
VIDEO = str(ASSETS / "example_dance.mp4")
FAST = RenderSettings(num_inference_steps=2, scheduler="dpm++")


@pytest.fixture(scope="module")
def app_service(tmp_path_factory) -> AppService:
    limits = AppLimits(max_render_frames=6, max_finetune_steps=10, max_pose_frames=8)
    svc = AppService(
        "tiny",
        limits=limits,
        extractor=RedBoxExtractor(),
        canvas=(64, 64),
        session_root=tmp_path_factory.mktemp("sessions"),
    )
    yield svc
    svc.sessions.close_all()


@pytest.fixture(scope="module")
def posed(app_service):
    """A session whose poses were extracted from the example video (shared, read-only use)."""
    session = app_service.session("posed")
    calls = []
    result = pose_step.extract_poses(
        app_service, session, [PHOTO], VIDEO, progress=lambda *a: calls.append(a)
    )
    return session, result, calls


def _frames_of(path: Path) -> int:
    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


# ----------------------------------------------------------------------------- step 2: poses
def test_extract_poses_places_aligns_and_previews(posed):
    session, result, calls = posed
    # The example has 12 frames; the limit of 8 pose frames applies and is reported.
    assert result.num_frames == 8 and result.fps == 8.0
    assert "first 8 frames" in result.message
    poses = PoseSequence.load(session.poses_path)
    assert (poses.height, poses.width) == (64, 64)
    assert _frames_of(result.preview_video) == 8
    assert result.subject_image.shape == (64, 64 + 4 + 64, 3)
    assert result.subject_image[:, 68:].any(), "the photo's own pose is drawn"
    assert calls and calls[-1][0] == calls[-1][1], "progress reached done == total"


def test_align_toggle_reuses_the_extracted_poses(app_service, tmp_path):
    small_person = np.full((128, 96, 3), 150, np.uint8)
    small_person[90:120, 5:20] = (230, 20, 20)  # small, low, on the left
    photo = tmp_path / "small.png"
    Image.fromarray(small_person).save(photo)
    other = app_service.session("align-toggle")
    pose_step.extract_poses(app_service, other, [str(photo)], VIDEO, align=True)
    aligned = PoseSequence.load(other.poses_path)
    result = pose_step.extract_poses(app_service, other, None, None, align=False)  # no new upload
    unaligned = PoseSequence.load(other.poses_path)
    assert result.num_frames == len(aligned)
    assert not np.array_equal(aligned.labels, unaligned.labels)


def test_pose_file_upload(app_service, posed, tmp_path):
    session, _, _ = posed
    other = app_service.session("npz-upload")
    raw = PoseSequence.load(session.raw_poses_path).select(slice(0, 3))
    path = raw.save(tmp_path / "my poses.npz")
    result = pose_step.extract_poses(app_service, other, [PHOTO], str(path), align=False)
    assert result.num_frames == 3


# ----------------------------------------------------------------------------- errors
def test_upload_that_is_not_a_photo(app_service, tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("not a picture")
    with pytest.raises(UserError, match="not a picture"):
        pose_step.extract_poses(app_service, app_service.session("bad-photo"), [str(fake)], VIDEO)


def test_photo_without_a_person(app_service, tmp_path):
    empty = tmp_path / "empty.png"
    Image.new("RGB", (64, 80), (128, 128, 128)).save(empty)
    with pytest.raises(UserError, match="No person was found in the subject photo"):
        pose_step.extract_poses(app_service, app_service.session("no-person"), [str(empty)], VIDEO)


def test_unreadable_video_and_bad_zip(app_service, tmp_path):
    junk = tmp_path / "dance.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(UserError, match="not a readable video"):
        pose_step.extract_poses(app_service, app_service.session("junk"), [PHOTO], str(junk))
    bad_zip = tmp_path / "poses.zip"
    with zipfile.ZipFile(bad_zip, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(UserError, match="neither a DreamPose pose file"):
        pose_step.extract_poses(app_service, app_service.session("junk"), [PHOTO], str(bad_zip))


def test_limits_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DREAMPOSE_MAX_VIDEO_SECONDS", "0.5")
    monkeypatch.setenv("DREAMPOSE_MAX_UPLOAD_MB", "0.001")
    limits = AppLimits.from_env()
    assert limits.max_video_seconds == 0.5
    svc = AppService(
        "tiny", limits=limits, extractor=RedBoxExtractor(), canvas=(64, 64), session_root=tmp_path
    )
    with pytest.raises(UserError, match="MB"):  # the photo is ~8 kB, over 1 kB
        pose_step.extract_poses(svc, svc.session("x"), [PHOTO], VIDEO)
    svc = AppService(
        "tiny", limits=AppLimits(max_video_seconds=0.5), extractor=RedBoxExtractor(), session_root=tmp_path
    )
    with pytest.raises(UserError, match="(?i)long|duration|seconds"):
        pose_step.extract_poses(svc, svc.session("y"), [PHOTO], VIDEO)
    monkeypatch.setenv("DREAMPOSE_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="DREAMPOSE_MAX_PIXELS"):
        AppLimits.from_env()


def test_steps_before_their_inputs_explain_what_to_do(app_service):
    session = app_service.session("empty")
    with pytest.raises(UserError, match="add a photo"):
        render_step.preview(app_service, session, None, 0, FAST)
    with pytest.raises(UserError, match="no poses yet"):
        render_step.preview(app_service, session, [PHOTO], 0, FAST)
    with pytest.raises(UserError, match="driving video"):
        pose_step.extract_poses(app_service, session, [PHOTO], None)


def test_bad_frame_range_and_grid_values(app_service, posed):
    session, _, _ = posed
    with pytest.raises(UserError, match="frames between 0 and 7"):
        render_step.render(app_service, session, None, 5, 20, FAST)
    with pytest.raises(UserError, match="at most 6"):
        render_step.render(app_service, session, None, 0, 7, FAST)
    with pytest.raises(UserError, match="Frame 99 does not exist"):
        render_step.preview(app_service, session, None, 99, FAST)
    with pytest.raises(ValueError, match="numbers separated by commas"):
        parse_scales("4, lots", "Image guidance values")
    assert parse_scales("4, 8;12", "x") == [4.0, 8.0, 12.0]


def test_failed_step_keeps_earlier_work(app_service, posed, tmp_path):
    session = app_service.session("keep")
    pose_step.extract_poses(app_service, session, [PHOTO], VIDEO)
    before = session.poses_path.read_bytes()
    junk = tmp_path / "broken.mp4"
    junk.write_bytes(b"garbage" * 100)
    with pytest.raises(UserError):
        pose_step.extract_poses(app_service, session, None, str(junk))
    assert session.poses_path.read_bytes() == before
    image, _ = render_step.preview(app_service, session, None, 1, FAST)  # photo and poses still there
    assert image.shape == (64, 64, 3)


def test_missing_model_shows_instructions(tmp_path):
    status = model_status(str(tmp_path / "nowhere"))
    assert not status.ready and "dreampose convert" in status.message
    assert not model_status("models/dreampose").ready or Path("models/dreampose/model_index.json").is_file()
    assert model_status("someone/dreampose-model").ready  # a hub id: loaded on first use
    svc = AppService(str(tmp_path / "nowhere"), session_root=tmp_path)
    with pytest.raises(UserError, match="No DreamPose model"):
        svc.pipeline()


# ----------------------------------------------------------------------------- steps 3-5
def test_preview_is_seeded_and_reports_what_it_used(app_service, posed):
    session, _, _ = posed
    a, used = render_step.preview(app_service, session, None, 2, replace(FAST, seed=7))
    b, _ = render_step.preview(app_service, session, None, 2, replace(FAST, seed=7))
    c, _ = render_step.preview(app_service, session, None, 2, replace(FAST, seed=8))
    assert a.shape == (64, 64, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert "seed 7" in used and "Frame 2" in used


def test_guidance_grid(app_service, posed):
    session, _, _ = posed
    grid = render_step.guidance_grid(app_service, session, None, 1, [2.0, 8.0], [1.0, 3.0], FAST)
    assert grid.shape == (2 * 64 + 4, 2 * 64 + 4, 3)
    assert not np.array_equal(grid[:64, :64], grid[68:, 68:]), "cells differ by guidance"


def test_render_video_frames_and_side_by_side(app_service, posed):
    session, _, _ = posed
    out = render_step.render(app_service, session, None, 2, 4, FAST, side_by_side=True)
    assert not out.cancelled and out.num_frames == 3 and out.fps == 8.0
    assert _frames_of(out.video) == 3
    size = imageio_ffmpeg.read_frames(str(out.video)).__next__()["size"]
    assert size == (3 * 64 + 8, 64), "photo | pose | result"
    with zipfile.ZipFile(out.frames_zip) as z:
        assert sorted(z.namelist()) == ["frame_00002.png", "frame_00003.png", "frame_00004.png"]


def test_cancelled_render_returns_finished_frames(app_service, posed):
    session, _, _ = posed
    progress_seen = []

    def progress(done, total, text):
        progress_seen.append(text)
        if done >= FAST.num_inference_steps * 2:  # two frames finished: cancel
            app_service.cancel(session.id)

    out = render_step.render(app_service, session, None, 0, 5, FAST, progress=progress)
    assert out.cancelled and 2 <= out.num_frames < 6
    assert out.video.name == "video.partial.mp4" and _frames_of(out.video) == out.num_frames
    assert "Cancelled" in out.message and any("frames" in t for t in progress_seen)


def test_finetune_then_preview_uses_subject(app_service, posed):
    session = app_service.session("finetune")
    pose_step.extract_poses(app_service, session, [PHOTO], VIDEO)
    with pytest.raises(UserError, match="more than this app allows"):
        finetune_step.finetune(app_service, session, None, unet_steps=10, vae_steps=10)
    seen = []
    outcome = finetune_step.finetune(
        app_service, session, None, lora=True, unet_steps=1, vae_steps=1, progress=lambda *a: seen.append(a)
    )
    assert not outcome.cancelled and outcome.download is not None and outcome.download.is_file()
    assert any("loss" in text for _, _, text in seen)
    _, used = render_step.preview(app_service, session, None, 0, FAST)
    assert "finetuned subject" in used


# ----------------------------------------------------------------------------- sessions
def test_sessions_are_isolated_and_cleaned_up(app_service, posed):
    session, _, _ = posed
    stranger = app_service.session("stranger")
    assert stranger.folder != session.folder
    with pytest.raises(UserError, match="no poses yet"):
        render_step.preview(app_service, stranger, [PHOTO], 0, FAST)
    with pytest.raises(ValueError, match="inside the session folder"):
        stranger.path("../" + session.folder.name + "/poses.npz")
    folder = stranger.folder
    app_service.end_session("stranger")
    assert not folder.exists()


def test_idle_sessions_expire(tmp_path):
    svc = AppService("tiny", limits=AppLimits(session_ttl_s=0.01), canvas=(64, 64), session_root=tmp_path)
    old = svc.session("old")
    import time

    time.sleep(0.05)
    svc.session("new")  # any access sweeps
    assert not old.folder.exists() and len(svc.sessions) == 1


def test_official_pose_zip_upload(app_service, posed, tmp_path):
    from pose_extraction.official import export_official

    session, _, _ = posed
    folder = export_official(
        PoseSequence.load(session.raw_poses_path).select(slice(0, 2)), tmp_path / "poses"
    )
    archive = tmp_path / "official.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"poses/{f.name}")
    result = pose_step.extract_poses(
        app_service, app_service.session("official"), [PHOTO], str(archive), fps=10, align=False
    )
    assert result.num_frames == 2 and result.fps == 10.0
