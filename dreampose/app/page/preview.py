"""Step 4 of the page: one set of sampling controls for previews *and* the video (sI, sP,
steps, sampler, seed), a preview of one frame (the fast preset by default) and the guidance
grid over sI x sP, whose cells set sI and sP when clicked. The controls' ranges and defaults
are the ones the CLI checks and starts from (``dreampose.model.checks``, ``RenderSettings``,
``dreampose.base.paper``). Endpoints ``/preview`` and ``/guidance_grid``; the work is
``dreampose.app.steps.render``.

Live preview (on by default): releasing a slider or changing the sampler, seed or fast
preset marks the preview out of date at once (in its label, outside the queue) and
re-renders it; a newer change cancels the preview still running and skips those still
waiting, so the picture always catches up with the controls. These events are the page's
own, not API endpoints: ``/preview`` stays what API and MCP callers call."""

from __future__ import annotations

import random
from dataclasses import dataclass

import gradio as gr

from dreampose.app.messages import for_page
from dreampose.app.page import wiring
from dreampose.app.page.controls import DropdownAsSent, NumberAsSent, SliderAsSent
from dreampose.app.page.inputs import Inputs
from dreampose.app.service import AppService
from dreampose.app.steps import render as work
from dreampose.app.values import Field
from dreampose.app.zerogpu import gpu
from dreampose.base import paper
from dreampose.model.checks import MAX_GUIDANCE, MAX_INFERENCE_STEPS, MAX_SEED
from dreampose.model.schedulers import SAMPLERS
from dreampose.rendering.grid import GRID_IMAGE_SCALES, GRID_POSE_SCALES, parse_scales, scales_text

# "Random seed" draws below 2**53, the whole numbers a browser shows exactly (any seed up to
# MAX_SEED can be typed).
RANDOM_SEEDS = 2**53 - 1

PREVIEW_LABEL = "Preview"
# How long a live preview waits for the one it cancelled: that stops after its current
# denoising step, which on a slow model on the CPU may take a while.
LIVE_WAIT_S = 300.0


@dataclass
class Preview:
    frame: gr.Slider
    s_i: gr.Slider
    s_p: gr.Slider
    steps: gr.Slider
    sampler: gr.Dropdown
    seed: gr.Number
    random_seed: gr.Button
    fast: gr.Checkbox
    live: gr.Checkbox
    ticket: gr.Number  # hidden: the session's number of the live preview asked for last
    controls: wiring.StepControls  # buttons: Preview frame, Guidance grid
    image: gr.Image
    grid: gr.Image
    grid_image_scales: gr.Textbox
    grid_pose_scales: gr.Textbox

    @property
    def sampling(self) -> list:
        """The controls the video is rendered with too, in the endpoints' order."""
        return [self.s_i, self.s_p, self.steps, self.sampler, self.seed]


def frame_field(service: AppService) -> Field:
    return wiring.frame_field(service, "frame", "Frame to preview")


def create(service: AppService) -> Preview:
    video, fast = service.video_settings(), service.fast_settings()
    needs_model = {"interactive": not service.setting_up}
    with gr.Column(elem_classes="step"):
        gr.Markdown("### 4 · Tune and preview")
        with gr.Row():
            # Up to the pose limit: API clients never see the per-tab maximum set after extraction.
            frame = SliderAsSent(
                0, frame_field(service).high, value=0, step=1, label="Frame to preview", elem_id="frame",
                min_width=200,
            )  # fmt: skip
            s_i = SliderAsSent(
                0, MAX_GUIDANCE, value=video.image_guidance_scale, step=0.5,
                label=f"Image guidance sI (paper: {paper.IMAGE_GUIDANCE:g})", elem_id="s-i", min_width=200,
            )  # fmt: skip
            s_p = SliderAsSent(
                0, MAX_GUIDANCE, value=video.pose_guidance_scale, step=0.5,
                label=f"Pose guidance sP (paper: {paper.POSE_GUIDANCE:g})", elem_id="s-p", min_width=200,
            )  # fmt: skip
        with gr.Row():
            steps = SliderAsSent(
                1, MAX_INFERENCE_STEPS, value=video.num_inference_steps, step=1,
                label=f"Steps (paper: {paper.INFERENCE_STEPS})", elem_id="steps", min_width=200,
            )  # fmt: skip
            sampler = DropdownAsSent(
                [(f"{name}: {SAMPLERS[name][2]}", name) for name in SAMPLERS], value=video.scheduler,
                label="Sampler", elem_id="sampler", min_width=200,
            )  # fmt: skip
            with gr.Column(min_width=200):
                seed = NumberAsSent(label="Seed", value=video.seed, precision=0, minimum=0, maximum=MAX_SEED)
                random_seed = gr.Button("Random seed", size="sm", elem_id="random-seed")
        with gr.Row():
            fast_toggle = gr.Checkbox(
                value=True, elem_id="fast-preview", scale=2,
                label=f"Fast preview: {fast.num_inference_steps} {fast.scheduler} steps "
                "(the video always uses the sampler and steps above)",
            )  # fmt: skip
            live = gr.Checkbox(
                value=True, elem_id="live-preview", scale=1,
                label="Live preview: re-render when a control is released (untick for slow models)",
            )  # fmt: skip
        ticket = gr.Number(value=None, precision=0, visible="hidden", elem_id="live-ticket")
        controls = wiring.step_controls(
            "preview", "preview-cancel",
            ("A preview shows one frame as the video will look (or quickly, with *Fast preview*).",
             "Preview status", "preview-status"),
            {"value": "Preview frame", "elem_id": "preview-btn", "scale": 2, **needs_model},
            {"value": "Guidance grid", "elem_id": "grid-btn", "variant": "secondary", "scale": 2, **needs_model},
        )  # fmt: skip
        with gr.Row():
            image = gr.Image(
                label=PREVIEW_LABEL, height=300, elem_id="preview-image", elem_classes="output-box", format="png",
                type="filepath", min_width=300,
            )  # fmt: skip
            with gr.Column(min_width=300):
                grid = gr.Image(
                    label="Guidance grid", show_label=False, height=300, elem_id="grid-image",
                    elem_classes="output-box", format="png", type="filepath", interactive=False,
                )  # fmt: skip
                gr.Markdown("Guidance grid: click a cell to use its sI and sP.", elem_classes="note")
                with gr.Accordion("Grid values", open=False):
                    grid_i = gr.Textbox(
                        value=scales_text(GRID_IMAGE_SCALES), label="Image guidance sI (rows)", min_width=120
                    )
                    grid_p = gr.Textbox(
                        value=scales_text(GRID_POSE_SCALES), label="Pose guidance sP (columns)", min_width=120
                    )
    return Preview(
        frame, s_i, s_p, steps, sampler, seed, random_seed, fast_toggle, live, ticket, controls, image, grid,
        grid_i, grid_p,
    )  # fmt: skip


def wire(service: AppService, step: Preview, inputs: Inputs) -> None:
    preview_btn, grid_btn = step.controls.buttons
    status = step.controls.status
    run = wiring.run_step(
        service, step.controls, preview_btn, preview_endpoint(service),
        [step.frame, *step.sampling, step.fast, *inputs.photos], [step.image, status], "preview",
    )  # fmt: skip

    def up_to_date(request: gr.Request):
        """The button's preview arrived (unless it was cancelled): the label is plain again."""
        cancelled = service.session(request.session_hash).load_status("preview") == for_page(
            work.PREVIEW_CANCELLED
        )
        return gr.skip() if cancelled else gr.Image(label=PREVIEW_LABEL)

    run.success(up_to_date, None, step.image, **wiring.PRIVATE)
    wire_live(service, step, inputs)
    grid_inputs = [step.frame, step.grid_image_scales, step.grid_pose_scales, *step.sampling[2:], step.fast]
    wiring.run_step(
        service, step.controls, grid_btn, grid_endpoint(service), [*grid_inputs, *inputs.photos],
        [step.grid, status], "guidance_grid",
    )  # fmt: skip
    wiring.cancel_step(service, step.controls, "preview", "grid")

    def pick_cell(evt: gr.SelectData, request: gr.Request):
        """A click on the guidance grid: that cell's sI and sP go to the sliders."""
        scales = service.session(request.session_hash).grid_scales_at(*evt.index)
        if scales is None:
            return gr.skip(), gr.skip()
        gr.Info(f"sI {scales[0]:g} and sP {scales[1]:g} are set.")
        return scales[0], scales[1]

    step.grid.select(pick_cell, None, [step.s_i, step.s_p], api_visibility="private", show_progress="hidden")
    step.random_seed.click(lambda: random.randint(0, RANDOM_SEEDS), None, step.seed, **wiring.PRIVATE)


# ----------------------------------------------------------------------------- live preview
# The controls whose change re-renders the preview: (name in the out-of-date line, event).
# Sliders on release (not on every pixel dragged); the seed on change, so that *Random seed*
# counts too.
LIVE_EVENTS = (
    ("frame", "frame", "release"),
    ("s_i", "sI", "release"),
    ("s_p", "sP", "release"),
    ("steps", "steps", "release"),
    ("sampler", "sampler", "input"),
    ("seed", "seed", "change"),
    ("fast", "fast preview", "input"),
)


def wire_live(service: AppService, step: Preview, inputs: Inputs) -> None:
    """Each control of ``LIVE_EVENTS`` marks the preview out of date at once (no queue), then
    re-renders it when *Live preview* is on (queued with the other model steps)."""
    status = step.controls.status
    render = live_preview_fn(service)
    live_inputs = [step.frame, *step.sampling, step.fast, *inputs.photos, step.ticket]

    def failed(request: gr.Request):
        session = service.session(request.session_hash)
        return gr.Image(label=f"{PREVIEW_LABEL} · out of date (the update failed)"), session.load_status(
            "preview"
        )

    for attribute, name, event in LIVE_EVENTS:
        control = getattr(step, attribute)
        marked = getattr(control, event)(
            mark_stale(service, name), [control, step.live, step.image], [step.image, step.ticket],
            trigger_mode="multiple", **wiring.PRIVATE,
        )  # fmt: skip
        rendered = marked.then(
            render, live_inputs, [step.image, status], api_visibility="private", show_progress_on=[status],
            concurrency_id=wiring.MODEL_STEPS, trigger_mode="always_last",
        )  # fmt: skip
        rendered.failure(failed, None, [step.image, status], **wiring.PRIVATE)


def mark_stale(service: AppService, name: str):
    """What moving the control ``name`` does at once: the preview's label says it is out of
    date, and with *Live preview* on and poses to preview, a live preview is asked for (its
    ticket; None: nothing to render)."""

    def mark(value, live: bool, shown, request: gr.Request):
        session = service.session(request.session_hash)
        if service.setting_up or not session.poses_path.is_file():
            return gr.skip(), None  # nothing to preview yet: step 4's errors would only repeat step 2's
        now = f"out of date: {name} now {_shown(value)}"
        if live:
            return gr.Image(label=f"{PREVIEW_LABEL} · {now} — updating…"), session.ask_live_preview()
        if shown is None:
            return gr.skip(), None
        return gr.Image(label=f"{PREVIEW_LABEL} · {now} — press Preview frame"), None

    return mark


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def live_preview_fn(service: AppService):
    """The live preview: the preview endpoint's work, unless a newer one was asked for since
    (then nothing); it waits for the preview it cancelled, and a preview cancelled by a newer
    one shows nothing (the newer one's picture and status follow)."""

    @gpu(duration=120)
    def live_preview(
        frame, s_i, s_p, steps, sampler, seed, fast, photo, more_photos, ticket,
        request: gr.Request = None, progress=gr.Progress(),
    ):  # fmt: skip
        session = service.session(request.session_hash)
        if ticket is None or session.preview_out_of_date(int(ticket)):
            return gr.skip(), gr.skip()
        image, used = run_preview(
            service, session, (frame, s_i, s_p, steps, sampler, seed, fast), photo, more_photos, progress,
            LIVE_WAIT_S,
        )  # fmt: skip
        if image is None:
            return gr.skip(), gr.skip()
        return gr.Image(value=str(image), label=PREVIEW_LABEL), wiring.keep_status(session, "preview", used)

    return live_preview


def run_preview(service: AppService, session, values: tuple, photo, more_photos, progress, wait_s=0.0):
    """The preview of the step-4 ``values`` (frame, sI, sP, steps, sampler, seed, fast) as the
    page sent them: (PNG path, or None when cancelled; the line naming what was used). Errors
    are shown as sentences and kept in the status line."""
    frame, *sampling = values
    with wiring.kept_status(session, "preview"):
        frame = frame_field(service).read(frame)
        settings = wiring.render_settings(service, *sampling)
        return work.preview(
            service, session, wiring.photos_of(photo, more_photos), frame, settings,
            wiring.progress_bar(progress), wait_s,
        )  # fmt: skip


# ----------------------------------------------------------------------------- endpoints
def preview_endpoint(service: AppService):
    @wiring.documented(
        "Render one frame with these settings. Returns the PNG and a status line naming what was used."
    )
    @gpu(duration=120)
    def preview(
        frame, s_i, s_p, steps, sampler, seed, fast, photo=None, more_photos=None,
        request: gr.Request = None, progress=gr.Progress(),
    ):  # fmt: skip
        session = service.session(request.session_hash)
        image, used = run_preview(
            service, session, (frame, s_i, s_p, steps, sampler, seed, fast), photo, more_photos, progress
        )
        return (str(image) if image else gr.skip()), wiring.keep_status(session, "preview", used)

    return preview


def grid_endpoint(service: AppService):
    @wiring.documented(
        "Render one frame over a grid of sI x sP values (rows sI, columns sP). Returns the PNG and a status."
    )
    @gpu(duration=300)
    def guidance_grid(
        frame, image_guidance_values, pose_guidance_values, steps, sampler, seed, fast, photo=None,
        more_photos=None, request: gr.Request = None, progress=gr.Progress(),
    ):  # fmt: skip
        session = service.session(request.session_hash)
        with wiring.kept_status(session, "preview"):
            frame = frame_field(service).read(frame)
            image_scales = parse_scales(image_guidance_values, "Image guidance values")
            pose_scales = parse_scales(pose_guidance_values, "Pose guidance values")
            settings = wiring.render_settings(
                service, image_scales[0], pose_scales[0], steps, sampler, seed, fast
            )
            path, _ = work.guidance_grid(
                service, session, wiring.photos_of(photo, more_photos), frame, image_scales,
                pose_scales, settings, wiring.progress_bar(progress),
            )  # fmt: skip
        if path is None:
            return gr.skip(), wiring.keep_status(session, "preview", work.GRID_CANCELLED)
        used = (
            f"Guidance grid of frame {frame}: rows sI {scales_text(image_scales)}; "
            f"columns sP {scales_text(pose_scales)}. Click a cell to use its sI and sP."
        )
        return str(path), wiring.keep_status(session, "preview", used)

    return guidance_grid
