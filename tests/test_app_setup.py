"""The app started with no model and downloads allowed: the page opens at once, sets the
official model up in the background with visible progress (what, how much, time left), and
becomes usable without a restart.

Google Drive and the Hub are stood in for by a local HTTP server (throttled, so the progress
can be seen) serving tiny official-format checkpoints, and tiny Stable Diffusion and CLIP
folders; the app is configured exactly as a user would, through ``build_service`` and the
``DREAMPOSE_*`` environment variables.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.helpers.app import PHOTO, VIDEO, launch, one_torch_thread
from tests.helpers.download import FileServer, official_files, zip_bytes

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture
def setting_up(tmp_path, monkeypatch):
    """(page url, service, release) of an app whose model is being set up from the local stand-ins.

    The base model's download crawls (it would take a minute) until ``release()`` lets it finish,
    so the checks made while it runs cannot come too late on a busy machine."""
    from app import CSS, build_service, create_demo, parse_args
    from tests.helpers.poses import RedBoxExtractor

    official = official_files(tmp_path / "official")
    with FileServer() as server:
        data = zip_bytes(
            {"checkpoints/unet_epoch_20.pth": official.unet, "checkpoints/adapter_20.pth": official.adapter}
        )
        url = server.add("base.zip", data, bytes_per_second=len(data) / 60)
        monkeypatch.chdir(tmp_path)  # no models/dreampose here
        for name in ("DREAMPOSE_MODEL", "DREAMPOSE_NO_DOWNLOAD"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DREAMPOSE_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("DREAMPOSE_BASE_SOURCE", url)
        monkeypatch.setenv("DREAMPOSE_SD_SOURCE", str(official.sd))
        monkeypatch.setenv("DREAMPOSE_CLIP_SOURCE", str(official.clip))
        service = build_service(
            parse_args([]), canvas=(64, 64), extractor=RedBoxExtractor(), session_root=tmp_path / "sessions"
        )
        demo, _ = launch(create_demo(service), service, CSS)

        def release() -> None:
            server.behaviour["base.zip"].bytes_per_second = None

        yield demo.local_url, service, release
        demo.close()
        service.close()


def test_the_page_sets_the_model_up_and_is_usable_without_restart(setting_up, tmp_path):
    url, service, release = setting_up
    assert service.setup is not None and service.setting_up
    client = Client(url, verbose=False)
    # Meanwhile: the poses (the bundled example needs no model) ...
    status = client.predict(handle_file(PHOTO), handle_file(VIDEO), api_name="/extract_poses")[2]
    assert "pose frames at 8 fps" in status
    # ... while the steps that need the model say why they wait, with the setup's progress.
    with pytest.raises(
        Exception, match=r"still being set up \(Step 1 of 4: getting the DreamPose base model"
    ):
        client.predict(api_name="/preview")

    if shutil.which(CHROMIUM):
        watch_the_page(url, release)
    release()
    final = service.setup.wait(180)
    assert final.state == "ready", final.error
    assert final.model == tmp_path / "cache" / "models" / "base" and service.model == str(final.model)

    # The same server, no restart: the model steps work now.
    image, status = client.predict(api_name="/preview")
    assert np.asarray(Image.open(image)).shape == (64, 64, 3)
    assert status.startswith("Frame 0: seed 0, sI 8, sP 3, 25 dpm++ steps, the base model")


def watch_the_page(url: str, release) -> None:
    """The page opens while the model downloads: the banner says what, how much and how long;
    the model's buttons wait, then work once the banner says the model is ready."""
    from playwright.sync_api import sync_playwright

    from tests.test_app_browser import CHROMIUM_ARGS, shot

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(180_000)
        page.goto(url)
        banner = page.locator("#setup-status")
        banner.filter(has_text="left").first.wait_for()
        text = banner.inner_text()
        assert "Setting up the DreamPose model" in text and "Step 1 of 4" in text and " of " in text, text
        assert page.locator("#preview-btn").is_disabled() and page.locator("#render-btn").is_disabled()
        assert not page.locator("#extract-btn").is_disabled()
        shot(page, "00_model_setup")
        page.locator("#photo input[type=file]").set_input_files(PHOTO)
        page.locator("#driving input[type=file]").set_input_files(VIDEO)
        page.locator("#driving video").first.wait_for()
        page.click("#extract-btn")
        page.locator("#pose-status").filter(has_text="pose frames").wait_for()
        release()
        banner.filter(has_text="The DreamPose model is ready").wait_for()
        page.locator("#preview-btn:not([disabled])").wait_for()
        page.click("#preview-btn")
        page.locator("#preview-status").filter(has_text="Frame 0: seed 0").wait_for()
        browser.close()
