"""Serving the page until Ctrl-C or ``kill``, then leaving nothing of the users behind."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr

from dreampose.app.page.style import CSS
from dreampose.app.service import AppService

log = logging.getLogger("dreampose.app")
GRADIO_TEMP_DIR = "GRADIO_TEMP_DIR"  # where Gradio keeps its files (its default: $TMPDIR/gradio)


def serve(
    create_demo: Callable[[AppService], gr.Blocks], service: AppService, *, concurrency: int = 1, **launch
) -> None:
    """Build the page with ``create_demo(service)`` and launch it (``launch``: Gradio's
    server_name, server_port, share), then wait; on Ctrl-C or SIGTERM, end the running jobs and
    delete every session folder and every file Gradio wrote for this server."""
    service.sessions.start_sweeping()  # idle sessions go even when no request comes
    # Ctrl-C and `kill` (SIGTERM, as service managers and containers stop programs) only ask the
    # server to stop; the wait below sees the request and the cleanup runs. A KeyboardInterrupt
    # raised wherever the main thread happened to be could be lost (a stop signalled while
    # Gradio's launch was still finishing, on a busy machine, was never seen: the server ran on).
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: _request_stop(stop))
    with own_gradio_cache():
        demo = create_demo(service)
        try:
            demo.queue(max_size=20, default_concurrency_limit=concurrency).launch(
                max_file_size=int(service.limits.max_upload_mb * 1e6),
                prevent_thread_lock=True,
                css=CSS,
                **launch,
            )
            _serve_until_stopped(demo, stop)
        finally:
            log.info("stopping: ending running jobs, deleting session folders and Gradio's cached files")
            try:
                service.close()  # running jobs stop, then every session folder is deleted
            finally:  # even after a second Ctrl-C
                demo.close()


@contextlib.contextmanager
def own_gradio_cache() -> Iterator[Path]:
    """A folder of this server's own inside Gradio's cache, where every file Gradio writes for
    the page goes (uploads, the results it shows, streamed videos, its empty ``tmp*`` files);
    deleted as a whole when the server stops. Gradio's own cleanup deletes only the files it
    keeps a list of, which misses streamed outputs and its temporary files."""
    parent = Path(os.environ.get(GRADIO_TEMP_DIR) or Path(tempfile.gettempdir()) / "gradio")
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="dreampose-", dir=parent))
    before = os.environ.get(GRADIO_TEMP_DIR)
    os.environ[GRADIO_TEMP_DIR] = str(folder)  # read by Gradio as each component and the server start
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if before is None:
            os.environ.pop(GRADIO_TEMP_DIR, None)
        else:
            os.environ[GRADIO_TEMP_DIR] = before


def _serve_until_stopped(demo: gr.Blocks, stop: threading.Event) -> None:
    """Wait while the server runs, until Ctrl-C or SIGTERM ask it to stop (Gradio's own wait
    would leave the server half-closed, skipping its cache cleanup)."""
    while demo.is_running and not stop.wait(0.2):
        pass


def _request_stop(stop: threading.Event) -> None:
    """The first Ctrl-C or SIGTERM asks for a clean stop; a second Ctrl-C interrupts at once."""
    stop.set()
    signal.signal(signal.SIGINT, signal.default_int_handler)
