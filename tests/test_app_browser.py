"""End to end in a real browser: Debian's Chromium driven by Playwright (never a download).

Uploads the example photo and video, extracts poses, finetunes a few steps, previews a
frame, renders, and checks the mp4 the page plays (frame count = pose frames, fps, size)
and that a progress bar showed. Screenshots of each step go to ``tests/artifacts/``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import imageio_ffmpeg
import pytest

from tests.helpers.app import PHOTO, VIDEO, launch_tiny_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
POSE_FRAMES = 6
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    demo, service = launch_tiny_app(
        tmp_path_factory.mktemp("sessions"), max_pose_frames=POSE_FRAMES, max_finetune_steps=4
    )
    yield demo.local_url
    demo.close()
    service.sessions.close_all()


@pytest.fixture(scope="module")
def page(app_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url)
        yield page
        browser.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _wait_text(page, selector: str, text: str) -> None:
    page.locator(selector).filter(has_text=text).first.wait_for()


def _set_number(page, selector: str, value: int) -> None:
    box = page.locator(f"{selector} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def _click_and_watch_progress(page, button: str, done_selector: str, done_text: str) -> list[str]:
    """Click, then collect progress texts until ``done_text`` appears."""
    page.click(button)
    seen: list[str] = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    done = page.locator(done_selector).filter(has_text=done_text)
    while time.monotonic() < deadline and done.count() == 0:
        for text in page.locator(".progress-text, .progress-level-inner, .meta-text").all_inner_texts():
            if text.strip():
                seen.append(text.strip())
        time.sleep(0.05)
    done.first.wait_for()
    return seen


def test_photo_and_video_to_rendered_mp4(page, tmp_path):
    page.get_by_text("1 · Inputs").wait_for()
    assert page.get_by_text("Test mode: the tiny random model is running").count() == 1
    _shot(page, "01_start")

    # 1. Inputs
    page.locator("#photo input[type=file]").set_input_files(PHOTO)
    page.locator("#driving input[type=file]").set_input_files(VIDEO)
    page.locator("#photo img").first.wait_for()

    # 2. Poses
    progress = _click_and_watch_progress(page, "#extract-btn", "#pose-status", "pose frames")
    _wait_text(page, "#pose-status", f"{POSE_FRAMES} pose frames at 8 fps")
    page.locator("#pose-video video").first.wait_for()
    _shot(page, "02_poses")

    # 3. Finetune a few steps (LoRA)
    page.get_by_label("LoRA (smaller and faster)").check()
    _set_number(page, "#unet-steps", 1)
    _set_number(page, "#vae-steps", 1)
    progress += _click_and_watch_progress(page, "#finetune-btn", "#finetune-status", "Finetuned")
    page.locator("#subject-download").get_by_text(".zip").first.wait_for()
    _shot(page, "03_finetuned")

    # 4. Preview a frame
    _set_number(page, "#steps", 2)
    _click_and_watch_progress(page, "#preview-btn", "#preview-used", "finetuned subject")
    page.locator("#preview-image img").first.wait_for()
    _shot(page, "04_preview")

    # 5. Render
    render_progress = _click_and_watch_progress(page, "#render-btn", "#render-status", "Rendered")
    _shot(page, "05_rendered")
    assert any("Rendering" in t or "/" in t for t in render_progress), (
        f"no progress seen: {render_progress[:5]}"
    )

    src = page.locator("#result-video video").first.get_attribute("src")
    response = page.request.get(src)
    assert response.ok
    mp4 = tmp_path / "result.mp4"
    mp4.write_bytes(response.body())
    reader = imageio_ffmpeg.read_frames(str(mp4))
    meta = next(reader)
    assert sum(1 for _ in reader) == POSE_FRAMES
    assert meta["fps"] == 8.0 and meta["size"] == (64, 64)
    assert progress, "a progress bar showed during extraction or finetuning"
