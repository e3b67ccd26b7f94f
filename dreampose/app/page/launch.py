"""Serving the page until Ctrl-C or ``kill``, then leaving nothing of the users behind."""

from __future__ import annotations

import logging
import signal
import time

import gradio as gr

from dreampose.app.page.style import CSS
from dreampose.app.service import AppService

log = logging.getLogger("dreampose.app")


def serve(demo: gr.Blocks, service: AppService, *, concurrency: int = 1, **launch) -> None:
    """Launch ``demo`` (``launch``: Gradio's server_name, server_port, share) and wait; on
    Ctrl-C or SIGTERM, end the running jobs, delete every session folder and Gradio's cache."""
    service.sessions.start_sweeping()  # idle sessions go even when no request comes
    # `kill` (SIGTERM, as service managers and containers stop programs) stops the server the
    # way Ctrl-C does, so the cleanup below runs; Python's default would skip it.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        demo.queue(max_size=20, default_concurrency_limit=concurrency).launch(
            max_file_size=int(service.limits.max_upload_mb * 1e6), prevent_thread_lock=True, css=CSS, **launch
        )
        _serve_until_interrupted(demo)
    finally:
        log.info("stopping: ending running jobs, deleting session folders and Gradio's cached files")
        try:
            service.close()  # running jobs stop, then every session folder is deleted
        finally:  # even after a second Ctrl-C
            demo.close()  # Gradio empties its cache as the server stops (delete_cache)


def _serve_until_interrupted(demo: gr.Blocks) -> None:
    """Wait while the server runs; Ctrl-C or SIGTERM end the wait (Gradio's own wait would
    leave the server half-closed, skipping its cache cleanup)."""
    try:
        while demo.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
