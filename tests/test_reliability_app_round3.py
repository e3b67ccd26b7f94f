"""Reliability, round three (issue 23, the app items), through a real server on 127.0.0.1 with
``gradio_client``: a stopped server leaves nothing of its users in Gradio's cache or the
session root."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest
from gradio_client import Client, handle_file

from dreampose.app import sessions
from dreampose.app.sessions import SessionStore
from tests.helpers import REPO
from tests.helpers.app import PHOTO, VIDEO
from tests.test_reliability_sessions import _files, _free_port, _responds, _wait_for


@pytest.mark.slow
def test_sigterm_after_a_render_leaves_gradio_cache_and_session_root_empty(tmp_path):
    """`python app.py` run for real: poses, a streamed render (video, side-by-side, zip), then
    `kill`: no file of it stays, in Gradio's cache or anywhere in the temporary folder."""
    temp, cache, port = tmp_path / "tmp", tmp_path / "gradio", _free_port()
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), GRADIO_TEMP_DIR=str(cache), GRADIO_ANALYTICS_ENABLED="False")
    server = subprocess.Popen(
        [sys.executable, "app.py", "--model", "tiny", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for(lambda: _responds(url) or server.poll() is not None, 180, "the app to start")
        assert server.poll() is None, server.stdout.read()
        client = Client(url, verbose=False)
        client.predict(
            photo=handle_file(PHOTO),
            driving_video=handle_file(VIDEO),
            max_frames=3,
            api_name="/extract_poses",
        )
        _, video, side_by_side, frames_zip, _ = client.predict(
            first=0, last=1, steps=2, sampler="dpm++", seed=0, keep_sound=False, api_name="/render"
        )
        assert video and side_by_side and frames_zip, "the render gave its three files"
        assert list(temp.glob("dreampose-sessions-*/*/*")), "the session kept the render"
        assert [f for f in _files(cache) if f.suffix == ".mp4"], "Gradio cached the videos"
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode in (0, -signal.SIGTERM), output
    assert _files(cache) == [], f"left in Gradio's cache: {_files(cache)}\n{output}"
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
