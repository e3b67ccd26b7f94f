"""The launched app, driven through its named API endpoints with ``gradio_client``, on the
values the page itself starts with: after the two uploads, every call leaves every other
parameter at its default.

The app runs in this process on 127.0.0.1 with the tiny model (the bundled example needs no
detector). One client goes through the whole flow; a second must not see the first one's work.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.helpers.app import PHOTO, VIDEO, launch_tiny_app, one_torch_thread
from tests.helpers.models import tiny_lora_subject

pytestmark = pytest.mark.slow

POSE_FRAMES = 6
ENDPOINTS = {"/extract_poses", "/finetune", "/preview", "/guidance_grid", "/render"}
CANCELS = {"/cancel_poses", "/cancel_finetune", "/cancel_preview", "/cancel_render"}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    demo, service = launch_tiny_app(
        tmp_path_factory.mktemp("sessions"), max_pose_frames=POSE_FRAMES, max_finetune_steps=4
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


def _png(path: str) -> np.ndarray:
    assert Path(path).read_bytes().startswith(b"\x89PNG"), f"{path} is not a PNG"
    return np.asarray(Image.open(path).convert("RGB"))


def _extract(client: Client):
    return client.predict(handle_file(PHOTO), handle_file(VIDEO), api_name="/extract_poses")


def test_endpoints_are_named_with_named_outputs_and_optional_extras(app_url):
    api = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(api) >= ENDPOINTS | CANCELS
    for name in ENDPOINTS:
        labels = [r["label"] for r in api[name]["returns"]]
        assert not [label for label in labels if label.startswith("value_")], (name, labels)
    assert [r["label"] for r in api["/extract_poses"]["returns"]] == [
        "Poses (before | after aligning)", "The photo and its own pose", "Pose status",
        "Frame to preview", "First frame", "Last frame",
    ]  # fmt: skip
    required = {
        name: [p["parameter_name"] for p in api[name]["parameters"] if not p["parameter_has_default"]]
        for name in ENDPOINTS
    }
    assert required == {
        "/extract_poses": ["photo", "driving_video"],
        "/finetune": [],
        "/preview": [],
        "/guidance_grid": [],
        "/render": [],
    }


def test_the_whole_flow_on_defaults(app_url):
    client = Client(app_url, verbose=False)
    video, subject, status, frame, first, last = _extract(client)
    assert f"{POSE_FRAMES} pose frames at 8 fps, aligned to the photo" in status
    assert (frame, first, last) == (0, 0, POSE_FRAMES - 1) and all(
        type(v) is int for v in (frame, first, last)
    )
    assert _frames(_path(video))[0] == POSE_FRAMES
    photo_and_pose = _png(subject)
    assert photo_and_pose.shape == (64, 64 + 4 + 64, 3) and photo_and_pose[:, 68:].any()

    status, download = client.predict(api_name="/finetune")  # defaults: as many steps as allowed (4)
    assert status.startswith("Finetuned on 1 photo(s): 4 steps in")
    assert Path(download).name == "dreampose_subject_example_photo_full.zip"
    with zipfile.ZipFile(download) as z:
        assert any(n.endswith("model_index.json") for n in z.namelist())

    image, status = client.predict(api_name="/preview")
    assert _png(image).shape == (64, 64, 3) and Path(image).name.endswith("_seed0_frame0.png")
    assert status == "Frame 0: seed 0, sI 8, sP 3, 5 dpm++ steps, the finetuned subject."
    last_frame = client.predict(frame=POSE_FRAMES - 1, api_name="/preview")[1]  # any frame of the poses
    assert last_frame.startswith(f"Frame {POSE_FRAMES - 1}: seed 0")

    grid, status = client.predict(api_name="/guidance_grid")
    assert _png(grid).shape[0] > 3 * 64 and _png(grid).shape[1] > 3 * 64  # 3 x 3 cells plus labels
    assert "rows sI 4, 8, 12; columns sP 1, 3, 5" in status

    job = client.submit(api_name="/render")
    progress = []
    while not job.done():
        status_now = job.status()
        if status_now.progress_data:
            progress.append(status_now.progress_data[0].desc)
        time.sleep(0.05)
    live, result, side, frames_zip, status = job.result()
    assert len(job.outputs()) > 1, "finished frames came before the video"
    assert _png(live).shape == (64, 64, 3)
    assert _frames(_path(result)) == (POSE_FRAMES, 8.0, (64, 64))
    assert _frames(_path(side)) == (POSE_FRAMES, 8.0, (3 * 64 + 8, 64))
    assert Path(_path(result)).name == "dreampose_example_photo_example_dance_sI8_sP3_seed0.mp4"
    with zipfile.ZipFile(frames_zip) as z:
        assert sorted(z.namelist()) == [f"frame_{i:05d}.png" for i in range(POSE_FRAMES)]
    assert status.startswith(f"Rendered frames 0 to {POSE_FRAMES - 1} ({POSE_FRAMES} frames at 8 fps).")
    assert any(text and text.startswith("Rendering frame") for text in progress), progress


def test_a_local_lora_subject_folder_runs_in_the_page_as_in_the_cli(app_url, tmp_path):
    """`--model SUBJECT_FOLDER` of a LoRA subject (what `dreampose finetune --lora-rank` writes):
    the page opens on it and its steps render with the subject applied onto its base."""
    subject = tiny_lora_subject(tmp_path / "subject")
    demo, service = launch_tiny_app(tmp_path / "sessions", model=str(subject), max_pose_frames=POSE_FRAMES)
    try:
        assert service.status.ready and service.is_tiny  # its base is the tiny model: test mode
        client = Client(demo.local_url, verbose=False)
        assert "/preview" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        _extract(client)
        image, status = client.predict(api_name="/preview")
        assert status == "Frame 0: seed 0, sI 8, sP 3, 5 dpm++ steps, the base model (not finetuned)."
        from_subject = _png(image)
    finally:
        demo.close()
        service.close()
    base = Client(app_url, verbose=False)  # the same request on the tiny model itself
    _extract(base)
    from_base = _png(base.predict(api_name="/preview")[0])
    assert from_subject.shape == from_base.shape == (64, 64, 3)
    assert not np.array_equal(from_subject, from_base), "the subject's weights were applied"


def test_photos_reach_the_photo_loader_as_uploaded(app_url, tmp_path):
    """The upload is not decoded by Gradio first: a damaged photo gets the loader's own sentence
    (not Gradio's generic "upstream" error), and a transparent background is put onto white as
    the CLI does (Gradio's RGB conversion made it black)."""
    client = Client(app_url, verbose=False)
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(Exception, match="The subject photo is not a picture this app can read"):
        client.predict(handle_file(str(damaged)), handle_file(VIDEO), api_name="/extract_poses")

    rgba = np.zeros((64, 64, 4), np.uint8)  # fully transparent (and black underneath) ...
    rgba[16:56, 24:40] = (230, 20, 20, 255)  # ... around an opaque red "person"
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut_out.png")
    subject = client.predict(
        handle_file(str(tmp_path / "cut_out.png")), handle_file(VIDEO), api_name="/extract_poses"
    )[1]
    photo = _png(subject)[:, :64]
    assert (photo[2, 2] == 255).all() and (photo[32, 32] == (230, 20, 20)).all(), (photo[2, 2], photo[32, 32])
    import app

    assert not Path(app.__file__).with_suffix(".pyi").exists(), "a Gradio component subclass wrote app.pyi"


def test_two_clients_cannot_see_each_other(app_url):
    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    _extract(alice)
    with pytest.raises(Exception, match="no poses yet"):
        bob.predict(photo=handle_file(PHOTO), api_name="/preview")
    # Bob's own work does not replace Alice's: both render from their own sessions.
    bob.predict(handle_file(PHOTO), handle_file(VIDEO), 0, 0, 0, 2, api_name="/extract_poses")
    a_video = alice.predict(steps=1, first=0, last=1, side_by_side=False, api_name="/render")[1]
    b_video = bob.predict(steps=1, side_by_side=False, api_name="/render")[1]
    assert _frames(_path(a_video))[0] == 2 and _frames(_path(b_video))[0] == 2


def test_without_a_model_and_downloads_off_the_page_explains_setup(tmp_path, monkeypatch):
    """No model, no download: the page shows how to get and convert the weights instead of crashing."""
    import gradio as gr

    from app import build_service, create_demo, parse_args
    from dreampose.runtime.references import chosen_model

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DREAMPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DREAMPOSE_MODEL", raising=False)
    monkeypatch.delenv("DREAMPOSE_NO_DOWNLOAD", raising=False)
    assert chosen_model(None) == "models/dreampose"
    monkeypatch.setenv("DREAMPOSE_MODEL", "tiny")
    assert chosen_model(parse_args([]).model) == "tiny"
    monkeypatch.delenv("DREAMPOSE_MODEL")
    assert parse_args(["--model", "x", "--port", "7000", "--share"]).port == 7000

    for argv, env in ((["--no-download"], None), ([], "1")):
        if env:
            monkeypatch.setenv("DREAMPOSE_NO_DOWNLOAD", env)
        service = build_service(parse_args(argv), session_root=tmp_path / "sessions")
        assert service.setup is None and not service.status.ready
        demo = create_demo(service)
        texts = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
        assert any("dreampose convert" in t and "--model tiny" in t for t in texts)
        assert not any(isinstance(b, gr.Button) for b in demo.blocks.values())
        service.close()


def test_a_users_mistake_is_one_line_in_the_terminal_not_a_traceback(app_url, capfd, caplog):
    """The server's terminal shows a refused request as one log line; tracebacks are kept for
    real faults (Gradio prints one for every error it is handed unless told not to)."""
    capfd.readouterr()
    with caplog.at_level("INFO", logger="dreampose.app"), pytest.raises(Exception, match="no poses yet"):
        Client(app_url, verbose=False).predict(frame=0, photo=handle_file(PHOTO), api_name="/preview")
    printed = capfd.readouterr()
    assert "Traceback" not in printed.out + printed.err, printed.err
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused: ")]
    assert len(refused) == 1 and "no poses yet" in refused[0], refused
