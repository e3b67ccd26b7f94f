"""The launched app, driven through its named API endpoints with ``gradio_client``.

The app runs in this process on 127.0.0.1 with the tiny model and a fake DensePose. One
client goes through the whole flow; a second client must not see the first one's work.
"""

from __future__ import annotations

import time
from pathlib import Path

import imageio_ffmpeg
import pytest
from gradio_client import Client, handle_file

from tests.helpers.app import PHOTO, VIDEO, launch_tiny_app

TUNE = {"s_i": 8, "s_p": 3, "steps": 2, "scheduler": "dpm++", "seed": 3}


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    demo, service = launch_tiny_app(
        tmp_path_factory.mktemp("sessions"), max_pose_frames=6, max_finetune_steps=4
    )
    yield demo.local_url
    demo.close()
    service.sessions.close_all()


def _path(output) -> str:
    """A file output's local path (video outputs come as {"video": path, ...})."""
    return output["video"] if isinstance(output, dict) else output


def _frames(path: str) -> tuple[int, float, tuple[int, int]]:
    reader = imageio_ffmpeg.read_frames(path)
    meta = next(reader)
    count = sum(1 for _ in reader)
    return count, meta["fps"], meta["size"]


def _extract(client: Client):
    return client.predict(
        handle_file(PHOTO), [], handle_file(VIDEO), 0, 0, 0, 6, True, api_name="/extract_poses"
    )


def test_endpoints_have_stable_names(app_url):
    names = set(
        Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    )
    assert {"/extract_poses", "/finetune", "/preview", "/guidance_grid", "/render"} <= names


def test_whole_flow_through_named_endpoints(app_url):
    client = Client(app_url, verbose=False)
    video, subject, message, *_ = _extract(client)
    assert "6 pose frames at 8 fps" in message
    assert _frames(_path(video))[0] == 6 and Path(subject).is_file()

    status, download = client.predict(
        handle_file(PHOTO), [], "LoRA (smaller and faster)", 1, 1, api_name="/finetune"
    )
    assert "Finetuned" in status and Path(download).suffix == ".zip"

    image, used = client.predict(handle_file(PHOTO), [], 2, *TUNE.values(), api_name="/preview")
    assert Path(image).is_file() and "seed 3" in used and "finetuned subject" in used

    grid = client.predict(handle_file(PHOTO), [], 2, "4, 8", "1", 2, "dpm++", 0, api_name="/guidance_grid")
    assert Path(grid).is_file()

    job = client.submit(handle_file(PHOTO), [], 0, 5, *TUNE.values(), False, api_name="/render")
    progress = []
    while not job.done():
        status = job.status()
        if status.progress_data:
            progress.append(status.progress_data[0].index)
        time.sleep(0.05)
    result_video, frames_zip, message = job.result()
    count, fps, size = _frames(_path(result_video))
    assert (count, fps, size) == (6, 8.0, (64, 64))
    assert Path(frames_zip).suffix == ".zip" and "Rendered 6 frames" in message
    assert progress, "progress updates reached the client"


def test_two_clients_cannot_see_each_other(app_url):
    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    _extract(alice)
    with pytest.raises(Exception, match="no poses yet"):
        bob.predict(handle_file(PHOTO), [], 0, *TUNE.values(), api_name="/preview")
    # Bob's own work does not replace Alice's: both render from their own sessions.
    _extract(bob)
    a_video, _, _ = alice.predict(handle_file(PHOTO), [], 0, 1, *TUNE.values(), False, api_name="/render")
    b_video, _, _ = bob.predict(handle_file(PHOTO), [], 0, 0, *TUNE.values(), False, api_name="/render")
    assert _frames(_path(a_video))[0] == 2 and _frames(_path(b_video))[0] == 1


def test_missing_model_page_explains_setup(tmp_path, monkeypatch):
    """No model: the page shows how to get and convert the weights instead of crashing."""
    import gradio as gr

    from app import create_demo, parse_args
    from dreampose.app.service import AppService
    from dreampose.loading import resolve_model

    monkeypatch.delenv("DREAMPOSE_MODEL", raising=False)
    assert resolve_model(None) == "models/dreampose"
    monkeypatch.setenv("DREAMPOSE_MODEL", "tiny")
    assert resolve_model(parse_args([]).model) == "tiny"
    assert parse_args(["--model", "x", "--port", "7000", "--share"]).port == 7000
    demo = create_demo(AppService(str(tmp_path / "missing"), session_root=tmp_path))
    texts = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("dreampose convert" in t and "--model tiny" in t for t in texts)
    assert not any(isinstance(b, gr.Button) for b in demo.blocks.values())
