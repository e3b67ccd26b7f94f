"""The app's service on the tiny model: each step with the values the page starts with, its
progress, cancel, errors and messages, and session isolation.

The bundled example ships its own poses (no detector runs on it). Where a detector must run,
the driving video is a red block (``red_dancer_video``) and DensePose is the fake
``RedBoxExtractor`` (the red pixels are "the person"), which keeps these tests fast.
"""

from __future__ import annotations

import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from dreampose.app.examples import BUNDLED_NOTE
from dreampose.app.messages import UserError
from dreampose.app.models import model_status
from dreampose.app.service import AppService
from dreampose.app.steps import finetune as finetune_step
from dreampose.app.steps import poses as pose_step
from dreampose.app.steps import render as render_step
from dreampose.app.uploads import AppLimits
from dreampose.media.video_reader import probe_video
from dreampose.model.events import Finished, FrameDone, Progress
from dreampose.rendering.grid import parse_scales
from dreampose.rendering.settings import RenderSettings
from pose_extraction.pose_sequence import PoseSequence
from tests.helpers.app import PHOTO, VIDEO, one_torch_thread, red_dancer_video, sound_onset
from tests.helpers.poses import RedBoxExtractor

FAST = RenderSettings(num_inference_steps=2, scheduler="dpm++")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


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
def red_video(tmp_path_factory) -> Path:
    return red_dancer_video(tmp_path_factory.mktemp("videos") / "red dancer.mp4")


@pytest.fixture(scope="module")
def posed(app_service):
    """A session whose poses came from the bundled example (shared, read-only use)."""
    session = app_service.session("posed")
    calls = []
    detector = app_service.models._extractor
    before = len(detector.batches)
    result = pose_step.extract_poses(
        app_service, session, [PHOTO], VIDEO, progress=lambda *a: calls.append(a)
    )
    assert len(detector.batches) == before, "no detector ran on the example"
    return session, result, calls


def _frames_of(path: Path) -> int:
    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# ----------------------------------------------------------------------------- step 2: poses
def test_the_example_uses_its_shipped_poses_without_a_detector(posed, app_service):
    session, result, _ = posed
    # The example has 12 frames; the limit of 8 pose frames applies and is reported.
    assert result.num_frames == 8 and result.fps == 8.0
    assert BUNDLED_NOTE in result.message and "keeps the first 8" in result.message
    shipped = PoseSequence.load(Path(VIDEO).parent / "example_poses.npz")
    raw = PoseSequence.load(session.raw_poses_path)
    assert np.array_equal(raw.labels, shipped.labels[:8])
    poses = PoseSequence.load(session.poses_path)
    assert (poses.height, poses.width) == (64, 64)
    assert _frames_of(result.preview_video) == 8
    assert result.subject_image.shape == (64, 64 + 4 + 64, 3)
    assert result.subject_image[:, 68:].any(), "the photo's own (shipped) pose is drawn"
    assert "aligned to the photo" in result.message and not result.warnings


def test_extraction_reports_each_phase_and_finds_the_person(app_service, red_video, tmp_path):
    session = app_service.session("phases")
    seen = []
    result = pose_step.extract_poses(
        app_service, session, [PHOTO], str(red_video), progress=lambda *a: seen.append(a)
    )
    texts = [t for _, _, t in seen]
    assert texts[0] == "Loading the pose detector (DensePose)" and texts[1] == "Reading the video"
    counted = [(d, t) for d, t, text in seen if text.startswith("Finding poses")]
    assert (
        counted[-1] == (8, 8) and "8 of 8 frames" in texts[texts.index("Placing the poses on the canvas") - 1]
    )
    assert result.num_frames == 8 and result.fps == 10.0 and BUNDLED_NOTE not in result.message
    raw = PoseSequence.load(session.raw_poses_path)
    xs = [np.nonzero(raw.labels[i].any(axis=0))[0].min() for i in range(len(raw))]
    assert xs == [24 + 2 * i for i in range(8)], "the red block, two pixels further each frame"


def test_cancelling_extraction_keeps_the_poses_before(app_service, red_video):
    session = app_service.session("cancel-extract")
    pose_step.extract_poses(app_service, session, [PHOTO], VIDEO)
    before = session.poses_path.read_bytes(), session.raw_poses_path.read_bytes()

    def progress(done, total, text):
        if text.startswith("Finding poses"):
            app_service.cancel(session.id, "poses")

    with pytest.raises(UserError, match="cancelled; the poses you had before"):
        pose_step.extract_poses(app_service, session, None, str(red_video), progress=progress)
    assert (session.poses_path.read_bytes(), session.raw_poses_path.read_bytes()) == before


def test_nobody_found_in_some_frames_is_a_warning(app_service, tmp_path):
    frames = np.full((6, 64, 48, 3), 128, np.uint8)
    frames[[0, 1, 4, 5], 10:60, 15:30] = (255, 0, 0)  # frames 2 and 3: nobody
    from tests.helpers.poses import H264, encode

    video = encode(frames, tmp_path / "gaps.mp4", 6.0, H264)
    result = pose_step.extract_poses(app_service, app_service.session("gaps"), [PHOTO], str(video))
    assert result.warnings == [
        "Nobody was found in 2 of 6 frames; they reuse the pose of the nearest frame with a person. "
        "Check the pose video."
    ]
    assert pose_step.warnings_text(result).startswith("**⚠ Nobody was found in 2 of 6 frames")


def test_a_speck_of_a_body_is_reported_not_aligned_to(app_service, posed, tmp_path):
    session, _, _ = posed
    raw = PoseSequence.load(session.raw_poses_path)
    speck = np.zeros_like(raw.uv[:2])
    speck[:, :, 100:104, 60:62] = 0.5  # 4 x 2 pixels of a 160 x 128 frame
    path = PoseSequence.from_uv(speck.astype(np.float32), fps=8.0).save(tmp_path / "speck.npz")
    other = app_service.session("speck")
    result = pose_step.extract_poses(app_service, other, [PHOTO], str(path))
    (text,) = result.warnings
    assert text.startswith("The body found in the driving video is tiny (") and "not aligned" in text
    assert "aligned to the photo" not in result.message
    fitted = PoseSequence.load(other.poses_path)
    assert (fitted.labels > 0).sum() < 10, "left as small as it was, not blown up to the photo's size"


def test_align_toggle_reuses_the_extracted_poses(app_service, red_video, tmp_path):
    small_person = np.full((128, 96, 3), 150, np.uint8)
    small_person[70:120, 5:20] = (230, 20, 20)  # small, low, on the left
    photo = tmp_path / "small.png"
    Image.fromarray(small_person).save(photo)
    other = app_service.session("align-toggle")
    pose_step.extract_poses(app_service, other, [str(photo)], str(red_video), align=True)
    aligned = PoseSequence.load(other.poses_path)
    calls = len(app_service.models._extractor.batches)
    result = pose_step.extract_poses(app_service, other, None, None, align=False)  # no new upload
    unaligned = PoseSequence.load(other.poses_path)
    assert len(app_service.models._extractor.batches) == calls, "nothing extracted again"
    assert result.num_frames == len(aligned)
    assert not np.array_equal(aligned.labels, unaligned.labels)
    # The page sends the same upload again with every click: it is not extracted again either.
    again = pose_step.extract_poses(app_service, other, None, str(red_video), align=True)
    assert len(app_service.models._extractor.batches) == calls and "aligned to the photo" in again.message
    assert np.array_equal(PoseSequence.load(other.poses_path).labels, aligned.labels)
    # Other options are another extraction.
    pose_step.extract_poses(app_service, other, None, str(red_video), fps=5, align=True)
    assert len(app_service.models._extractor.batches) > calls


def test_pose_file_upload(app_service, posed, tmp_path):
    session, _, _ = posed
    other = app_service.session("npz-upload")
    raw = PoseSequence.load(session.raw_poses_path).select(slice(0, 3))
    path = raw.save(tmp_path / "my poses.npz")
    result = pose_step.extract_poses(app_service, other, [PHOTO], str(path), align=False)
    assert result.num_frames == 3


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


def test_limits_from_environment(monkeypatch, tmp_path, red_video):
    monkeypatch.setenv("DREAMPOSE_MAX_VIDEO_SECONDS", "0.5")
    monkeypatch.setenv("DREAMPOSE_MAX_UPLOAD_MB", "0.001")
    limits = AppLimits.from_env()
    assert limits.max_video_seconds == 0.5
    svc = AppService(
        "tiny", limits=limits, extractor=RedBoxExtractor(), canvas=(64, 64), session_root=tmp_path
    )
    with pytest.raises(UserError, match="MB"):  # the photo is ~8 kB, over 1 kB
        pose_step.extract_poses(svc, svc.session("x"), [PHOTO], str(red_video))
    svc = AppService(
        "tiny", limits=AppLimits(max_video_seconds=0.5), extractor=RedBoxExtractor(), session_root=tmp_path
    )
    with pytest.raises(UserError, match="(?i)long|duration|seconds"):  # the red video lasts 1 s
        pose_step.extract_poses(svc, svc.session("y"), [PHOTO], str(red_video))
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
    with pytest.raises(UserError, match="at most 6 at a time. Render it in parts: frames 0 to 5 first"):
        render_step.render(app_service, session, None, 0, 7, FAST)
    with pytest.raises(UserError, match="Frame 99 does not exist"):
        render_step.preview(app_service, session, None, 99, FAST)
    with pytest.raises(ValueError, match="numbers separated by commas"):
        parse_scales("4, lots", "Image guidance values")
    assert parse_scales("4, 8;12", "x") == [4.0, 8.0, 12.0]


def test_a_failed_step_keeps_the_earlier_work(app_service, tmp_path):
    session = app_service.session("keep")
    pose_step.extract_poses(app_service, session, [PHOTO], VIDEO)
    poses, raw = session.poses_path.read_bytes(), session.raw_poses_path.read_bytes()
    photos = [p.read_bytes() for p in session.photos()]
    # A later step fails (finetuning with no steps), then extraction fails on a broken upload.
    with pytest.raises(UserError, match="at least one finetuning step"):
        finetune_step.finetune(app_service, session, None, unet_steps=0, vae_steps=0)
    junk = tmp_path / "broken.mp4"
    junk.write_bytes(b"garbage" * 100)
    with pytest.raises(UserError, match="not a readable video"):
        pose_step.extract_poses(app_service, session, None, str(junk))
    # The photo and both pose files are byte for byte what the successful extraction wrote,
    # and the next step runs on them.
    assert session.poses_path.read_bytes() == poses and session.raw_poses_path.read_bytes() == raw
    assert [p.read_bytes() for p in session.photos()] == photos
    path, used = render_step.preview(app_service, session, None, 1, FAST)
    assert _png(path).shape == (64, 64, 3) and "Frame 1" in used


def test_a_missing_model_shows_instructions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "models/dreampose" (the default folder) does not exist here
    missing = model_status("models/dreampose")
    assert not missing.ready and "dreampose convert" in missing.message and "--model tiny" in missing.message
    (tmp_path / "not_a_model").mkdir()
    wrong = model_status("not_a_model")
    assert not wrong.ready and "is not a DreamPose model folder" in wrong.message
    (tmp_path / "models" / "dreampose").mkdir(parents=True)
    (tmp_path / "models" / "dreampose" / "model_index.json").write_text("{}")
    assert model_status("models/dreampose").ready
    assert model_status("someone/dreampose-model").ready  # a hub id: loaded on first use
    svc = AppService(str(tmp_path / "nowhere"), session_root=tmp_path / "sessions")
    assert not svc.status.ready and svc.setup is None
    with pytest.raises(UserError, match="No DreamPose model is installed"):
        svc.pipeline()


# ----------------------------------------------------------------------------- step 3: finetuning
def test_finetune_defaults_fit_the_limit_and_run_as_they_stand(app_service, posed, tmp_path):
    assert AppService("tiny", session_root=tmp_path).finetune_defaults() == (
        500,
        1500,
    )  # the paper's, allowed
    assert app_service.finetune_defaults() == (2, 8)  # limit 10: the paper's 1 : 3, within the limit
    session = app_service.session("finetune")
    pose_step.extract_poses(app_service, session, [PHOTO], VIDEO)
    with pytest.raises(UserError, match="more than this app allows"):
        finetune_step.finetune(app_service, session, None, unet_steps=10, vae_steps=10)
    seen = []
    outcome = finetune_step.finetune(
        app_service, session, None, lora=True, progress=lambda *a: seen.append(a)
    )
    assert not outcome.cancelled and "10 steps" in outcome.message
    assert outcome.download.name == "dreampose_subject_example_photo_lora.zip"
    texts = [text for _, _, text in seen]
    assert texts[:2] == [
        "Finding the pose in each photo",
        "Loading a trainable copy of the model (the first step follows)",
    ]
    assert "Finetuning the UNet: step 1 of 2, loss" in texts[2] and texts[-1].startswith(
        "Finetuning the VAE decoder: step 8 of 8"
    )
    assert [d for d, _, _ in seen[2:]] == list(range(1, 11)) and all(t == 10 for _, t, _ in seen)
    path, used = render_step.preview(app_service, session, None, 0, FAST)
    assert "finetuned subject" in used


def test_cancelling_finetuning_says_what_happened(app_service, posed):
    session = app_service.session("finetune-cancel")
    pose_step.extract_poses(app_service, session, [PHOTO], VIDEO)

    def cancel_while_loading(done, total, text):
        if text.startswith("Loading a trainable copy"):
            app_service.cancel(session.id, "finetune")

    outcome = finetune_step.finetune(app_service, session, None, lora=True, progress=cancel_while_loading)
    assert outcome.cancelled and outcome.model_dir is None and outcome.download is None
    assert outcome.message.startswith(
        "Finetuning was cancelled before its first step finished: nothing was trained"
    )
    assert session.current_subject() is None and not list(session.folder.glob("subject_model_*"))

    def cancel_after_two(done, total, text):
        if done == 2:
            app_service.cancel(session.id, "finetune")

    outcome = finetune_step.finetune(app_service, session, None, lora=True, progress=cancel_after_two)
    assert outcome.cancelled and outcome.message.startswith("Cancelled after 2 of 10 steps")
    assert session.current_subject() == outcome.model_dir
    assert (outcome.model_dir / "checkpoint" / "optimizer.pt").is_file()  # kept for a resume
    with zipfile.ZipFile(outcome.download) as z:  # the download holds the model, not the resume state
        names = z.namelist()
    assert f"{outcome.model_dir.name}/subject.json" in names and not [n for n in names if "checkpoint" in n]


# ----------------------------------------------------------------------------- step 4: one frame
def test_preview_is_seeded_png_with_a_meaningful_name(app_service, posed):
    session, _, _ = posed
    path_a, used = render_step.preview(app_service, session, None, 2, replace(FAST, seed=7))
    a = _png(path_a)
    b = _png(render_step.preview(app_service, session, None, 2, replace(FAST, seed=7))[0])
    c = _png(render_step.preview(app_service, session, None, 2, replace(FAST, seed=8))[0])
    assert a.shape == (64, 64, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert "seed 7" in used and "Frame 2" in used
    assert path_a.name == "dreampose_example_photo_example_dance_sI8_sP3_seed7_frame2.png"
    assert path_a.read_bytes().startswith(b"\x89PNG")


def test_preview_progress_counts_the_real_steps(app_service, posed):
    session, _, _ = posed
    seen = []
    render_step.preview(
        app_service, session, None, 0, RenderSettings(num_inference_steps=3, scheduler="pndm"),
        progress=lambda *a: seen.append(a),
    )  # fmt: skip
    counted = [(d, t) for d, t, text in seen if text.startswith("Previewing")]
    assert counted == [(1, 4), (2, 4), (3, 4), (4, 4)], "PNDM runs one step more than asked; never 5/4"


def test_guidance_grid_cells_map_clicks_to_their_scales(app_service, posed):
    session, _, _ = posed
    path, grid = render_step.guidance_grid(app_service, session, None, 1, [2.0, 8.0], [1.0, 3.0], FAST)
    image = _png(path)
    layout = grid.layout
    assert image.shape == (*layout.size, 3) and path.name == "dreampose_grid_example_photo_frame1_seed0.png"
    cells = {}
    for i in range(2):
        for j in range(2):
            y, x = layout.origin(i, j)
            assert np.array_equal(image[y : y + 64, x : x + 64], grid.frames[i][j])
            cells[(i, j)] = session.grid_scales_at(x + 32, y + 32)
    assert cells == {(0, 0): (2.0, 1.0), (0, 1): (2.0, 3.0), (1, 0): (8.0, 1.0), (1, 1): (8.0, 3.0)}
    assert not np.array_equal(grid.frames[0][0], grid.frames[1][1]), "cells differ by guidance"
    assert session.grid_scales_at(2, 2) is None, "the label corner is no cell"
    # The labels are drawn outside the cells, in the header and the left column.
    assert image[: layout.top, layout.left :].max() == 255 and image[layout.top :, : layout.left].max() == 255


# ----------------------------------------------------------------------------- step 5: the video
def test_render_on_defaults_covers_the_allowed_range_in_parts(app_service, posed):
    session, _, _ = posed  # 8 pose frames, at most 6 per render
    seen = []
    out = render_step.render(app_service, session, None, None, None, FAST, progress=lambda *a: seen.append(a))
    assert not out.cancelled and out.num_frames == 6 and out.fps == 8.0 and out.next_range == (6, 7)
    assert out.message.startswith("Rendered frames 0 to 5 (6 frames at 8 fps).")
    assert "Frames 6 to 7 are next" in out.message
    assert out.video.name == "dreampose_example_photo_example_dance_sI8_sP3_seed0_frames0-5.mp4"
    assert _frames_of(out.video) == 6 and out.side_by_side is None
    frames_seen = [text for _, _, text in seen if text.startswith("Rendering frame")]
    assert frames_seen[0].startswith("Rendering frame 1 of 6") and frames_seen[-1].startswith(
        "Rendering frame 6 of 6"
    )
    rest = render_step.render(app_service, session, None, *out.next_range, FAST)
    assert rest.num_frames == 2 and rest.next_range is None and "next" not in rest.message


def test_render_gives_the_clean_video_and_side_by_side_as_a_second_file(app_service, posed):
    session, _, _ = posed
    out = render_step.render(app_service, session, None, 2, 4, FAST, side_by_side=True)
    assert _frames_of(out.video) == 3 and _frames_of(out.side_by_side) == 3
    assert next(imageio_ffmpeg.read_frames(str(out.video)))["size"] == (64, 64), "clean"
    assert next(imageio_ffmpeg.read_frames(str(out.side_by_side)))["size"] == (3 * 64 + 8, 64)
    assert out.side_by_side.name == out.video.stem + "_side_by_side.mp4"
    with zipfile.ZipFile(out.frames_zip) as z:
        assert sorted(z.namelist()) == ["frame_00002.png", "frame_00003.png", "frame_00004.png"]


def test_the_video_keeps_the_driving_sound_cut_to_the_rendered_frames(app_service, tmp_path):
    # The driving video: 10 fps, 2 s; a tone from 0.5 s to 0.7 s. The poses start at 0.2 s.
    video = red_dancer_video(tmp_path / "song.mp4", frames=20, sound=True)
    session = app_service.session("sound")
    pose_step.extract_poses(app_service, session, [PHOTO], str(video), start=0.2)
    # Pose frames 1..6 show 0.3 s .. 0.8 s of the driving video: the tone starts 0.2 s in.
    out = render_step.render(app_service, session, None, 1, 6, FAST, side_by_side=True)
    assert "keeps the driving video's sound" in out.message
    for path in (out.video, out.side_by_side):
        seconds, onset = sound_onset(path)
        assert abs(seconds - 0.6) < 0.05 and abs(onset - 0.2) < 0.03, (path.name, seconds, onset)
    silent = render_step.render(app_service, session, None, 1, 6, FAST, sound=False)
    assert not probe_video(silent.video).has_audio and probe_video(out.video).has_audio


def test_render_streams_frames_and_cancel_keeps_the_finished_ones(app_service, posed):
    session, _, _ = posed
    events = []
    for event in render_step.render_stream(app_service, session, None, 0, 5, FAST):
        events.append(event)
        if isinstance(event, FrameDone) and event.index == 1:
            app_service.cancel(session.id, "render")
    kinds = [type(e) for e in events]
    assert kinds[-1] is Finished and FrameDone in kinds and Progress in kinds
    frames = [e for e in events if isinstance(e, FrameDone)]
    assert frames[0].image.shape == (64, 64, 3)
    out = events[-1].result
    assert out.cancelled and 2 <= out.num_frames < 6
    assert out.video.name.endswith("_frames0-5.partial.mp4") and _frames_of(out.video) == out.num_frames
    assert out.message.startswith(f"Cancelled after {out.num_frames} of 6 frames: the video of the finished")


def test_a_render_cancelled_before_its_first_frame_says_so(app_service, posed):
    session, _, _ = posed
    cancel_now = threading.Event()

    def progress(done, total, text):
        if not cancel_now.is_set():
            cancel_now.set()
            app_service.cancel(session.id, "render")

    with pytest.raises(
        UserError, match="cancelled before the first frame finished: there is nothing to show"
    ):
        render_step.render(app_service, session, None, 0, 2, FAST, progress=progress)


@pytest.mark.parametrize("kind", ["preview", "grid"])
def test_a_cancelled_preview_or_grid_is_an_outcome_not_an_error(app_service, posed, kind):
    """Cancel is the user's choice: no picture, a line saying so (the page keeps the one before)."""
    session, _, _ = posed
    before = set(session.folder.glob("previews/*.png"))

    def cancel_at_first_step(done, total, text):
        if done >= 1:
            app_service.cancel(session.id, kind)

    if kind == "preview":
        path, line = render_step.preview(app_service, session, None, 0, FAST, progress=cancel_at_first_step)
        assert path is None and line == render_step.PREVIEW_CANCELLED
    else:
        path, grid = render_step.guidance_grid(
            app_service, session, None, 0, [4.0, 8.0], [3.0], FAST, progress=cancel_at_first_step
        )
        assert path is None and grid is None
    assert set(session.folder.glob("previews/*.png")) == before  # nothing half-made is kept
    path, line = render_step.preview(app_service, session, None, 0, FAST)  # the next one runs
    assert path.is_file() and line.startswith("Frame 0:")


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
    time.sleep(0.05)
    svc.session("new")  # any access sweeps
    assert not old.folder.exists() and len(svc.sessions) == 1
