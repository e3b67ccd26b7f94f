"""Reliability, round three (issue 23, the app items), through a real server on 127.0.0.1 with
``gradio_client``: a stopped server leaves nothing of its users in Gradio's cache or the
session root, and a value of the wrong type or out of range is refused with the project's
own sentence, naming the parameter and what it may be."""

from __future__ import annotations

import io
import json
import signal
import threading
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from dreampose.app import sessions
from dreampose.app.sessions import SessionStore
from tests.helpers.app import PHOTO, VIDEO, app_process, files_in, launch_tiny_app, stop_app, wait_for
from tests.helpers.forged import npz_bomb


@pytest.mark.slow
@pytest.mark.parametrize("when", ["after", "during"])
def test_sigterm_of_the_app_leaves_gradio_cache_and_session_root_empty(tmp_path, when):
    """`python app.py` run for real: poses, then `kill` after a render (its video, side-by-side
    video and zip streamed into Gradio's cache) or during one (after its first frame came): no
    file stays, in Gradio's cache or anywhere in the temporary folder."""
    temp, cache = tmp_path / "tmp", tmp_path / "gradio"
    temp.mkdir()
    with app_process(temp, cache) as (server, url):
        client = Client(url, verbose=False)
        client.predict(photo=handle_file(PHOTO), driving_video=handle_file(VIDEO), api_name="/extract_poses")
        render = dict(first=0, sampler="dpm++", seed=0, keep_sound=False, api_name="/render")
        if when == "after":
            _, video, side_by_side, frames_zip, _ = client.predict(last=2, steps=2, **render)
            assert video and side_by_side and frames_zip, "the render gave its three files"
            assert [f for f in files_in(cache) if f.suffix == ".mp4"], "Gradio cached the videos"
        else:
            job = client.submit(last=11, steps=30, **render)  # 11 more frames to go after the first
            wait_for(lambda: job.outputs() or job.done(), 300, "the render's first frame")
            assert not job.done(), "the render ended before its first frame came"
        assert list(temp.glob("dreampose-sessions-*/*/*")), "the session kept the render"
        output = stop_app(server, signal.SIGTERM)
    assert server.returncode in (0, -signal.SIGTERM), output
    assert files_in(cache) == [], f"left in Gradio's cache: {files_in(cache)}\n{output}"
    # torch keeps its compiler cache there (torchinductor_USER): not a user's file, and not the app's
    left = [p for p in temp.iterdir() if not p.name.startswith("torchinductor_")]
    assert left == [], f"left in the temporary folder: {left}\n{output}"


def test_the_session_root_goes_even_while_a_closed_tab_is_still_being_deleted(tmp_path, monkeypatch):
    """A tab closed as the server stops (Gradio's unload) deletes its folder on another thread;
    the server's cleanup waits for it before removing the root, so no empty root stays."""
    store = SessionStore(tmp_path / "sessions")
    store.get("tab").path("renders/1/frame_00000.png").write_bytes(b"x")
    deleting, release = threading.Event(), threading.Event()
    rmtree = sessions.shutil.rmtree

    def slow_rmtree(path, **kwargs):
        deleting.set()
        release.wait(30)
        rmtree(path, **kwargs)

    monkeypatch.setattr(sessions.shutil, "rmtree", slow_rmtree)
    closing_tab = threading.Thread(target=store.close, args=("tab",))
    closing_tab.start()
    assert deleting.wait(30)
    stopping = threading.Thread(target=store.close_all)
    stopping.start()
    stopping.join(1.0)  # today's code returns at once, before the tab's folder is gone
    release.set()
    closing_tab.join(30)
    stopping.join(30)
    assert not stopping.is_alive()
    assert not store.root.exists(), list(store.root.rglob("*"))


POSE_FRAMES = 6


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    demo, service = launch_tiny_app(
        tmp_path_factory.mktemp("sessions"), max_pose_frames=POSE_FRAMES, max_finetune_steps=4
    )
    yield demo.local_url
    demo.close()
    service.close()


WHOLE = "must be a whole number from"
# (endpoint, the bad parameter, what the sentence says: the parameter, then its range)
BAD_VALUES = [
    ("/preview", {"frame": "abc"}, f"Frame to preview (frame) {WHOLE} 0 to {POSE_FRAMES - 1}; got 'abc'"),
    ("/preview", {"frame": "<b>1</b>"}, "got '&lt;b&gt;1&lt;/b&gt;'"),  # Gradio reads messages as HTML
    ("/preview", {"frame": [1, 2]}, f"(frame) {WHOLE} 0 to {POSE_FRAMES - 1}; got [1, 2]"),
    ("/preview", {"steps": None, "fast": False}, f"Steps (steps) {WHOLE} 1 to 1000; got nothing"),
    ("/preview", {"steps": 2.5, "fast": False}, f"(steps) {WHOLE} 1 to 1000; got 2.5"),
    ("/preview", {"seed": "nan"}, f"Seed (seed) {WHOLE} 0 to 2**63 - 1; got 'nan'"),
    ("/preview", {"s_i": [8, 3]}, "Image guidance sI (s_i) must be a number from 0 to 30; got [8, 3]"),
    ("/preview", {"s_p": "lots"}, "Pose guidance sP (s_p) must be a number from 0 to 30; got 'lots'"),
    ("/guidance_grid", {"seed": -1}, f"(seed) {WHOLE} 0 to 2**63 - 1; got -1"),
    ("/render", {"first": "inf"}, f"First frame (first) {WHOLE} 0 to {POSE_FRAMES - 1}; got 'inf'"),
    ("/render", {"last": "end"}, f"Last frame (last) {WHOLE} 0 to {POSE_FRAMES - 1}; got 'end'"),
    ("/render", {"steps": "abc"}, f"(steps) {WHOLE} 1 to 1000; got 'abc'"),
    ("/finetune", {"unet_steps": None}, f"UNet steps (unet_steps) {WHOLE} 0 to 4; got nothing"),
    ("/finetune", {"vae_steps": [1]}, f"VAE decoder steps (vae_steps) {WHOLE} 0 to 4; got [1]"),
    ("/extract_poses", {"max_frames": "abc"}, f"(max_frames) {WHOLE} 1 to {POSE_FRAMES}; got 'abc'"),
    ("/extract_poses", {"fps": 61}, "Frames per second (fps) must be a number from 0 to 60; got 61"),
    ("/extract_poses", {"start": [0]}, "Start at second (start) must be a number of at least 0; got [0]"),
    # the bundled example's own poses follow the video reader's rules, as an uploaded video does
    (
        "/extract_poses",
        {"start": 1.0, "end": 0.5},
        "End must be after start (in seconds); got start=1, end=0.5",
    ),
    ("/preview", {"sampler": "bogus", "fast": False}, 'Sampler (sampler) must be one of "pndm", "ddim"'),
    (
        "/preview",
        {"sampler": ["ddim"]},
        "Sampler (sampler) must be one of",
    ),  # checked with the fast preset too
    ("/finetune", {"mode": "LoRA"}, 'Mode (mode) must be one of "Full (as in the paper)", "LoRA (smaller'),
    ("/preview", {"fast": "false"}, "Fast preview (fast) must be true or false; got 'false'"),  # not True
    ("/render", {"side_by_side": 0}, "Also a side-by-side video (side_by_side) must be true or false; got 0"),
    ("/extract_poses", {"align": "no"}, "Align poses to the photo (align) must be true or false; got 'no'"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("api_name", "bad", "words"), BAD_VALUES, ids=[f"{a[1:]}-{b}" for a, b, _ in BAD_VALUES]
)
def test_a_wrong_value_through_the_api_gets_the_projects_sentence(app_url, api_name, bad, words):
    client = Client(app_url, verbose=False)
    uploads = (
        {"photo": handle_file(PHOTO), "driving_video": handle_file(VIDEO)}
        if api_name == "/extract_poses"
        else {}
    )
    with pytest.raises(Exception) as refused:
        client.predict(**uploads, **bad, api_name=api_name)
    message = str(refused.value)
    assert words in message, message
    assert "upstream" not in message, message


@pytest.mark.slow
def test_a_render_range_that_runs_backwards_is_named_as_such(app_url):
    client = Client(app_url, verbose=False)
    client.predict(photo=handle_file(PHOTO), driving_video=handle_file(VIDEO), api_name="/extract_poses")
    with pytest.raises(Exception, match=r"The first frame \(3\) comes after the last \(1\)"):
        client.predict(first=3, last=1, steps=2, api_name="/render")


# gradio_client cannot send NaN (JSON has none), but Python's JSON reader on the server takes it.
NAN_CALLS = [
    (
        "preview",
        [0, 8, 3, 10, "dpm++", "NaN", True, None, None],
        f"Seed (seed) {WHOLE} 0 to 2**63 - 1; got nan",
    ),
    (
        "render",
        [8, 3, 10, "dpm++", 0, False, False, "NaN", None, None, None],
        f"First frame (first) {WHOLE} 0 to {POSE_FRAMES - 1}; got nan",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("api_name", "data", "words"), NAN_CALLS, ids=[c[0] for c in NAN_CALLS])
def test_a_nan_sent_as_json_gets_the_projects_sentence(app_url, api_name, data, words):
    body = "[" + ", ".join("NaN" if v == "NaN" else json.dumps(v) for v in data) + "]"
    call = f"{app_url}gradio_api/call/{api_name}"
    posted = httpx.post(call, content='{"data": ' + body + "}", headers={"content-type": "application/json"})
    assert posted.status_code == 200, posted.text
    events = httpx.get(f"{call}/{posted.json()['event_id']}", timeout=120).text
    assert "event: error" in events and words in events, events
    assert "Cannot convert" not in events, events


@pytest.mark.slow
def test_a_deflate_bomb_pose_file_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    """A 0.7 MB .npz whose one frame unpacks to 720 MB (within the app's total of 300 frames x
    8 MiB, but far over the 8 MiB a frame): refused from its headers, having inflated only
    them (counted at the zip reader), with a sentence saying what a frame may be."""
    bomb = npz_bomb(tmp_path / "bomb.npz", 12_000)
    assert bomb.stat().st_size < 2e6
    inflated = []
    read = zipfile.ZipExtFile.read

    def counted_read(self, n=-1):
        data = read(self, n)
        inflated.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counted_read)  # readinto reads through it too
    demo, service = launch_tiny_app(tmp_path / "sessions")  # the default limits: 300 frames
    try:
        client = Client(demo.local_url, verbose=False)
        with pytest.raises(Exception) as refused:
            client.predict(
                photo=handle_file(PHOTO), driving_video=handle_file(bomb), api_name="/extract_poses"
            )
    finally:
        demo.close()
        service.close()
    message = str(refused.value)
    assert "bomb.npz" in message and "8 MiB a frame" in message, message
    assert sum(inflated) < 2**20, f"{sum(inflated) / 1e6:.0f} MB inflated before the refusal"


def _official_zip(path: Path, side: int) -> Path:
    """An official-layout zip of one float32 (2, side, side) frame: U, V of 0.5 in one pixel."""
    uv = np.zeros((2, side, side), np.float32)
    uv[:, 0, 0] = 0.5
    buffer = io.BytesIO()
    np.save(buffer, uv)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("poses/frame_0_densepose.npy", buffer.getvalue())
    return path


def test_an_official_pose_frame_over_8_mib_is_refused_from_its_header(tmp_path):
    """The official layout's frames are bounded one by one too (its 1024 x 1024 float32 frames
    are exactly 8 MiB and pass)."""
    from dreampose.app.uploads import POSE_FRAME_BYTES
    from dreampose.rendering.poses import load_driving_poses

    fits = load_driving_poses(_official_zip(tmp_path / "fits.zip", 1024), max_frame_bytes=POSE_FRAME_BYTES)
    assert fits.uv.shape == (1, 2, 1024, 1024)
    with pytest.raises(
        ValueError, match=r"big.zip would unpack to 9.\d+ MB a frame, more than the 8 MiB a frame"
    ):
        load_driving_poses(_official_zip(tmp_path / "big.zip", 1100), max_frame_bytes=POSE_FRAME_BYTES)


def test_values_that_mean_one_number_are_taken_exactly():
    """Ints stay exact (the largest seed is not rounded up past the limit by a float), texts of
    numbers are numbers, and a whole float is a whole number."""
    from dreampose.app.messages import UserError
    from dreampose.app.page.wiring import SEED, STEPS

    assert SEED.read(2**63 - 1) == 2**63 - 1 and SEED.read(str(2**63 - 1)) == 2**63 - 1
    assert STEPS.read("25") == 25 and STEPS.read(25.0) == 25 and type(STEPS.read(25.0)) is int
    with pytest.raises(UserError, match=r"got 9223372036854775808\."):
        SEED.read(2**63)


SERVER_FILE = {"meta": {"_type": "gradio.FileData"}}  # a file parameter, naming a path on the server
EXTRACT_POSES = [
    "photo",
    "driving_video",
    "fps",
    "start",
    "end",
    "max_frames",
    "align",
    "more_photos",
    "pose_file",
]


def _upload(app_url: str, path: Path) -> dict:
    """A file uploaded as the page (and gradio_client) upload it, as a file parameter."""
    with open(path, "rb") as f:
        sent = httpx.post(f"{app_url}gradio_api/upload", files={"files": (path.name, f)}, timeout=120)
    assert sent.status_code == 200, sent.text
    return {**SERVER_FILE, "path": sent.json()[0]}


def _call_raw(app_url: str, api_name: str, data: list) -> str:
    """The event stream of one call, sent as plain JSON: gradio_client would upload a local
    file named in a parameter itself, which is an upload, not a server path."""
    call = f"{app_url}gradio_api/call/{api_name}"
    posted = httpx.post(call, json={"data": data}, timeout=120)
    assert posted.status_code == 200, posted.text
    return httpx.get(f"{call}/{posted.json()['event_id']}", timeout=600).text


@pytest.mark.slow
@pytest.mark.parametrize("where", ["outside Gradio's folder", "inside Gradio's folder"])
@pytest.mark.parametrize("param", ["photo", "more_photos", "driving_video", "pose_file"])
def test_a_file_on_the_server_is_never_taken_as_an_upload(app_url, tmp_path, param, where):
    """An API client can name any server path as a file ({"path": "/..."}): the page reads only
    files uploaded to it (or its bundled examples), so no file of the server, another tab's
    upload or result included, is read and then shown back (as the photo beside its pose)."""
    from gradio.utils import get_upload_folder

    folder = tmp_path if where.startswith("outside") else Path(get_upload_folder()) / tmp_path.name
    folder.mkdir(parents=True, exist_ok=True)
    secret = folder / ("secret.npz" if param == "pose_file" else "secret.png")
    secret.write_bytes(Path(PHOTO).read_bytes())  # a picture of a person: reading it would succeed
    named = {**SERVER_FILE, "path": str(secret)}
    inputs = {"photo": _upload(app_url, Path(PHOTO)), "driving_video": _upload(app_url, Path(VIDEO))}
    inputs[param] = [named] if param == "more_photos" else named
    defaults = {"align": True}
    events = _call_raw(app_url, "extract_poses", [inputs.get(k, defaults.get(k)) for k in EXTRACT_POSES])
    assert "event: error" in events, events
    if where.startswith("inside"):  # Gradio refuses the outside ones itself, in its own words
        assert "must be a file uploaded to this app" in events, events


@pytest.mark.slow
def test_the_same_uploads_sent_as_json_are_read(app_url):
    """The check above refuses nothing an upload made: the same call with only uploaded files
    extracts the poses."""
    inputs = {"photo": _upload(app_url, Path(PHOTO)), "driving_video": _upload(app_url, Path(VIDEO))}
    events = _call_raw(
        app_url, "extract_poses", [inputs.get(k, True if k == "align" else None) for k in EXTRACT_POSES]
    )
    assert "event: complete" in events, events
