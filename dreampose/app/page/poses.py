"""Step 2 of the page: fps, start and end seconds and a frame cap, then *Extract poses*: the
before/after video of "align to the photo", the photo beside its own pose, and warnings shown
prominently. The endpoint is ``/extract_poses``; the work is ``dreampose.app.steps.poses``."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from dreampose.app.messages import for_page
from dreampose.app.page import wiring
from dreampose.app.page.controls import NumberAsSent
from dreampose.app.page.inputs import Inputs
from dreampose.app.service import AppService
from dreampose.app.steps import poses as work
from dreampose.app.values import Field, Flag
from dreampose.app.zerogpu import gpu

FPS = Field("fps", "Frames per second", 0, 60)  # 0: as the video
START = Field("start", "Start at second", 0)
END = Field("end", "End at second", 0)  # 0: the end
ALIGN = Flag("align", "Align poses to the photo")


def max_frames_field(service: AppService) -> Field:
    return Field("max_frames", "At most this many frames", 1, service.limits.max_pose_frames, whole=True)


@dataclass
class Poses:
    fps: gr.Number
    start: gr.Number
    end: gr.Number
    max_frames: gr.Number
    align: gr.Checkbox
    controls: wiring.StepControls
    video: gr.Video  # before | after aligning
    subject_pose: gr.Image  # the photo and its own pose


def create(service: AppService) -> Poses:
    cap = service.limits.max_pose_frames
    with gr.Column(elem_classes="step"):
        gr.Markdown("### 2 · Poses")
        with gr.Row():
            fps = NumberAsSent(
                label="Frames per second (0 = as the video)",
                value=0,
                minimum=0,
                maximum=FPS.high,
                min_width=150,
            )
            start = NumberAsSent(label="Start at second", value=0, minimum=0, min_width=150)
            end = NumberAsSent(label="End at second (0 = the end)", value=0, minimum=0, min_width=150)
            max_frames = NumberAsSent(
                label=f"At most this many frames (limit {cap})", value=cap, minimum=1, maximum=cap, precision=0,
                min_width=150,
            )  # fmt: skip
        align = gr.Checkbox(label="Align poses to the photo (size and position of the person)", value=True)
        controls = wiring.step_controls(
            "poses", "extract-cancel",
            ("Add a photo and a driving video (or click the example), then press *Extract poses*.", "Pose status",
             "pose-status"),
            {"value": "Extract poses", "elem_id": "extract-btn"},
        )  # fmt: skip
        with gr.Row():
            video = gr.Video(
                label="Poses (before | after aligning)", show_label=False, height=260, elem_id="pose-video",
                elem_classes="output-box", min_width=300,
            )  # fmt: skip
            subject_pose = gr.Image(
                label="The photo and its own pose", height=260, elem_id="subject-pose", elem_classes="output-box",
                format="png", min_width=300,
            )  # fmt: skip
    return Poses(fps, start, end, max_frames, align, controls, video, subject_pose)


def wire(
    service: AppService, step: Poses, inputs: Inputs, frame: gr.Slider, first: gr.Number, last: gr.Number
):
    """The outputs end in the frame to preview and the render range; afterwards their maxima
    follow the poses extracted."""

    def ranges(session):
        if not session.poses_path.is_file():
            return [gr.skip()] * 3
        n = len(service.poses(session))
        return [gr.Slider(maximum=max(n - 1, 1)), gr.Number(maximum=n - 1), gr.Number(maximum=n - 1)]

    options = [step.fps, step.start, step.end, step.max_frames, step.align]
    outputs = [step.video, step.subject_pose, step.controls.status, frame, first, last]
    wiring.run_step(
        service, step.controls, step.controls.buttons[0], endpoint(service),
        [inputs.photo, inputs.driving, *options, inputs.more, inputs.pose_file], outputs, "extract_poses",
        [frame, first, last], ranges,
    )  # fmt: skip
    wiring.cancel_step(service, step.controls)


def endpoint(service: AppService):
    @wiring.documented(
        "Extract the poses of the driving video (or read a pose file) onto the canvas, aligned to the photo: the first step. Returns the pose preview video, the photo beside its own pose, the status, and (integers) the frame to preview, the first and the last frame of the render range."
    )
    @gpu(duration=120)
    def extract_poses(
        photo, driving_video, fps, start, end, max_frames, align, more_photos=None, pose_file=None,
        request: gr.Request = None, progress=gr.Progress(),
    ):  # fmt: skip
        session = service.session(request.session_hash)
        with wiring.kept_status(session, "poses"):
            # empty: as the video, from its start, to its end, as many frames as allowed
            fps, start, end = FPS.read(fps, None), START.read(start, None), END.read(end, None)
            max_frames = max_frames_field(service).read(max_frames, None)
            align = ALIGN.read(align)
            result = work.extract_poses(
                service, session, wiring.photos_of(photo, more_photos), pose_file or driving_video, fps, start,
                end, max_frames, align, wiring.progress_bar(progress),
            )  # fmt: skip
        for text in result.warnings:
            gr.Warning(for_page(text), duration=None)
        status = wiring.keep_status(session, "poses", work.warnings_text(result))
        first, last = service.render_range(result.num_frames)
        return str(result.preview_video), result.subject_image, status, 0, first, last

    return extract_poses
