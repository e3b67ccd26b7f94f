"""The top of the page: the title and the five steps in a line, the banner of the demo model or
the test-mode banner of the tiny model, and, while the model is being set up, a banner saying
what is fetched, how much, how fast and how long it will take (the steps that need the model
start once it is ready)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from dreampose.app.messages import for_page, warning
from dreampose.app.page.wiring import PRIVATE
from dreampose.app.service import AppService

INTRO = """\
# DreamPose: animate a photo with a dance video
**1** Add a photo of a person and a driving video · **2** extract the poses · **3** (optional) finetune
the model on the photo · **4** preview a frame and tune the guidance · **5** render the video.
Every step starts from sensible defaults; your work stays in this browser tab until you close it.
"""
DEMO_BANNER = (
    "ℹ **The demo model is running.** It was trained on drawn people (like the examples below) and "
    "animates them in seconds; photos of real people need the official DreamPose model "
    "(`dreampose download`, or start the app with network and it sets itself up)."
)
TINY_BANNER = (
    "⚠ **Test mode: the tiny random model is running.** Every step works, but its pictures and videos "
    "are noise. Start the app with a real DreamPose model to animate people."
)


@dataclass
class Header:
    demo_box: gr.Markdown | None = None  # while the demo model runs
    setup_box: gr.Markdown | None = None  # only while a setup runs (or failed)
    retry: gr.Button | None = None


def create(service: AppService) -> Header:
    gr.Markdown(INTRO)
    if service.is_tiny:
        gr.Markdown(TINY_BANNER, elem_id="tiny-banner")
    demo_box = gr.Markdown(DEMO_BANNER, elem_id="demo-banner") if service.is_demo else None
    if service.setup is None:
        return Header(demo_box)
    return Header(
        demo_box,
        gr.Markdown(setup_text(service), elem_id="setup-status"),
        gr.Button("Try the setup again", visible=False, size="sm"),
    )


def wire(service: AppService, header: Header, model_buttons: list[gr.Button]) -> None:
    """While the model is set up: the banner follows it every second, the buttons of the steps
    that need the model come on once it is ready, and a failed setup can be tried again."""
    if header.setup_box is None:
        return
    timer = gr.Timer(1.0)

    def tick():
        status = service.setup_status()
        done = status.state == "ready"
        return (
            setup_text(service),
            *[gr.Button(interactive=not service.setting_up)] * len(model_buttons),
            gr.Button(visible=status.state in ("failed", "cancelled")),
            gr.Timer(active=not done),
            *([gr.Markdown(visible=service.is_demo)] if header.demo_box is not None else []),
        )

    demo_box = [header.demo_box] if header.demo_box is not None else []
    timer.tick(tick, None, [header.setup_box, *model_buttons, header.retry, timer, *demo_box], **PRIVATE)

    def try_again():
        service.setup.start()
        return gr.Timer(active=True), gr.Button(visible=False)

    header.retry.click(try_again, None, [timer, header.retry], **PRIVATE)


def setup_text(service: AppService) -> str:
    """The setup banner: what is being fetched, how much, how fast, how long it will take."""
    status = service.setup_status()
    if status is None:
        return ""
    if status.state == "ready":
        return f"**The DreamPose model is ready** ({for_page(str(status.model))}). Every step works now."
    if status.state in ("failed", "cancelled"):
        meanwhile = " The demo model keeps running meanwhile." if service.standing_in else ""
        return warning(for_page(status.text())) + (
            "\n\nThe finished downloads are kept: *Try the setup again* resumes them. Without network, "
            "get the model by hand (`dreampose download --help` lists its files) and start the app with "
            f"`--model` pointing at it.{meanwhile}"
        )
    bar = ""
    if status.fraction is not None:
        filled = round(20 * status.fraction)
        bar = f"\n\n`{'█' * filled}{'░' * (20 - filled)}` {100 * status.fraction:.0f} %"
    return (
        "**Setting up the DreamPose model** (once): "
        + for_page(status.text())
        + bar
        + (
            "\n\nThe demo model runs meanwhile; the app switches to the official model as soon as it is "
            "ready (no restart needed)."
            if service.standing_in
            else "\n\nYou can add your photo and video and extract the poses meanwhile; the other steps "
            "start as soon as the model is ready (no restart needed)."
        )
    )
