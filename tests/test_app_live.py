"""Live tuning on the tiny model: a preview with other sampling settings reuses the session's
encoded photo and pose windows (and gives the picture an uncached render gives), while
another photo, other poses, another model or another session encodes again; a newer live
preview waits for the one it cancelled; the page marks the preview out of date at once.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from dreampose.app.messages import UserError
from dreampose.app.page import preview as preview_page
from dreampose.app.service import AppService
from dreampose.app.sessions import Memo
from dreampose.app.steps import poses as pose_step
from dreampose.app.steps import render as render_step
from dreampose.app.uploads import AppLimits
from dreampose.rendering.frames import preview_frame
from dreampose.rendering.settings import RenderSettings
from pose_extraction.pose_sequence import PoseSequence
from tests.helpers.app import PHOTO, VIDEO, one_torch_thread

FAST = RenderSettings(num_inference_steps=2, scheduler="dpm++")
WAIT_S = 120  # generous: a busy machine


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def app_service(tmp_path_factory) -> AppService:
    limits = AppLimits(max_pose_frames=8)
    svc = AppService("tiny", limits=limits, canvas=(64, 64), session_root=tmp_path_factory.mktemp("sessions"))
    yield svc
    svc.sessions.close_all()


class Counted:
    """Counts the calls of one method of the pipeline, passing them on."""

    def __init__(self, monkeypatch, pipe, name: str) -> None:
        self.calls = 0
        real = getattr(pipe, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(pipe, name, counted)


@pytest.fixture
def posed(app_service, request):
    """A fresh session with the bundled example's photo and poses."""
    session = app_service.session(request.node.name)
    pose_step.extract_poses(app_service, session, [PHOTO], VIDEO)
    yield session
    app_service.end_session(session.id)


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_another_si_samples_again_without_encoding_the_photo_again(app_service, posed, monkeypatch):
    pipe = app_service.pipeline(posed)
    encoder = Counted(monkeypatch, pipe, "encode_subject")
    windows = Counted(monkeypatch, pipe, "pose_windows")
    first, _ = render_step.preview(app_service, posed, None, 2, FAST)
    assert (encoder.calls, windows.calls) == (1, 1)

    tuned = replace(FAST, image_guidance_scale=12.0, pose_guidance_scale=5.0, seed=3)
    second, used = render_step.preview(app_service, posed, None, 2, tuned)
    assert (encoder.calls, windows.calls) == (1, 1), "only sampled: nothing encoded or placed again"
    assert "sI 12, sP 5" in used
    assert not np.array_equal(_png(first), _png(second)), "the new settings were used"

    # The cached inputs give exactly what an uncached render of the same settings gives.
    poses = PoseSequence.load(posed.poses_path)
    uncached = preview_frame(pipe, str(posed.photos()[0]), poses, 2, replace(tuned, height=64, width=64))
    assert np.array_equal(_png(second), uncached)
    assert (encoder.calls, windows.calls) == (2, 2), "the uncached render encoded (the counters count)"

    render_step.preview(app_service, posed, None, 5, tuned)
    assert (encoder.calls, windows.calls) == (2, 3), "another frame: its pose window only"


def test_another_photo_or_other_poses_encode_again(app_service, posed, monkeypatch, tmp_path):
    pipe = app_service.pipeline(posed)
    encoder = Counted(monkeypatch, pipe, "encode_subject")
    windows = Counted(monkeypatch, pipe, "pose_windows")
    render_step.preview(app_service, posed, None, 0, FAST)
    assert (encoder.calls, windows.calls) == (1, 1)

    other = np.asarray(Image.open(PHOTO).convert("RGB"))[:, ::-1]  # the person, mirrored
    Image.fromarray(other).save(tmp_path / "mirrored.png")
    render_step.preview(app_service, posed, [str(tmp_path / "mirrored.png")], 0, FAST)
    assert (encoder.calls, windows.calls) == (2, 1), "a new photo is encoded; the poses are the same"

    PoseSequence.load(posed.poses_path).select(range(4)).save(posed.poses_path)  # poses written again
    render_step.preview(app_service, posed, None, 0, FAST)
    assert (encoder.calls, windows.calls) == (2, 2), "new poses are placed again"
    with pytest.raises(UserError, match="frames 0 to 3"):
        render_step.preview(app_service, posed, None, 6, FAST)  # and counted again


def test_nothing_is_shared_between_sessions(app_service, posed, monkeypatch):
    pipe = app_service.pipeline(posed)
    encoder = Counted(monkeypatch, pipe, "encode_subject")
    render_step.preview(app_service, posed, None, 0, FAST)
    other = app_service.session("another tab")
    app_service.photos(other, [PHOTO])
    shutil.copyfile(posed.poses_path, other.poses_path)
    render_step.preview(app_service, other, None, 0, FAST)
    assert encoder.calls == 2, "the other tab encodes its own photo"
    app_service.end_session(other.id)


def test_another_model_encodes_again():
    memo, made = Memo(), []

    class Model:  # stands for a pipeline: the key holds a weak reference to it
        pass

    import weakref

    first, second = Model(), Model()
    for model in (first, first, second, first):
        memo.get("subject", ("photo.png", weakref.ref(model)), lambda m=model: made.append(m) or len(made))
    assert made == [first, second, first], "the same model reuses; each switch makes it again"


def test_a_newer_preview_waits_for_the_one_it_cancelled(posed):
    started, finish, order = threading.Event(), threading.Event(), []

    def older():
        with posed.job("preview") as cancel:
            started.set()
            assert cancel.wait(WAIT_S), "cancelled"
            finish.wait(WAIT_S)
            order.append("older ended")

    thread = threading.Thread(target=older)
    thread.start()
    assert started.wait(WAIT_S)
    with pytest.raises(UserError, match="already running"), posed.job("preview"):
        pass
    assert posed.cancel("preview")
    finish.set()
    with posed.job("preview", wait_s=WAIT_S):  # waits for the older one to end, then runs
        order.append("newer ran")
    thread.join(WAIT_S)
    assert order == ["older ended", "newer ran"]


class Request:
    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash


def test_moving_a_control_marks_the_preview_out_of_date(app_service, posed):
    mark = preview_page.mark_stale(app_service, "sI")
    image, ticket = mark(12, True, "shown.png", Request(posed.id))
    assert isinstance(image, gr.Image) and image.label == "Preview · out of date: sI now 12 — updating…"
    assert ticket is not None and not posed.preview_out_of_date(ticket)
    _, newer = mark(12.5, True, "shown.png", Request(posed.id))
    assert posed.preview_out_of_date(ticket) and not posed.preview_out_of_date(newer)

    image, ticket = mark(4, False, "shown.png", Request(posed.id))
    assert image.label == "Preview · out of date: sI now 4 — press Preview frame"
    assert ticket is None, "live preview off: nothing is rendered"


def test_without_poses_nothing_is_marked_or_rendered(app_service):
    mark = preview_page.mark_stale(app_service, "sP")
    image, ticket = mark(5, True, None, Request("no poses yet"))
    assert image == gr.skip() and ticket is None
    app_service.end_session("no poses yet")


def test_live_events_add_no_api_endpoint():
    """The live preview's events are the page's own: API and MCP callers see the same endpoints."""
    import app

    service = AppService("tiny", canvas=(64, 64))
    try:
        named = set(app.create_demo(service).get_api_info()["named_endpoints"])
    finally:
        service.close()
    steps = {"/extract_poses", "/finetune", "/preview", "/guidance_grid", "/render"}
    cancels = {"/cancel_poses", "/cancel_finetune", "/cancel_preview", "/cancel_render"}
    assert named == steps | cancels
