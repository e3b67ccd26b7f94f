"""Concurrent requests through the real server cannot disturb each other.

The app runs on 127.0.0.1 with ``--concurrency 3``-style queue settings (three jobs at
once) and three ``gradio_client`` clients, one session each. Their previews, with different and
with equal samplers, run at the same time and must give exactly the pictures the same
requests give one after another. (With one scheduler object shared by all calls they
failed with IndexError or "Number of inference steps is 'None'", or returned wrong
pictures.)
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.helpers.app import PHOTO, VIDEO, launch_tiny_app

pytestmark = pytest.mark.slow

STEPS = 10  # enough for the previews to overlap, few enough to stay fast
# (frame, sI, sP, sampler, seed): two samplers that keep state between steps (pndm, dpm++),
# one of them twice with the same request.
REQUESTS = [
    (1, 8, 3, "dpm++", 1),
    (3, 6, 2, "pndm", 2),
    (1, 8, 3, "dpm++", 1),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    demo, service = launch_tiny_app(
        tmp_path_factory.mktemp("sessions"), concurrency=len(REQUESTS), max_pose_frames=6
    )
    clients = [Client(demo.local_url, verbose=False) for _ in REQUESTS]
    for client in clients:  # poses for every session (one after another: not what is tested)
        client.predict(
            photo=handle_file(PHOTO),
            driving_video=handle_file(VIDEO),
            max_frames=6,
            api_name="/extract_poses",
        )
    yield service, clients
    demo.close()
    service.close()


def _preview(client: Client, request) -> np.ndarray:
    frame, s_i, s_p, sampler, seed = request
    image, _ = client.predict(
        frame=frame,
        s_i=s_i,
        s_p=s_p,
        steps=STEPS,
        sampler=sampler,
        seed=seed,
        fast=False,
        api_name="/preview",
    )
    return np.asarray(Image.open(image).convert("RGB"))


class PeakPreviews:
    """Counts how many sessions run a preview at the same moment (from their jobs)."""

    def __init__(self, service, clients) -> None:
        self.sessions = [service.sessions.find(c.session_hash) for c in clients]
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum("preview" in s.jobs for s in self.sessions))
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def test_concurrent_previews_equal_the_same_previews_one_after_another(app):
    service, clients = app
    alone = [_preview(c, r) for c, r in zip(clients, REQUESTS, strict=True)]
    assert np.array_equal(alone[0], alone[2]), "the same request gives the same picture"
    assert not np.array_equal(alone[0], alone[1])

    for order in (list(range(len(REQUESTS))), list(reversed(range(len(REQUESTS))))):
        with PeakPreviews(service, clients) as peak, ThreadPoolExecutor(len(REQUESTS)) as pool:
            futures = {i: pool.submit(_preview, clients[i], REQUESTS[i]) for i in order}
            together = {i: f.result(timeout=300) for i, f in futures.items()}
        assert peak.peak >= 2, "the previews did not overlap, so this run proved nothing"
        for i, picture in together.items():
            diff = np.abs(picture.astype(int) - alone[i].astype(int)).max()
            assert diff == 0, f"request {REQUESTS[i]} differs from its sequential result by {diff}"


def test_one_concurrency_limit_covers_every_model_step_of_every_client(tmp_path):
    """``--concurrency N`` is one limit for all model steps together (as the README says), not
    N of each kind: every step that runs a model queues under one concurrency id whose limit
    is N. (With Gradio's per-event limits, a render and a preview of two clients ran at once.)"""
    from dreampose.app.page.wiring import MODEL_STEPS

    demo, service = launch_tiny_app(tmp_path / "sessions", concurrency=2)
    try:
        steps = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name in MODEL_ENDPOINTS}
        assert set(steps) == MODEL_ENDPOINTS, sorted(steps)
        assert {fn.concurrency_id for fn in steps.values()} == {MODEL_STEPS}
        # Gradio makes one queue per concurrency id, limited by its events' limit: the default, N.
        assert {fn.concurrency_limit for fn in steps.values()} == {"default"}
        assert demo._queue.default_concurrency_limit == 2
    finally:
        demo.close()
        service.close()


MODEL_ENDPOINTS = {"extract_poses", "finetune", "preview", "guidance_grid", "render"}
