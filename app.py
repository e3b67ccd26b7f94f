"""DreamPose web app: a photo of a person + a driving video -> a video of that person dancing.

This file only builds the page (``create_demo``) and launches it; every step runs in
``dreampose.app`` (one module per step), which shares its code with the ``dreampose`` CLI.

    python app.py                      # the official model (set up automatically on first start)
    python app.py --model tiny         # tiny random model: the whole app offline, videos are noise
    python app.py --model PATH_OR_ID --host 0.0.0.0 --port 7860 --share
    python app.py --no-download        # never download: without a model, show how to get one

Every step is also an API endpoint (``extract_poses``, ``finetune``, ``preview``,
``guidance_grid``, ``render``, and ``cancel_*`` for each) that ``gradio_client.Client`` can
call in order; the README lists their parameters.

What the page promises a person: each step shows its progress from the first second and can
be cancelled with its own button (its run button is disabled meanwhile); each step keeps its
last result or error in its own status line until it runs again; the defaults always run.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import signal
import time
from dataclasses import replace
from pathlib import Path

import gradio as gr

from dreampose.app import finetune as finetune_step
from dreampose.app import poses as pose_step
from dreampose.app import render as render_step
from dreampose.app.messages import OUT_OF_MEMORY, UserError, for_page, is_out_of_memory, sentence, warning
from dreampose.app.service import AppService
from dreampose.app.zerogpu import gpu
from dreampose.cli.options import add_speed_arguments, speed_settings
from dreampose.model.events import FrameDone, Progress
from dreampose.model.schedulers import SAMPLERS
from dreampose.rendering.grid import parse_scales
from dreampose.rendering.settings import RenderSettings
from dreampose.runtime.loading import DEVICE_HELP, DTYPE_CHOICES, DTYPE_HELP
from dreampose.runtime.references import MODEL_ENV, chosen_model

log = logging.getLogger("dreampose.app")
ASSETS = Path(__file__).resolve().parent / "assets"
MAX_SEED = 2**31 - 1

TINY_BANNER = (
    "⚠ **Test mode: the tiny random model is running.** Every step works, but its pictures and videos "
    "are noise. Start the app with a real DreamPose model to animate people."
)
INTRO = """\
# DreamPose: animate a photo with a dance video
**1** Add a photo of a person and a driving video · **2** extract the poses · **3** (optional) finetune
the model on the photo · **4** preview a frame and tune the guidance · **5** render the video.
Every step starts from sensible defaults; your work stays in this browser tab until you close it.
"""
FINETUNE_NOTE = (
    "Finetuning teaches the model this person's face and clothes (the paper finetunes the UNet for 500 "
    "steps and the VAE decoder for 1500). You can skip it: the result then looks less like the photo."
)
CSS = """
.step { border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg);
        padding: var(--spacing-lg); background: var(--background-fill-secondary); }
.step h3 { margin: 0 0 var(--spacing-sm) 0; }
.status { min-height: 3.4em; padding: var(--spacing-sm) var(--spacing-md);
          border-radius: var(--radius-md); background: var(--background-fill-primary); }
.status p { margin: 0; }
@media (max-width: 640px) { .status { min-height: 5em; } }
#tiny-banner, #setup-status { border: 1px solid var(--color-accent); border-radius: var(--radius-lg);
        padding: var(--spacing-md) var(--spacing-lg); background: var(--background-fill-secondary); }
.note { font-size: var(--text-sm); color: var(--body-text-color-subdued); }
.output-box { border-style: solid !important; }
.output-box:has(> .empty) { height: auto !important; }
.output-box > .empty { min-height: 3.5em !important; height: 3.5em !important; }
.output-box > .empty .icon { height: 1.6em; }
#grid-image .image-frame { padding-top: 2.2em; }
#grid-image .image-frame img, #preview-image .image-frame img { max-width: 100%; object-fit: contain; }
"""


# ----------------------------------------------------------------------------- errors and status
@contextlib.contextmanager
def user_errors():
    """Show problems as a sentence in the page (``gr.Error``) instead of a stack trace."""
    try:
        yield
    except gr.Error:
        raise
    except (UserError, ValueError) as e:
        raise gr.Error(for_page(sentence(e))) from e
    except Exception as e:
        if is_out_of_memory(e):
            raise gr.Error(OUT_OF_MEMORY) from e
        log.exception("step failed")
        raise gr.Error(
            for_page(
                f"Something went wrong ({type(e).__name__}: {e}). Your poses, subject and videos are kept; "
                "please try again."
            )
        ) from e


@contextlib.contextmanager
def kept_status(service: AppService, session, kind: str):
    """Run a step; its error is shown as a toast *and* kept in the step's status line."""
    try:
        with user_errors():
            yield
    except gr.Error as e:
        with contextlib.suppress(Exception):  # the session may have closed meanwhile
            session.save_status(kind, f"**Error:** {e.message}")
        raise


def _bar(progress: gr.Progress):
    """One progress display: the bar's fraction, and our own words (with counts and time left)."""
    return lambda done, total, text: progress(done / total if total else 0.0, desc=text)


def _photos(photo, more) -> list:
    return [photo, *(more or [])] if photo else list(more or [])


def _int(value, default: int = 0) -> int:
    return default if value in (None, "") else int(value)


# ----------------------------------------------------------------------------- handlers
def create_handlers(service: AppService) -> dict:
    """One function per endpoint; the session is Gradio's per-tab (or per-client) session."""

    def settings(s_i, s_p, steps, sampler, seed, fast=False) -> RenderSettings:
        base = service.fast_settings() if fast else service.video_settings()
        if not fast:
            base = replace(base, num_inference_steps=int(steps), scheduler=str(sampler))
        return replace(base, image_guidance_scale=float(s_i), pose_guidance_scale=float(s_p), seed=_int(seed))

    @gpu(duration=120)
    def extract_poses(
        photo,
        driving_video,
        fps,
        start,
        end,
        max_frames,
        align,
        more_photos=None,
        pose_file=None,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        """Driving video (or pose file) -> poses on the canvas, aligned to the photo.

        Returns the pose preview video, the photo beside its own pose, the status, and (plain
        integers) the frame to preview, the first and the last frame of the render range."""
        session = service.session(request.session_hash)
        with kept_status(service, session, "poses"):
            driving = pose_file or driving_video
            r = pose_step.extract_poses(
                service, session, _photos(photo, more_photos), driving, fps, start, end, max_frames, align,
                _bar(progress),
            )  # fmt: skip
        for text in r.warnings:
            gr.Warning(for_page(text), duration=None)
        status = for_page(pose_step.warnings_text(r))
        session.save_status("poses", status)
        first, last = service.render_range(r.num_frames)
        return str(r.preview_video), r.subject_image, status, 0, first, last

    @gpu(duration=600)
    def finetune(
        mode,
        unet_steps,
        vae_steps,
        photo=None,
        more_photos=None,
        request: gr.Request = None,
        progress=gr.Progress(),
    ):
        """Finetune the model on the subject photos (Full or LoRA). Returns the status and the
        subject to download."""
        session = service.session(request.session_hash)
        with kept_status(service, session, "finetune"):
            r = finetune_step.finetune(
                service, session, _photos(photo, more_photos), str(mode).startswith("LoRA"), unet_steps,
                vae_steps, _bar(progress),
            )  # fmt: skip
        status = for_page(r.message)
        session.save_status("finetune", status)
        return status, (str(r.download) if r.download else None)

    @gpu(duration=120)
    def preview(
        frame, s_i, s_p, steps, sampler, seed, fast, photo=None, more_photos=None,
        request: gr.Request = None, progress=gr.Progress(),
    ):  # fmt: skip
        """One frame with these settings (``fast``: the fast preset instead of steps and
        sampler). Returns the PNG and a status line naming what was used."""
        session = service.session(request.session_hash)
        with kept_status(service, session, "preview"):
            image, used = render_step.preview(
                service, session, _photos(photo, more_photos), _int(frame),
                settings(s_i, s_p, steps, sampler, seed, fast), _bar(progress),
            )  # fmt: skip
        status = for_page(used)
        session.save_status("preview", status)
        return str(image), status

    @gpu(duration=300)
    def guidance_grid(
        frame, image_guidance_values, pose_guidance_values, steps, sampler, seed, fast, photo=None,
        more_photos=None, request: gr.Request = None, progress=gr.Progress(),
    ):  # fmt: skip
        """One frame over an sI x sP grid (rows sI, columns sP). Returns the PNG and a status."""
        session = service.session(request.session_hash)
        with kept_status(service, session, "preview"):
            image_scales = parse_scales(image_guidance_values, "Image guidance values")
            pose_scales = parse_scales(pose_guidance_values, "Pose guidance values")
            path, grid = render_step.guidance_grid(
                service, session, _photos(photo, more_photos), _int(frame), image_scales, pose_scales,
                settings(image_scales[0], pose_scales[0], steps, sampler, seed, fast), _bar(progress),
            )  # fmt: skip
        status = for_page(
            f"Guidance grid of frame {_int(frame)}: rows sI {', '.join(f'{v:g}' for v in image_scales)}; "
            f"columns sP {', '.join(f'{v:g}' for v in pose_scales)}. Click a cell to use its sI and sP."
        )
        session.save_status("preview", status)
        return str(path), status

    @gpu(duration=900)
    def render(
        s_i, s_p, steps, sampler, seed, side_by_side, keep_sound, first=None, last=None, photo=None,
        more_photos=None, request: gr.Request = None, progress=gr.Progress(),
    ):  # fmt: skip
        """Render frames first..last (empty: as far as one render may go) to an mp4. Streams the
        latest finished frame; returns it, the clean video, the side-by-side video (when asked),
        a zip of PNG frames and the status."""
        session = service.session(request.session_hash)
        bar = _bar(progress)
        with kept_status(service, session, "render"):
            events = render_step.render_stream(
                service, session, _photos(photo, more_photos), first, last,
                settings(s_i, s_p, steps, sampler, seed), bool(side_by_side), bool(keep_sound),
            )  # fmt: skip
            for event in events:
                if isinstance(event, Progress):
                    bar(event.done, event.total, event.text)
                elif isinstance(event, FrameDone):
                    yield event.image, gr.skip(), gr.skip(), gr.skip(), gr.skip()
                else:
                    r = event.result
        if r.video is None:
            raise gr.Error(for_page(r.message))
        status = for_page(r.message)
        session.save_status("render", status)
        yield (
            r.last_frame,
            str(r.video),
            str(r.side_by_side) if r.side_by_side else None,
            str(r.frames_zip) if r.frames_zip else None,
            status,
        )

    def cancel(*kinds: str):
        def handler(request: gr.Request):
            if any([service.cancel(request.session_hash, kind) for kind in kinds]):
                gr.Info("Stopping after the current step…")

        return handler

    def end_session(request: gr.Request):
        service.end_session(request.session_hash)

    return {
        "extract_poses": extract_poses,
        "finetune": finetune,
        "preview": preview,
        "guidance_grid": guidance_grid,
        "render": render,
        "cancel_poses": cancel("poses"),
        "cancel_finetune": cancel("finetune"),
        "cancel_preview": cancel("preview", "grid"),
        "cancel_render": cancel("render"),
        "end_session": end_session,
    }


# ----------------------------------------------------------------------------- the page
def photo_upload(**kwargs) -> gr.Image:
    """The photo input, handing the service the very file that was uploaded.

    ``gr.Image`` opens an upload with PIL and converts it to RGB before any handler runs: a
    damaged photo then fails inside Gradio with its generic "upstream" error, a transparent
    background turns black and a 16-bit photo clips, all before the one photo loader (EXIF,
    alpha onto white, 16 bit, size limits) sees the file. The CLI and the app must read the
    same photo the same way, so the loader gets the file itself. (Replaced on the instance:
    a subclass of a Gradio component makes Gradio write a ``.pyi`` file beside this one.)
    """
    image = gr.Image(type="filepath", **kwargs)
    decode = image.preprocess

    def file_as_uploaded(payload):
        if payload is None or payload.path is None:  # nothing, or a data: URL
            return decode(payload)
        return payload.path

    image.preprocess = file_as_uploaded
    return image


def cancel_button(elem_id: str) -> gr.Button:
    """A step's Cancel button: enabled only while its step runs."""
    return gr.Button("Cancel", variant="stop", interactive=False, elem_id=elem_id, scale=1, min_width=90)


def cache_lifetime(limits) -> tuple[int, int]:
    """Gradio's ``delete_cache`` (every, age) in seconds: uploads and results that Gradio keeps
    in its own cache are deleted once older than ``limits.cache_ttl_s`` (checked every tenth
    of it, at most every 10 minutes), and all of them when the server stops."""
    age = max(1, int(limits.cache_ttl_s))
    return max(1, min(age // 10, 600)), age


def create_demo(service: AppService) -> gr.Blocks:
    """The whole page. Shows setup instructions instead when the model is missing and will
    not be downloaded."""
    with gr.Blocks(title="DreamPose", delete_cache=cache_lifetime(service.limits)) as demo:
        if not service.status.ready and service.setup is None:
            gr.Markdown(service.status.message)
            return demo
        gr.Markdown(INTRO)
        if service.is_tiny:
            gr.Markdown(TINY_BANNER, elem_id="tiny-banner")
        h = create_handlers(service)
        video = service.video_settings()
        fast = service.fast_settings()
        limits = service.limits
        needs_model = {"interactive": not service.setting_up}
        if service.setup is not None:
            setup_box = gr.Markdown(_setup_text(service), elem_id="setup-status")
            retry = gr.Button("Try the setup again", visible=False, size="sm")

        with gr.Column(elem_classes="step"):
            gr.Markdown("### 1 · Inputs")
            with gr.Row():
                with gr.Column(min_width=300):
                    photo = photo_upload(label="Photo of the person", height=300, elem_id="photo")
                    with gr.Accordion(
                        "More photos of the same person (optional: they help finetuning)", open=False
                    ):
                        more = gr.File(
                            label="More photos", file_count="multiple", file_types=["image"], height=90
                        )
                with gr.Column(min_width=300):
                    driving = gr.Video(
                        label="Driving video", sources=["upload"], height=300, elem_id="driving"
                    )
                    with gr.Accordion("Or a pose file instead of a video", open=False):
                        pose_file = gr.File(
                            label="Pose file: .npz from `dreampose extract-poses`, or the official .npy poses as a .zip",
                            file_types=[".npz", ".zip"], height=90, elem_id="pose-file",
                        )  # fmt: skip
            examples = [[str(ASSETS / "example_photo.png"), str(ASSETS / "example_dance.mp4")]]
            if all(Path(p).is_file() for p in examples[0]):
                gr.Examples(
                    examples, inputs=[photo, driving], label="Example (synthetic drawings, poses included)"
                )

        with gr.Column(elem_classes="step"):
            gr.Markdown("### 2 · Poses")
            with gr.Row():
                fps = gr.Number(
                    label="Frames per second (0 = as the video)",
                    value=0,
                    minimum=0,
                    maximum=60,
                    min_width=150,
                )
                start = gr.Number(label="Start at second", value=0, minimum=0, min_width=150)
                end = gr.Number(label="End at second (0 = the end)", value=0, minimum=0, min_width=150)
                max_frames = gr.Number(
                    label=f"At most this many frames (limit {limits.max_pose_frames})", value=limits.max_pose_frames,
                    minimum=1, maximum=limits.max_pose_frames, precision=0, min_width=150,
                )  # fmt: skip
            align = gr.Checkbox(
                label="Align poses to the photo (size and position of the person)", value=True
            )
            with gr.Row():
                extract_btn = gr.Button(
                    "Extract poses", variant="primary", elem_id="extract-btn", min_width=120, scale=3
                )
                extract_cancel = cancel_button("extract-cancel")
            pose_status = gr.Markdown(
                "Add a photo and a driving video (or click the example), then press *Extract poses*.",
                label="Pose status",
                elem_id="pose-status",
                elem_classes="status",
            )
            with gr.Row():
                pose_video = gr.Video(
                    label="Poses (before | after aligning)",
                    show_label=False,
                    height=260,
                    elem_id="pose-video",
                    elem_classes="output-box",
                    min_width=300,
                )
                subject_pose = gr.Image(
                    label="The photo and its own pose",
                    height=260,
                    elem_id="subject-pose",
                    elem_classes="output-box",
                    format="png",
                    min_width=300,
                )

        with gr.Column(elem_classes="step"):
            gr.Markdown("### 3 · Subject finetuning (optional)")
            gr.Markdown(FINETUNE_NOTE, elem_classes="note")
            unet_default, vae_default = service.finetune_defaults()
            with gr.Row():
                mode = gr.Radio(
                    ["Full (as in the paper)", "LoRA (smaller and faster)"], value="Full (as in the paper)",
                    label="Mode", min_width=240,
                )  # fmt: skip
                unet_steps = gr.Slider(
                    0, limits.max_finetune_steps, value=unet_default, step=1, label="UNet steps (paper: 500)",
                    elem_id="unet-steps", min_width=240,
                )  # fmt: skip
                vae_steps = gr.Slider(
                    0, limits.max_finetune_steps, value=vae_default, step=1, label="VAE decoder steps (paper: 1500)",
                    elem_id="vae-steps", min_width=240,
                )  # fmt: skip
            gr.Markdown(
                f"This server runs at most **{limits.max_finetune_steps} steps** in all (UNet and VAE together).",
                elem_classes="note", elem_id="finetune-limit",
            )  # fmt: skip
            with gr.Row():
                finetune_btn = gr.Button(
                    "Finetune",
                    variant="primary",
                    elem_id="finetune-btn",
                    min_width=120,
                    scale=3,
                    **needs_model,
                )
                finetune_cancel = cancel_button("finetune-cancel")
            finetune_status = gr.Markdown(
                "Optional: until you finetune, previews and renders use the base model.",
                label="Finetune status",
                elem_id="finetune-status",
                elem_classes="status",
            )
            subject_download = gr.File(
                label="Finetuned subject (download)",
                elem_id="subject-download",
                elem_classes="output-box",
                height=60,
            )

        with gr.Column(elem_classes="step"):
            gr.Markdown("### 4 · Tune and preview")
            with gr.Row():
                # Up to the pose limit: API clients never see the per-tab maximum set after extraction.
                frame = gr.Slider(
                    0, max(limits.max_pose_frames - 1, 1), value=0, step=1, label="Frame to preview",
                    elem_id="frame", min_width=200,
                )  # fmt: skip
                s_i = gr.Slider(
                    0, 20, value=video.image_guidance_scale, step=0.5, label="Image guidance sI (paper: 8)",
                    elem_id="s-i", min_width=200,
                )  # fmt: skip
                s_p = gr.Slider(
                    0, 10, value=video.pose_guidance_scale, step=0.5, label="Pose guidance sP (paper: 3)",
                    elem_id="s-p", min_width=200,
                )  # fmt: skip
            with gr.Row():
                steps = gr.Slider(
                    1, 150, value=video.num_inference_steps, step=1, label="Steps (paper: 100)", elem_id="steps",
                    min_width=200,
                )  # fmt: skip
                sampler = gr.Dropdown(
                    [(f"{name}: {SAMPLERS[name][2]}", name) for name in SAMPLERS], value=video.scheduler,
                    label="Sampler", elem_id="sampler", min_width=200,
                )  # fmt: skip
                with gr.Column(min_width=200):
                    seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=MAX_SEED)
                    random_seed = gr.Button("Random seed", size="sm", elem_id="random-seed")
            fast_toggle = gr.Checkbox(
                value=True, elem_id="fast-preview",
                label=f"Fast preview: {fast.num_inference_steps} {fast.scheduler} steps "
                "(the video always uses the sampler and steps above)",
            )  # fmt: skip
            with gr.Row():
                preview_btn = gr.Button(
                    "Preview frame",
                    variant="primary",
                    elem_id="preview-btn",
                    min_width=120,
                    scale=2,
                    **needs_model,
                )
                grid_btn = gr.Button(
                    "Guidance grid", elem_id="grid-btn", min_width=120, scale=2, **needs_model
                )
                preview_cancel = cancel_button("preview-cancel")
            preview_status = gr.Markdown(
                "A preview shows one frame as the video will look (or quickly, with *Fast preview*).",
                label="Preview status",
                elem_id="preview-status",
                elem_classes="status",
            )
            with gr.Row():
                preview_image = gr.Image(
                    label="Preview",
                    height=300,
                    elem_id="preview-image",
                    elem_classes="output-box",
                    format="png",
                    type="filepath",
                    min_width=300,
                )
                with gr.Column(min_width=300):
                    grid_image = gr.Image(
                        label="Guidance grid", show_label=False, height=300, elem_id="grid-image",
                        elem_classes="output-box", format="png", type="filepath", interactive=False,
                    )  # fmt: skip
                    gr.Markdown("Guidance grid: click a cell to use its sI and sP.", elem_classes="note")
                    with gr.Accordion("Grid values", open=False):
                        s_i_values = gr.Textbox(
                            value="4, 8, 12", label="Image guidance sI (rows)", min_width=120
                        )
                        s_p_values = gr.Textbox(
                            value="1, 3, 5", label="Pose guidance sP (columns)", min_width=120
                        )

        with gr.Column(elem_classes="step"):
            gr.Markdown("### 5 · Render")
            with gr.Row():
                first = gr.Number(
                    label="First frame", value=None, precision=0, minimum=0, min_width=150, elem_id="first"
                )
                last = gr.Number(
                    label="Last frame", value=None, precision=0, minimum=0, min_width=150,
                    elem_id="last",
                )  # fmt: skip
                side_by_side = gr.Checkbox(
                    label="Also a side-by-side video (photo | pose | result)", value=True, min_width=200
                )
                keep_sound = gr.Checkbox(label="Keep the driving video's sound", value=True, min_width=200)
            gr.Markdown(
                f"One render covers at most **{limits.max_render_frames} frames**; longer poses render in parts "
                "(after each part, the range moves on to the next). The video uses the sampler and steps of step 4.",
                elem_classes="note", elem_id="render-limit",
            )  # fmt: skip
            with gr.Row():
                render_btn = gr.Button(
                    "Render video",
                    variant="primary",
                    elem_id="render-btn",
                    min_width=120,
                    scale=3,
                    **needs_model,
                )
                render_cancel = cancel_button("render-cancel")
            render_status = gr.Markdown(
                "Each frame appears below as soon as it is finished; *Cancel* keeps the finished ones.",
                label="Render status",
                elem_id="render-status",
                elem_classes="status",
            )
            with gr.Row():
                live = gr.Image(
                    label="Latest finished frame",
                    height=260,
                    elem_id="live-frame",
                    elem_classes="output-box",
                    format="png",
                    min_width=200,
                )
                result_video = gr.Video(
                    label="Result",
                    height=260,
                    elem_id="result-video",
                    elem_classes="output-box",
                    min_width=300,
                )
            with gr.Row():
                side_video = gr.Video(
                    label="Side by side",
                    visible=True,
                    height=200,
                    elem_id="side-video",
                    elem_classes="output-box",
                    min_width=300,
                )
                frames_zip = gr.File(
                    label="All frames (zip of PNGs)",
                    elem_id="frames-zip",
                    elem_classes="output-box",
                    height=60,
                    min_width=200,
                )

        # ------------------------------------------------------------------ events
        def busy(*buttons):
            """While a step runs: its status makes room for its progress, its run buttons are off,
            its Cancel is on."""
            return lambda: ["", *[gr.Button(interactive=False)] * len(buttons), gr.Button(interactive=True)]

        def idle(kind: str, n_buttons: int, extra=None):
            """After a step: its status from the session (result or error), buttons back."""

            def after(request: gr.Request):
                session = service.session(request.session_hash)
                ready = not service.setting_up or kind == "poses"
                out = [session.load_status(kind)]
                out += [gr.Button(interactive=ready)] * n_buttons + [gr.Button(interactive=False)]
                return out + (extra(session) if extra else [])

            return after

        def ranges(session):
            """Slider and frame-range limits from the session's poses (after extraction)."""
            if not session.poses_path.is_file():
                return [gr.skip()] * 3
            n = len(service.poses(session))
            return [gr.Slider(maximum=max(n - 1, 1)), gr.Number(maximum=n - 1), gr.Number(maximum=n - 1)]

        def next_part(session):
            """After a render: the range moves on to the next part when frames remain."""
            part = session.recall().get("next_range")
            return [part[0], part[1]] if part else [gr.skip(), gr.skip()]

        private = {"api_visibility": "private", "show_progress": "hidden", "queue": False}
        photos = [photo, more]
        chains = [
            (extract_btn, [extract_btn], extract_cancel, h["extract_poses"], "extract_poses",
             [photo, driving, fps, start, end, max_frames, align, more, pose_file],
             [pose_video, subject_pose, pose_status, frame, first, last], pose_status, "poses",
             [frame, first, last], ranges),
            (finetune_btn, [finetune_btn], finetune_cancel, h["finetune"], "finetune",
             [mode, unet_steps, vae_steps, *photos], [finetune_status, subject_download], finetune_status,
             "finetune", [], None),
            (preview_btn, [preview_btn, grid_btn], preview_cancel, h["preview"], "preview",
             [frame, s_i, s_p, steps, sampler, seed, fast_toggle, *photos], [preview_image, preview_status],
             preview_status, "preview", [], None),
            (grid_btn, [preview_btn, grid_btn], preview_cancel, h["guidance_grid"], "guidance_grid",
             [frame, s_i_values, s_p_values, steps, sampler, seed, fast_toggle, *photos], [grid_image, preview_status],
             preview_status, "preview", [], None),
            (render_btn, [render_btn], render_cancel, h["render"], "render",
             [s_i, s_p, steps, sampler, seed, side_by_side, keep_sound, first, last, *photos],
             [live, result_video, side_video, frames_zip, render_status], render_status, "render", [first, last],
             next_part),
        ]  # fmt: skip
        for (
            button,
            run_buttons,
            cancel_btn,
            fn,
            api_name,
            inputs,
            outputs,
            status,
            kind,
            extra_out,
            extra,
        ) in chains:
            run = button.click(busy(*run_buttons), None, [status, *run_buttons, cancel_btn], **private).then(
                fn, inputs, outputs, api_name=api_name, show_progress_on=[status]
            )
            # Gradio runs ``.then`` only after a success; ``.failure`` covers errors.
            after = (
                idle(kind, len(run_buttons), extra),
                None,
                [status, *run_buttons, cancel_btn, *extra_out],
            )
            run.then(*after, **private)
            run.failure(*after, **private)
        for cancel_btn, kind in (
            (extract_cancel, "poses"), (finetune_cancel, "finetune"), (preview_cancel, "preview"), (render_cancel, "render"),
        ):  # fmt: skip
            cancel_btn.click(
                h[f"cancel_{kind}"], None, None, concurrency_limit=None, api_name=f"cancel_{kind}"
            )

        def pick_cell(evt: gr.SelectData, request: gr.Request):
            """A click on the guidance grid: that cell's sI and sP go to the sliders."""
            x, y = evt.index
            scales = service.session(request.session_hash).grid_scales_at(x, y)
            if scales is None:
                return gr.skip(), gr.skip()
            gr.Info(f"sI {scales[0]:g} and sP {scales[1]:g} are set.")
            return scales[0], scales[1]

        side_by_side.change(lambda on: gr.Video(visible=on), side_by_side, side_video, **private)
        grid_image.select(pick_cell, None, [s_i, s_p], api_visibility="private", show_progress="hidden")
        random_seed.click(lambda: random.randint(0, MAX_SEED), None, seed, **private)
        demo.unload(h["end_session"])

        if service.setup is not None:
            timer = gr.Timer(1.0)
            model_buttons = [finetune_btn, preview_btn, grid_btn, render_btn]

            def tick():
                status = service.setup_status()
                done = status.state == "ready"
                return (
                    _setup_text(service),
                    *[gr.Button(interactive=done)] * len(model_buttons),
                    gr.Button(visible=status.state in ("failed", "cancelled")),
                    gr.Timer(active=not done),
                )

            timer.tick(tick, None, [setup_box, *model_buttons, retry, timer], **private)

            def try_again():
                service.setup.start()
                return gr.Timer(active=True), gr.Button(visible=False)

            retry.click(try_again, None, [timer, retry], **private)
    return demo


def _setup_text(service: AppService) -> str:
    """The setup banner: what is being fetched, how much, how fast, how long it will take."""
    status = service.setup_status()
    if status is None:
        return ""
    if status.state == "ready":
        return f"**The DreamPose model is ready** ({for_page(str(status.model))}). Every step works now."
    if status.state in ("failed", "cancelled"):
        return warning(for_page(status.text())) + (
            "\n\nThe finished downloads are kept: *Try the setup again* resumes them. Without network, "
            "start the app with `--no-download` for the manual route."
        )
    bar = ""
    if status.fraction is not None:
        filled = round(20 * status.fraction)
        bar = f"\n\n`{'█' * filled}{'░' * (20 - filled)}` {100 * status.fraction:.0f} %"
    return (
        "**Setting up the DreamPose model** (once): "
        + for_page(status.text())
        + bar
        + "\n\nYou can add your photo and video and extract the poses meanwhile; the other steps start "
        "as soon as the model is ready (no restart needed)."
    )


# ----------------------------------------------------------------------------- launching
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="DreamPose web app")
    parser.add_argument(
        "--model",
        default=None,
        help="DreamPose model folder, finetuned subject or hub id; 'demo' = the demo model, 'tiny' = "
        "random test model (default: $DREAMPOSE_MODEL, else the official model, set up automatically on "
        "first start)",
    )
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="never download the official model (offline machines, CI; also $DREAMPOSE_NO_DOWNLOAD=1): "
        "without a model the page explains how to get one",
    )
    parser.add_argument(
        "--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument(
        "--densepose-weights",
        default=None,
        help="DensePose weights (.pkl/.safetensors path or URL; default: $DREAMPOSE_DENSEPOSE_WEIGHTS, "
        "else downloaded on first use)",
    )
    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)
    add_speed_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=1, help="jobs run at once (default 1 per GPU)")
    return parser.parse_args(argv)


def build_service(args: argparse.Namespace, **kwargs) -> AppService:
    """The service for these options. With no model chosen and none installed, the official
    model is set up in the background, unless downloads are off (``--no-download`` or
    ``$DREAMPOSE_NO_DOWNLOAD``): then the page shows how to get one by hand."""
    from dreampose.setup import SetupOptions, auto_download_enabled

    chosen = args.model or os.environ.get(MODEL_ENV)
    setup = SetupOptions() if not chosen and auto_download_enabled(args.no_download) else None
    return AppService(
        chosen_model(args.model),
        densepose_weights=args.densepose_weights,
        device=args.device,
        dtype=args.dtype,
        cpu_offload=args.cpu_offload,
        speed=speed_settings(args),
        setup=setup,
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO)
    args = parse_args(argv)
    service = build_service(args)
    if args.compile and service.status.ready:
        log.info("compiling the UNet before serving (once per start) ...")
        log.info("compiled and warmed up in %.0f s", service.warm_up())
    demo = create_demo(service)
    service.sessions.start_sweeping()  # idle sessions go even when no request comes
    # `kill` (SIGTERM, as service managers and containers stop programs) stops the server the
    # way Ctrl-C does, so the cleanup below runs; Python's default would skip it.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        demo.queue(max_size=20, default_concurrency_limit=args.concurrency).launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            max_file_size=int(service.limits.max_upload_mb * 1e6),
            prevent_thread_lock=True,
            css=CSS,
        )
        _serve_until_interrupted(demo)
    finally:
        log.info("stopping: ending running jobs, deleting session folders and Gradio's cached files")
        try:
            service.close()  # running jobs stop, then every session folder is deleted
        finally:  # even after a second Ctrl-C
            demo.close()  # Gradio empties its cache as the server stops (delete_cache, see create_demo)


def _serve_until_interrupted(demo: gr.Blocks) -> None:
    """Wait while the server runs; Ctrl-C or SIGTERM end the wait (Gradio's own wait would
    leave the server half-closed, skipping its cache cleanup)."""
    try:
        while demo.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
