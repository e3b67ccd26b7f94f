"""End to end in a real browser: Debian's Chromium driven by Playwright (never a download).

A person's walk through the page on its own defaults: only the two uploads are given, every
other value is what the page starts with. On the way: an error that stays in its step's status
line, a finetuning cancelled from its own Cancel button, progress text that changes, a grid cell
clicked into the sliders, frames that appear while the video renders, and the two videos.
Live tuning: moving the sI slider re-renders the preview by itself; with *Live preview* off the
preview only says it is out of date.
At phone width (390 px, light and dark theme) the uploads stack and nothing scrolls sideways.
Screenshots of each step go to ``tests/artifacts/``.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from tests.helpers.app import PHOTO, VIDEO, launch_tiny_app, one_torch_thread, red_dancer_video

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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
POSE_FRAMES = 12  # the whole example
PART = 8  # frames one render may cover on this server: the 12 poses render in two parts
TIMEOUT_MS = 180_000
TIMER = re.compile(r"(processing \| )?[\d.]+s")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    demo, service = launch_tiny_app(
        tmp_path_factory.mktemp("sessions"), max_pose_frames=POSE_FRAMES, max_render_frames=PART
    )
    yield demo.local_url, service
    demo.close()
    service.sessions.close_all()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app[0])
    page.locator("#extract-btn").wait_for()
    yield page
    page.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def text_of(page, selector: str) -> str:
    """The text of a status line, without Gradio's elapsed-time counter that may still linger."""
    lines = page.locator(selector).first.inner_text().splitlines()
    return "\n".join(line for line in lines if line.strip() and not TIMER.fullmatch(line.strip()))


def wait_text(page, selector: str, text: str) -> None:
    page.locator(selector).filter(has_text=text).first.wait_for()


def progress_texts(page, status: str, until, timeout_s: float = TIMEOUT_MS / 1000) -> list[str]:
    """Every distinct progress text shown over ``status`` until ``until(seen)`` is true (Gradio's
    own elapsed-time counter left out)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    texts = page.locator(f"{status} .progress-text, {status} .progress-level-inner")
    while not until(seen):
        assert time.monotonic() < deadline, f"timed out; progress seen: {seen[-20:]}"
        for text in texts.all_inner_texts():
            text = text.strip()
            if text and not TIMER.fullmatch(text) and (not seen or seen[-1] != text):
                seen.append(text)
        time.sleep(0.05)
    return seen


def disabled(page, selector: str) -> bool:
    return page.locator(selector).first.is_disabled()


def fetch(page, selector: str, target: Path) -> Path:
    src = page.locator(f"{selector} video").first.get_attribute("src")
    response = page.request.get(src)
    assert response.ok, src
    target.write_bytes(response.body())
    return target


def frames_of(path: Path) -> tuple[int, float, tuple[int, int]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return sum(1 for _ in reader), meta["fps"], meta["size"]


def test_a_person_walks_the_whole_page_on_its_defaults(page, tmp_path):
    assert page.get_by_text("Test mode").count() == 1
    shot(page, "01_start")

    # An error: preview before anything is there. It stays in step 4's status line, escaped
    # text and all, after its toast has gone and while other steps run.
    page.click("#preview-btn")
    wait_text(page, "#preview-status", "Error: Please add a photo of the person to animate (step 1).")

    # 1. The uploads: the driving video becomes a player next to the photo.
    page.locator("#photo input[type=file]").set_input_files(PHOTO)
    page.locator("#driving input[type=file]").set_input_files(VIDEO)
    page.locator("#photo img").first.wait_for()
    page.locator("#driving video").first.wait_for()
    assert page.locator("#driving video").first.get_attribute("src")

    # 2. Poses, on the defaults.
    page.click("#extract-btn")
    wait_text(page, "#pose-status", f"{POSE_FRAMES} pose frames at 8 fps, aligned to the photo.")
    assert "example's own poses" in text_of(page, "#pose-status")
    page.locator("#pose-video video").first.wait_for()
    page.locator("#subject-pose img").first.wait_for()
    page.locator(".toast-body").first.wait_for(state="detached", timeout=30_000)
    assert text_of(page, "#preview-status").startswith("Error: Please add a photo"), "the error stayed"
    shot(page, "02_poses")

    # 3. Finetuning on the defaults (the paper's 500 + 1500 steps); cancelled with its own button.
    assert page.locator("#unet-steps input[type=number]").input_value() == "500"
    assert page.locator("#vae-steps input[type=number]").input_value() == "1500"
    page.click("#finetune-btn")
    steps_seen = progress_texts(
        page,
        "#finetune-status",
        lambda seen: len({t for t in seen if t.startswith("Finetuning the UNet")}) >= 2,
    )
    assert disabled(page, "#finetune-btn") and not disabled(page, "#finetune-cancel")
    assert disabled(page, "#extract-btn") is False, "other steps stay usable"
    page.click("#finetune-cancel")
    wait_text(page, "#finetune-status", "Cancelled after")
    status = text_of(page, "#finetune-status")
    assert "of 2000 steps: the partly finetuned subject is kept" in status, status
    assert not disabled(page, "#finetune-btn") and disabled(page, "#finetune-cancel")
    page.locator('#subject-download a[href$="/dreampose_subject_example_photo_full.zip"]').first.wait_for()
    # (The setup phases before the first step are reported too, but on a fast machine they pass
    # between two polls; tests/test_app_service.py checks them in order.)
    assert all("NaN" not in t for t in steps_seen), steps_seen
    shot(page, "03_finetune_cancelled")

    # 4. Preview (fast preset, on by default) and the guidance grid; a click on a cell sets sI, sP.
    page.click("#preview-btn")
    wait_text(page, "#preview-status", "Frame 0: seed 0, sI 8, sP 3, 5 dpm++ steps, the finetuned subject.")
    page.locator("#preview-image img").first.wait_for()
    page.click("#grid-btn")
    wait_text(page, "#preview-status", "Guidance grid of frame 0")
    image = page.locator("#grid-image img").first
    image.wait_for()
    click_grid_cell(page, image, row=2, col=2)  # sI 12, sP 5
    page.wait_for_function(
        "() => document.querySelector('#s-i input[type=number]').value === '12'"
        " && document.querySelector('#s-p input[type=number]').value === '5'"
    )
    shot(page, "04_preview_and_grid")

    # 5. Render on the defaults: as much as one render may cover; frames appear as they finish.
    assert page.locator("#first input").input_value() == "0"
    assert page.locator("#last input").input_value() == str(PART - 1)
    page.click("#render-btn")
    live_src = []

    def rendered(_seen) -> bool:
        src = (
            page.locator("#live-frame img").first.get_attribute("src")
            if page.locator("#live-frame img").count()
            else None
        )
        if src and (not live_src or live_src[-1] != src):
            live_src.append(src)
        return page.locator("#render-status").filter(has_text="Rendered frames").count() > 0

    texts = progress_texts(page, "#render-status", rendered)
    frame_texts = [t for t in texts if t.startswith("Rendering frame")]
    assert len(set(frame_texts)) >= 2, f"the progress text changed while rendering: {texts}"
    assert len(live_src) >= 2, "finished frames appeared one after another while the video rendered"
    status = text_of(page, "#render-status")
    assert (
        status.startswith(f"Rendered frames 0 to {PART - 1}")
        and f"Frames {PART} to {POSE_FRAMES - 1} are next" in status
    )
    # The range moved on to the next part.
    page.wait_for_function(
        f"() => document.querySelector('#first input').value === '{PART}'"
        f" && document.querySelector('#last input').value === '{POSE_FRAMES - 1}'",
        timeout=10_000,
    )
    shot(page, "05_rendered")

    clean = frames_of(fetch(page, "#result-video", tmp_path / "result.mp4"))
    both = frames_of(fetch(page, "#side-video", tmp_path / "side.mp4"))
    assert clean == (PART, 8.0, (64, 64))
    assert both == (PART, 8.0, (3 * 64 + 8, 64))
    # Every step's status line still says what its last run did.
    assert text_of(page, "#pose-status").startswith(f"{POSE_FRAMES} pose frames")
    assert text_of(page, "#finetune-status").startswith("Cancelled after")
    assert text_of(page, "#preview-status").startswith("Guidance grid of frame 0")


def click_grid_cell(page, image, row: int, col: int) -> None:
    """Click the centre of a cell of the 3 x 3 grid of 64-pixel cells, wherever the page shows it."""
    from dreampose.rendering.grid import grid_mosaic

    cells = [[np.zeros((64, 64, 3), np.uint8)] * 3] * 3
    _, layout = grid_mosaic(cells, [4, 8, 12], [1, 3, 5])
    y, x = layout.origin(row, col)
    natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural == [layout.size[1], layout.size[0]]
    box = image.bounding_box()
    scale = min(box["width"] / natural[0], box["height"] / natural[1])  # object-fit: contain
    left = box["x"] + (box["width"] - natural[0] * scale) / 2
    top = box["y"] + (box["height"] - natural[1] * scale) / 2
    page.mouse.click(left + (x + 32) * scale, top + (y + 32) * scale)


def set_slider(page, selector: str, value: str) -> None:
    """Type a value into a slider's number box and leave it: the page sees the slider released."""
    box = page.locator(f"{selector} input[type=number]").first
    box.fill(value)
    box.press("Tab")


def preview_src(page) -> str | None:
    image = page.locator("#preview-image img")
    return image.first.get_attribute("src") if image.count() else None


def test_moving_si_re_renders_the_preview_by_itself(page):
    page.locator("#photo input[type=file]").set_input_files(PHOTO)
    page.locator("#driving input[type=file]").set_input_files(VIDEO)
    page.locator("#driving video").first.wait_for()
    page.click("#extract-btn")
    wait_text(page, "#pose-status", f"{POSE_FRAMES} pose frames at 8 fps, aligned to the photo.")
    assert page.locator("#live-preview input").is_checked(), "live preview is on by default"
    assert preview_src(page) is None

    # Nothing but the slider: the preview renders by itself (Preview frame is never clicked).
    set_slider(page, "#s-i", "12")
    wait_text(page, "#preview-status", "Frame 0: seed 0, sI 12, sP 3, 5 dpm++ steps")
    page.wait_for_function("() => document.querySelector('#preview-image img')")
    first = preview_src(page)
    set_slider(page, "#s-i", "2")
    wait_text(page, "#preview-status", "Frame 0: seed 0, sI 2, sP 3")  # the picture comes with it
    second = preview_src(page)
    assert "_sI12_" in first and "_sI2_" in second, (first, second)
    pixels = [page.request.get(src).body() for src in (first, second)]
    assert pixels[0] != pixels[1], "a new picture, not the old one under a new name"
    assert "out of date" not in text_of(page, "#preview-image"), "the label is plain again"
    shot(page, "07_live_preview")

    # Live preview off: moving a control only marks the picture out of date, until the button.
    page.locator("#live-preview input").uncheck()
    set_slider(page, "#s-p", "5")
    wait_text(page, "#preview-image", "out of date: sP now 5 — press Preview frame")
    assert preview_src(page) == second and "sP 3" in text_of(page, "#preview-status")
    shot(page, "08_live_preview_off_out_of_date")
    page.click("#preview-btn")
    wait_text(page, "#preview-status", "Frame 0: seed 0, sI 2, sP 5")
    page.wait_for_function(
        "() => !document.querySelector('#preview-image').innerText.includes('out of date')"
    )


def test_a_newer_change_cancels_the_preview_still_running(page, monkeypatch):
    """A slow live preview (400 steps) is cancelled by the change after it: it shows nothing,
    and the newer one's picture comes without waiting for the 400 steps."""
    from dreampose.app.steps import render as work

    finished = []  # what each preview the page ran returned: a PNG, or None when cancelled
    real = work.preview

    def preview(*args, **kwargs):
        finished.append(real(*args, **kwargs)[0])
        return finished[-1], "recorded"

    page.locator("#photo input[type=file]").set_input_files(PHOTO)
    page.locator("#driving input[type=file]").set_input_files(VIDEO)
    page.locator("#driving video").first.wait_for()
    page.click("#extract-btn")
    wait_text(page, "#pose-status", f"{POSE_FRAMES} pose frames")
    page.locator("#live-preview input").uncheck()  # set up the slow settings without rendering them
    page.locator("#fast-preview input").uncheck()
    set_slider(page, "#steps", "400")
    monkeypatch.setattr(work, "preview", preview)
    page.locator("#live-preview input").check()

    set_slider(page, "#s-i", "12")  # 400 pndm steps: slow even on the tiny model
    wait_text(page, "#preview-status", "Previewing: ")
    page.locator("#fast-preview input").check()  # the newer change: 5 fast steps
    page.wait_for_function("() => document.querySelector('#preview-image img')")
    assert len(finished) == 2 and finished[0] is None and finished[1] is not None, finished
    assert "_sI12_" in preview_src(page) and "out of date" not in text_of(page, "#preview-image")


def test_an_error_with_markup_shows_in_full(page, app, monkeypatch, tmp_path):
    """Error text is escaped: a message holding ``<urlopen error ...>`` is shown whole, not cut
    where the page would read it as HTML. (The detector's failure is simulated; the page is real.)"""
    from dreampose.app.messages import UserError

    message = (
        "The pose detector (DensePose) could not be loaded: <urlopen error [Errno 111] Connection refused>. "
        "Check the internet connection, or start the app with --densepose-weights pointing at a downloaded copy."
    )

    def unreachable():
        raise UserError(message)

    monkeypatch.setattr(app[1].models, "extractor", unreachable)
    page.locator("#photo input[type=file]").set_input_files(PHOTO)
    page.locator("#driving input[type=file]").set_input_files(str(red_dancer_video(tmp_path / "dance.mp4")))
    page.locator("#driving video").first.wait_for()
    page.click("#extract-btn")
    wait_text(page, "#pose-status", "Error:")
    assert text_of(page, "#pose-status") == f"Error: {message}"
    assert message in page.locator(".toast-body").first.inner_text(), "the toast too"
    assert not disabled(page, "#extract-btn") and disabled(page, "#extract-cancel")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_at_phone_width_the_inputs_stack_and_nothing_overflows(browser, app, theme):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{app[0]}?__theme={theme}")
    page.locator("#photo input[type=file]").set_input_files(PHOTO)
    page.locator("#driving input[type=file]").set_input_files(VIDEO)
    page.locator("#photo img").first.wait_for()
    page.locator("#driving video").first.wait_for()
    photo, driving = (page.locator(s).first.bounding_box() for s in ("#photo", "#driving"))
    assert driving["y"] >= photo["y"] + photo["height"], "the two uploads stack, each full width"
    assert photo["width"] > 300 and driving["width"] > 300
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways at 390 px: {widths}"
    shot(page, f"06_phone_{theme}")
    page.close()
