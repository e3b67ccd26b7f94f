"""Launching the app on 127.0.0.1 with the tiny model, and inputs for the app tests.

The bundled example (``assets/example_*``) ships its own poses, so no detector runs on it.
Tests that need the detector path use :func:`red_dancer_video`: a small synthetic video whose
"person" is a red block, found by the fake DensePose ``RedBoxExtractor`` (fast, no weights).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.helpers import ASSETS, REPO

PHOTO = str(ASSETS / "example_photo.png")
VIDEO = str(ASSETS / "example_dance.mp4")  # 12 frames at 8 fps; its poses ship in assets/


@contextlib.contextmanager
def one_torch_thread():
    """The tiny model's layers are too small to share between threads: on a busy 2-core machine
    a second torch thread made each app step 5 to 50 times slower (measured: a 6-frame render
    took 0.8 s with one thread, 4 to 58 s with two)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def red_dancer_video(
    path: Path, frames: int = 10, fps: float = 10.0, size=(96, 112), sound: bool = False
) -> Path:
    """An H.264 video of a red block (the fake detector's person) stepping right two pixels a
    frame on grey (its left edge at x = 24 + 2 i: even, so 4:2:0 chroma keeps it sharp); with
    ``sound``, a 440 Hz tone from 0.5 s to 0.7 s, else no sound at all."""
    import imageio_ffmpeg

    h, w = size
    video = np.full((frames, h, w, 3), 128, np.uint8)
    for i in range(frames):
        video[i, 16 : h - 10, 24 + 2 * i : 44 + 2 * i] = (255, 0, 0)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "-"]
    if sound:
        seconds = frames / fps
        tone = f"sine=frequency=440:duration={seconds},volume='between(t,0.5,0.7)':eval=frame"
        cmd += ["-f", "lavfi", "-i", tone, "-c:a", "aac", "-shortest"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10", str(path)]
    subprocess.run(cmd, input=video.tobytes(), check=True, timeout=60)
    return path


def sound_onset(video: Path) -> tuple[float, float]:
    """(seconds of sound, when the tone of ``red_dancer_video`` starts) in ``video``'s soundtrack,
    to 10 ms."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "s16le", "-ac", "1"]
    pcm = np.frombuffer(
        subprocess.run([*cmd, "-ar", "8000", "-"], capture_output=True, check=True).stdout, np.int16
    )
    loud = np.flatnonzero(np.abs(pcm.astype(float)).reshape(-1, 80).mean(axis=1) > 1000)
    return len(pcm) / 8000, (loud[0] * 0.01 if len(loud) else -1.0)


def launch_tiny_app(
    session_root: Path,
    canvas=(64, 64),
    concurrency: int = 1,
    sweep_every: float | None = None,
    model: str = "tiny",
    clock=None,
    mcp_server: bool = False,
    **limits,
):
    """(demo, service): the real page on a free local port; close with ``demo.close()`` and
    ``service.close()``. DensePose is the fake ``RedBoxExtractor``; the bundled example needs
    none. ``concurrency``: jobs run at once (``app.py --concurrency``); ``sweep_every``: also
    sweep idle sessions from a background thread, as ``app.py`` does; ``model``: another model
    built on the tiny one (a LoRA subject of it); ``clock``: what idleness is measured on
    (``tests.helpers.clock.FakeClock``)."""
    from app import CSS, create_demo
    from dreampose.app.service import AppService
    from dreampose.app.uploads import AppLimits
    from tests.helpers.poses import RedBoxExtractor

    service = AppService(
        model,
        limits=AppLimits(**limits),
        extractor=RedBoxExtractor(),
        canvas=canvas,
        session_root=session_root,
        **({"clock": clock} if clock is not None else {}),
    )
    demo = create_demo(service)
    if sweep_every is not None:
        service.sessions.start_sweeping(sweep_every)
    return launch(demo, service, CSS, concurrency, mcp_server=mcp_server)


def launch(demo, service, css=None, concurrency: int = 1, **options):
    demo.queue(default_concurrency_limit=concurrency).launch(
        server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, css=css, **options
    )
    return demo, service


# ----------------------------------------------------------------------------- `python app.py` for real
STOP_TIMEOUT_S = 300  # generous: on a busy CI machine (load 4-6 on 2 cores) a server stops slowly


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def responds(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(condition, timeout: float, what: str) -> None:
    """Wait for an event (never for a time): ``timeout`` only bounds a wait that went wrong."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@contextlib.contextmanager
def app_process(temp: Path, cache: Path):
    """``python app.py --model tiny`` as a user starts it, on a free port, with ``TMPDIR=temp``
    and ``GRADIO_TEMP_DIR=cache``; yields (server, url) once it answers. Killed at the end if
    it still runs."""
    port = free_port()
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
        wait_for(lambda: responds(url) or server.poll() is not None, 180, "the app to start")
        assert server.poll() is None, server.stdout.read()
        yield server, url
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def stop_app(server: subprocess.Popen, signum: int) -> str:
    """Send ``signum`` (Ctrl-C or kill) and return the server's output once it has stopped; fails,
    showing that output, if it has not within ``STOP_TIMEOUT_S``."""
    server.send_signal(signum)
    try:
        output, _ = server.communicate(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        output, _ = server.communicate()
        pytest.fail(f"the server did not stop within {STOP_TIMEOUT_S} s of the signal; its output:\n{output}")
    return output
