"""Step 5 of the page: a frame range (the whole sequence, or as much as one render may cover;
after each part the range moves on to the next), then the video. Each frame appears as soon
as it is finished; a cancelled or failed render returns the frames finished so far. The
endpoint is ``/render``, streamed; the work is ``dreampose.app.steps.render``."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from dreampose.app.messages import for_page
from dreampose.app.page import wiring
from dreampose.app.page.controls import NumberAsSent
from dreampose.app.page.inputs import Inputs
from dreampose.app.page.preview import Preview
from dreampose.app.service import AppService
from dreampose.app.steps import render as work
from dreampose.app.values import Flag
from dreampose.app.zerogpu import gpu
from dreampose.model.events import FrameDone, Progress

SIDE_BY_SIDE = Flag("side_by_side", "Also a side-by-side video")
KEEP_SOUND = Flag("keep_sound", "Keep the driving video's sound")


@dataclass
class Render:
    first: gr.Number
    last: gr.Number
    side_by_side: gr.Checkbox
    keep_sound: gr.Checkbox
    controls: wiring.StepControls
    live: gr.Image  # the latest finished frame
    video: gr.Video
    side_video: gr.Video
    frames_zip: gr.File


def create(service: AppService) -> Render:
    limit = service.limits.max_render_frames
    with gr.Column(elem_classes="step"):
        gr.Markdown("### 5 · Render")
        with gr.Row():
            first = NumberAsSent(
                label="First frame", value=None, precision=0, minimum=0, min_width=150, elem_id="first"
            )
            last = NumberAsSent(
                label="Last frame", value=None, precision=0, minimum=0, min_width=150, elem_id="last"
            )
            side_by_side = gr.Checkbox(
                label="Also a side-by-side video (photo | pose | result)", value=True, min_width=200
            )
            keep_sound = gr.Checkbox(label="Keep the driving video's sound", value=True, min_width=200)
        gr.Markdown(
            f"One render covers at most **{limit} frames**; longer poses render in parts (after each part, the "
            "range moves on to the next). The video uses the sampler and steps of step 4.",
            elem_classes="note", elem_id="render-limit",
        )  # fmt: skip
        controls = wiring.step_controls(
            "render", "render-cancel",
            ("Each frame appears below as soon as it is finished; *Cancel* keeps the finished ones.",
             "Render status", "render-status"),
            {"value": "Render video", "elem_id": "render-btn", "interactive": not service.setting_up},
        )  # fmt: skip
        with gr.Row():
            live = gr.Image(
                label="Latest finished frame", height=260, elem_id="live-frame", elem_classes="output-box",
                format="png", min_width=200,
            )  # fmt: skip
            video = gr.Video(
                label="Result", height=260, elem_id="result-video", elem_classes="output-box", min_width=300
            )
        with gr.Row():
            side_video = gr.Video(
                label="Side by side", visible=True, height=200, elem_id="side-video", elem_classes="output-box",
                min_width=300,
            )  # fmt: skip
            frames_zip = gr.File(
                label="All frames (zip of PNGs)", elem_id="frames-zip", elem_classes="output-box", height=60,
                min_width=200,
            )  # fmt: skip
    return Render(first, last, side_by_side, keep_sound, controls, live, video, side_video, frames_zip)


def wire(service: AppService, step: Render, inputs: Inputs, preview: Preview) -> None:
    """After a render the range moves on to the next part, when frames remain."""

    def next_part(session):
        part = session.recall().get("next_range")
        return [part[0], part[1]] if part else [gr.skip(), gr.skip()]

    options = [step.side_by_side, step.keep_sound, step.first, step.last]
    outputs = [step.live, step.video, step.side_video, step.frames_zip, step.controls.status]
    wiring.run_step(
        service, step.controls, step.controls.buttons[0], endpoint(service),
        [*preview.sampling, *options, *inputs.photos], outputs, "render", [step.first, step.last], next_part,
    )  # fmt: skip
    wiring.cancel_step(service, step.controls)
    step.side_by_side.change(
        lambda on: gr.Video(visible=on), step.side_by_side, step.side_video, **wiring.PRIVATE
    )


def endpoint(service: AppService):
    @wiring.documented(
        "Render frames first..last to an mp4. Streams the latest finished frame; returns it, the clean video, the side-by-side video (when asked), a zip of the PNG frames and the status."
    )
    @gpu(duration=900)
    def render(
        s_i, s_p, steps, sampler, seed, side_by_side, keep_sound, first=None, last=None, photo=None,
        more_photos=None, request: gr.Request = None, progress=gr.Progress(),
    ):  # fmt: skip
        session = service.session(request.session_hash)
        bar = wiring.progress_bar(progress)
        with wiring.kept_status(session, "render"):
            first = wiring.frame_field(service, "first", "First frame").read(first, empty=None)
            last = (
                None
                if last == -1
                else wiring.frame_field(service, "last", "Last frame").read(last, empty=None)
            )
            settings = wiring.render_settings(service, s_i, s_p, steps, sampler, seed)
            events = work.render_stream(
                service, session, wiring.photos_of(photo, more_photos), first, last, settings,
                SIDE_BY_SIDE.read(side_by_side), KEEP_SOUND.read(keep_sound),
            )  # fmt: skip
            for event in events:
                if isinstance(event, Progress):
                    bar(event.done, event.total, event.text)
                elif isinstance(event, FrameDone):
                    yield event.image, gr.skip(), gr.skip(), gr.skip(), gr.skip()
                else:
                    out = event.result
        if out.video is None:
            raise gr.Error(for_page(out.message), print_exception=False)  # an outcome, said in the page
        status = wiring.keep_status(session, "render", out.message)
        optional = [str(path) if path else None for path in (out.side_by_side, out.frames_zip)]
        yield out.last_frame, str(out.video), *optional, status

    return render
