"""Launching the app on 127.0.0.1 with the tiny model and a fake DensePose, for the app tests."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.helpers import ASSETS

PHOTO = str(ASSETS / "example_photo.png")
VIDEO = str(ASSETS / "example_dance.mp4")


def launch_tiny_app(session_root: Path, concurrency: int = 1, sweep_every: float | None = None, **limits):
    """(demo, service): the real page on a free local port; close with ``demo.close()`` and
    ``service.close()``. ``concurrency``: jobs run at once (``app.py --concurrency``);
    ``sweep_every``: also sweep idle sessions from a background thread, as ``app.py`` does."""
    from app import create_demo
    from dreampose.app.service import AppService
    from dreampose.app.uploads import AppLimits
    from tests.helpers.poses import RedBoxExtractor

    service = AppService(
        "tiny",
        limits=AppLimits(**limits),
        extractor=RedBoxExtractor(),  # the example figure's red shirt is "the person"
        canvas=(64, 64),
        session_root=session_root,
    )
    demo = create_demo(service)
    if sweep_every is not None:
        service.sessions.start_sweeping(sweep_every)
    demo.queue(default_concurrency_limit=concurrency).launch(
        server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True
    )
    return demo, service
