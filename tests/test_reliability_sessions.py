"""Sessions never lose running work, and nothing a user made outlives its session or the server.

Through the real server on 127.0.0.1 (``gradio_client``): a render longer than the idle
timeout is not swept from under itself while another user's requests arrive; closing the
tab mid-render ends the render first and then deletes everything, with nothing written
afterwards; Gradio's own cache is emptied after its lifetime; and stopping the server with
Ctrl-C or SIGTERM deletes the session folders and Gradio's cache. The session store's rules
are also checked directly.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from dreampose.app.examples import example_pairs
from dreampose.app.sessions import SessionClosed, SessionStore
from tests.helpers.app import (
    PHOTO,
    VIDEO,
    app_process,
    files_in,
    launch_tiny_app,
    stop_app,
    wait_for,
)
from tests.helpers.clock import FakeClock

TTL = 60.0  # seconds of idleness before a session is deleted, on the tests' own clock
# frames 0..3 at sI 8, sP 3 with 25 dpm++ steps, seed 0, no side-by-side video, no sound
RENDER = dict(
    first=0, last=3, s_i=8, s_p=3, steps=25, sampler="dpm++", seed=0, side_by_side=False, keep_sound=False
)


def _extract(client: Client) -> None:
    client.predict(
        photo=handle_file(PHOTO), driving_video=handle_file(VIDEO), max_frames=6, api_name="/extract_poses"
    )


def _preview(client: Client, steps: int = 2):
    return client.predict(
        frame=0, s_i=8, s_p=3, steps=steps, sampler="dpm++", seed=0, fast=False, api_name="/preview"
    )


@pytest.fixture
def short_ttl_app(tmp_path):
    """The app with a 60 s idle timeout on a clock the test moves, swept in the background
    (every 0.1 s of real time) as ``app.py`` does, two jobs at once."""
    clock = FakeClock()
    demo, service = launch_tiny_app(
        tmp_path / "sessions",
        concurrency=2,
        sweep_every=0.1,
        session_ttl_s=TTL,
        max_pose_frames=6,
        clock=clock,
    )
    yield demo, service, clock
    demo.close()
    service.close()


# ----------------------------------------------------------------------------- through the server
@pytest.mark.slow
def test_a_render_longer_than_the_idle_timeout_is_never_swept(short_ttl_app):
    demo, service, clock = short_ttl_app
    alice, bob = Client(demo.local_url, verbose=False), Client(demo.local_url, verbose=False)
    _extract(alice)
    session = service.sessions.find(alice.session_hash)
    folder = session.folder

    job = alice.submit(**RENDER, api_name="/render")
    wait_for(lambda: "render" in session.jobs, 60, "the render to start")
    clock.advance(2 * TTL)  # by the time her render started, Alice's session is now "idle"
    assert "render" in session.jobs, "the render ended too soon to prove anything"
    with pytest.raises(Exception, match="add a photo"):  # Bob's request sweeps the sessions too
        _preview(bob)
    _, video, _, frames_zip, message = job.result(timeout=300)
    assert "Rendered frames 0 to 3 (4 frames" in message and Path(frames_zip).is_file()

    # Idleness counts from the end of the render: her next step finds her poses.
    image, used = _preview(alice)
    assert Path(image).is_file() and "Frame 0" in used
    assert folder.is_dir()
    # And once really idle, the background sweep deletes the session and all its files.
    clock.advance(2 * TTL)
    wait_for(lambda: not folder.exists(), 10, "the idle session to be deleted")
    assert service.sessions.find(alice.session_hash) is None


@pytest.mark.slow
def test_closing_the_tab_mid_render_ends_the_render_then_deletes_everything(tmp_path):
    demo, service = launch_tiny_app(tmp_path / "sessions", concurrency=2, max_pose_frames=6)
    try:
        alice = Client(demo.local_url, verbose=False)
        _extract(alice)
        session = service.sessions.find(alice.session_hash)
        folder = session.folder
        job = alice.submit(**RENDER, api_name="/render")
        wait_for(lambda: list(folder.glob("renders/*/frames/*.png")), 120, "the first rendered frame")
        assert "render" in session.jobs and len(list(folder.glob("renders/*/frames/*.png"))) < 4

        # A browser tab holds this connection open; closing the tab drops it, and Gradio
        # then runs the page's unload event (end_session) for that session.
        with httpx.stream("GET", alice.heartbeat_url.format(session_hash=alice.session_hash)) as beat:
            next(beat.iter_lines())
        wait_for(lambda: not folder.exists(), 60, "the closed session's folder to be deleted")
        with pytest.raises(Exception):  # noqa: B017 - the render ended early; its files are gone
            job.result(timeout=60)
        time.sleep(1.0)  # a render still running would write its next frame by now
        assert files_in(service.sessions.root) == [], "something was written after the cleanup"
        assert not list(service.sessions.root.iterdir()), "an orphan session folder appeared"
    finally:
        demo.close()
        service.close()


EXAMPLE_NAMES = {
    Path(f).name for pair in example_pairs() for f in pair
}  # the page's examples: Gradio keeps them cached


def _someones_photo(folder: Path) -> Path:
    """A photo that is not the page's example (whose cached copy Gradio keeps on purpose)."""
    picture = np.asarray(Image.open(PHOTO).convert("RGB")).copy()
    picture[0, 0] = (1, 2, 3)
    Image.fromarray(picture).save(folder / "someone.png")
    return folder / "someone.png"


@pytest.mark.slow
def test_gradio_cache_is_emptied_after_its_lifetime(tmp_path):
    """Gradio keeps its own copy of every upload and result; they go after ``cache_ttl_s``."""
    photo = _someones_photo(tmp_path)
    demo, service = launch_tiny_app(tmp_path / "sessions", cache_ttl_s=3.0)
    try:
        client = Client(demo.local_url, verbose=False)
        with pytest.raises(Exception, match="no poses yet"):  # a quick request that uploads a photo
            client.predict(
                frame=0, steps=2, sampler="dpm++", fast=False, photo=handle_file(photo), api_name="/preview"
            )
        examples = set().union(*(getattr(b, "keep_in_cache", set()) for b in demo.blocks.values()))
        cached = [Path(f) for f in set().union(*demo.temp_file_sets) - examples]
        assert any(f.name == photo.name for f in cached), cached
        wait_for(lambda: not any(f.exists() for f in cached), 20, "Gradio's cached files to go")
    finally:
        demo.close()
        service.close()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_server_deletes_sessions_and_gradio_cache(tmp_path, stop):
    """`python app.py` run for real: after Ctrl-C or `kill`, none of the users' files remain."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    with app_process(temp, temp / "gradio") as (server, url):
        client = Client(url, verbose=False)
        photo = _someones_photo(tmp_path)
        with pytest.raises(Exception, match="no poses yet"):  # a session with the uploaded photo in it
            client.predict(
                frame=0, steps=2, sampler="dpm++", fast=False, photo=handle_file(photo), api_name="/preview"
            )
        assert list(temp.glob("dreampose-sessions-*/*/photos/*.png")), "the session kept the photo"
        assert list((temp / "gradio").rglob(photo.name)), "Gradio cached the upload"
        output = stop_app(server, stop)
    assert server.returncode in (0, -stop), output
    # Only Gradio's copies of the page's own example files may stay (they are not users' files).
    left = [f for f in files_in(temp) if f.name not in EXAMPLE_NAMES]
    assert left == [], f"left behind: {left}\n{output}"


# ----------------------------------------------------------------------------- the store's rules
def test_a_session_with_a_running_job_is_never_swept(tmp_path):
    clock = FakeClock()
    store = SessionStore(tmp_path, ttl_s=10, clock=clock)
    session = store.get("busy")
    with session.job("render"):
        clock.advance(50)
        store.sweep()
        assert session.folder.is_dir() and store.find("busy") is session
    clock.advance(5)
    store.sweep()  # idle for less than the TTL since the job ended
    assert session.folder.is_dir()
    clock.advance(50)
    store.sweep()
    assert not session.folder.exists() and store.find("busy") is None


def test_closing_a_session_cancels_its_job_and_waits_for_it(tmp_path):
    store = SessionStore(tmp_path)
    session = store.get("tab")
    started, written = threading.Event(), []

    def render() -> None:
        with session.job("render") as cancel:
            frame = session.path("renders/1/frame_00000.png")
            started.set()
            while not cancel.wait(0.01):
                pass
            time.sleep(0.2)  # finishing the current step after the cancel
            written.append(frame.write_bytes(b"x"))

    worker = threading.Thread(target=render)
    worker.start()
    started.wait(5)
    store.close("tab")  # returns only after the job ended
    assert written and not session.folder.exists()
    worker.join(5)
    with pytest.raises(SessionClosed):
        session.path("late.png")  # a closed session refuses new files ...
    with pytest.raises(SessionClosed), session.job("render"):
        pass  # ... and new jobs
    assert list(tmp_path.iterdir()) == []


def test_what_a_session_keeps_is_written_whole_and_read_back(tmp_path):
    """Facts, status lines, the current subject and the last grid live in the session's folder,
    each written atomically (no temporary file is left), and read back by any later step."""
    from dreampose.rendering.grid import GuidanceGrid, grid_mosaic

    session = SessionStore(tmp_path).get("tab")
    session.remember(photo="My Photo!.jpg", sound=None)
    session.remember(video="dance")  # adds to what was remembered
    assert session.recall() == {"photo": "My Photo!.jpg", "sound": None, "video": "dance"}
    assert (session.photo_name, session.video_name) == ("My-Photo", "dance")
    session.save_status("render", "**Error:** the disk is full.")
    assert (
        session.load_status("render") == "**Error:** the disk is full." and session.load_status("poses") == ""
    )
    assert session.current_subject() is None
    subject = session.new_subject_folder()
    subject.mkdir()
    session.use_subject(subject)
    assert session.current_subject() == subject
    cells = [[np.zeros((8, 8, 3), np.uint8)] * 2] * 2
    _, layout = grid_mosaic(cells, [2, 4], [1, 3])
    session.save_grid(GuidanceGrid(np.zeros((1, 1, 3), np.uint8), cells, [2.0, 4.0], [1.0, 3.0], layout))
    y, x = layout.origin(1, 0)
    assert session.grid_scales_at(x + 1, y + 1) == (4.0, 1.0) and session.grid_scales_at(0, 0) is None
    assert not [p for p in session.folder.rglob("*") if ".tmp" in p.name], "no temporary file is left"
