"""Step 4 of the page: one set of sampling controls for previews *and* the video (sI, sP,
steps, sampler, seed), a preview of one frame (the fast preset by default) and the guidance
grid over sI x sP, whose cells set sI and sP when clicked. The controls' ranges and defaults
are the ones the CLI checks and starts from (``dreampose.model.checks``, ``RenderSettings``,
``dreampose.base.paper``). Endpoints ``/preview`` and ``/guidance_grid``; the work is
``dreampose.app.steps.render``."""

from __future__ import annotations

import random
from dataclasses import dataclass

import gradio as gr

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
        fast_toggle = gr.Checkbox(
            value=True, elem_id="fast-preview",
            label=f"Fast preview: {fast.num_inference_steps} {fast.scheduler} steps "
            "(the video always uses the sampler and steps above)",
        )  # fmt: skip
        controls = wiring.step_controls(
            "preview", "preview-cancel",
            ("A preview shows one frame as the video will look (or quickly, with *Fast preview*).",
             "Preview status", "preview-status"),
            {"value": "Preview frame", "elem_id": "preview-btn", "scale": 2, **needs_model},
            {"value": "Guidance grid", "elem_id": "grid-btn", "variant": "secondary", "scale": 2, **needs_model},
        )  # fmt: skip
        with gr.Row():
            image = gr.Image(
                label="Preview", height=300, elem_id="preview-image", elem_classes="output-box", format="png",
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
        frame, s_i, s_p, steps, sampler, seed, random_seed, fast_toggle, controls, image, grid, grid_i, grid_p
    )


def wire(service: AppService, step: Preview, inputs: Inputs) -> None:
    preview_btn, grid_btn = step.controls.buttons
    status = step.controls.status
    wiring.run_step(
        service, step.controls, preview_btn, preview_endpoint(service),
        [step.frame, *step.sampling, step.fast, *inputs.photos], [step.image, status], "preview",
    )  # fmt: skip
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
        with wiring.kept_status(session, "preview"):
            frame = frame_field(service).read(frame)
            settings = wiring.render_settings(service, s_i, s_p, steps, sampler, seed, fast)
            image, used = work.preview(
                service, session, wiring.photos_of(photo, more_photos), frame, settings,
                wiring.progress_bar(progress),
            )  # fmt: skip
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
