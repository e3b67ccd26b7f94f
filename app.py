"""DreamPose web app: a photo of a person + a driving video -> a video of that person dancing.

This file only builds the page (``create_demo``) and launches it; every step runs in
``dreampose.app`` (one module per step), which shares its code with the ``dreampose`` CLI.

    python app.py                      # model from models/dreampose (or $DREAMPOSE_MODEL)
    python app.py --model tiny         # tiny random model: the whole app offline, videos are noise
    python app.py --model PATH_OR_ID --host 0.0.0.0 --port 7860 --share

Every step is also an API endpoint (``extract_poses``, ``finetune``, ``preview``,
``guidance_grid``, ``render``) that ``gradio_client.Client`` can call in order.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import signal
import time
from pathlib import Path

import gradio as gr

from dreampose.app import finetune as finetune_step
from dreampose.app import poses as pose_step
from dreampose.app import render as render_step
from dreampose.app.messages import OUT_OF_MEMORY, UserError, for_page, is_out_of_memory, sentence
from dreampose.app.service import AppService
from dreampose.app.zerogpu import gpu
from dreampose.cli.options import add_speed_arguments, speed_settings
from dreampose.loading import DEVICE_HELP, DTYPE_CHOICES, DTYPE_HELP, resolve_model
from dreampose.model.schedulers import SAMPLERS
from dreampose.render import RenderSettings, parse_scales
from dreampose.training.settings import FinetuneSettings

PAPER_FINETUNE = FinetuneSettings()  # slider defaults: the paper's 500 + 1500 steps

log = logging.getLogger("dreampose.app")
ASSETS = Path(__file__).resolve().parent / "assets"
MAX_SEED = 2**31 - 1

TINY_BANNER = (
    "### ⚠️ Test mode\n**Test mode: the tiny random model is running.** Every step works, but the pictures and videos "
    "it makes are noise. Start the app with a real DreamPose model to animate people."
)
INTRO = """\
# DreamPose: animate a photo with a dance video
Go through the steps in order: **1** add a photo of a person and a driving video, **2** extract the
poses, **3** (optional) finetune the model on the photo, **4** preview a frame and tune the guidance,
**5** render the video. Your work stays in this browser tab until you close it.
"""
FINETUNE_NOTE = (
    "Finetuning teaches the model this person's face and clothes (the paper finetunes for 500 + 1500 "
    "steps). You can skip it: the result will then look less like the person in the photo."
)


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


def _bar(progress: gr.Progress):
    return lambda done, total, text: progress((done, total), desc=text)


def _settings(s_i, s_p, steps, scheduler, seed) -> RenderSettings:
    return RenderSettings(
        image_guidance_scale=float(s_i),
        pose_guidance_scale=float(s_p),
        num_inference_steps=int(steps),
        scheduler=str(scheduler),
        seed=int(seed),
    )


def _photos(photo, more) -> list:
    return [photo, *(more or [])] if photo else list(more or [])


def create_handlers(service: AppService) -> dict:
    """One function per endpoint; the session is Gradio's per-tab (or per-client) session."""

    @gpu(duration=120)
    def extract_poses(
        photo, more, driving, fps, start, end, max_frames, align, request: gr.Request, progress=gr.Progress()
    ):
        with user_errors():
            session = service.session(request.session_hash)
            r = pose_step.extract_poses(
                service,
                session,
                _photos(photo, more),
                driving,
                fps,
                start,
                end,
                max_frames,
                align,
                _bar(progress),
            )
        last = r.num_frames - 1
        return (
            str(r.preview_video),
            r.subject_image,
            r.message,
            gr.update(maximum=max(last, 1), value=0),
            gr.update(value=0),
            gr.update(value=last),
        )

    @gpu(duration=600)
    def finetune(photo, more, mode, unet_steps, vae_steps, request: gr.Request, progress=gr.Progress()):
        with user_errors():
            session = service.session(request.session_hash)
            r = finetune_step.finetune(
                service,
                session,
                _photos(photo, more),
                mode.startswith("LoRA"),
                unet_steps,
                vae_steps,
                _bar(progress),
            )
        return r.message, (str(r.download) if r.download else None)

    @gpu(duration=60)
    def preview(
        photo, more, frame, s_i, s_p, steps, scheduler, seed, request: gr.Request, progress=gr.Progress()
    ):
        with user_errors():
            session = service.session(request.session_hash)
            progress(0, desc="Rendering one frame")
            image, used = render_step.preview(
                service, session, _photos(photo, more), frame, _settings(s_i, s_p, steps, scheduler, seed)
            )
        return image, used

    @gpu(duration=300)
    def guidance_grid(
        photo,
        more,
        frame,
        s_i_values,
        s_p_values,
        steps,
        scheduler,
        seed,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        with user_errors():
            session = service.session(request.session_hash)
            image_scales = parse_scales(s_i_values, "Image guidance values")
            pose_scales = parse_scales(s_p_values, "Pose guidance values")
            settings = _settings(image_scales[0], pose_scales[0], steps, scheduler, seed)
            return render_step.guidance_grid(
                service,
                session,
                _photos(photo, more),
                frame,
                image_scales,
                pose_scales,
                settings,
                _bar(progress),
            )

    @gpu(duration=900)
    def render(
        photo,
        more,
        first,
        last,
        s_i,
        s_p,
        steps,
        scheduler,
        seed,
        side_by_side,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        with user_errors():
            session = service.session(request.session_hash)
            settings = _settings(s_i, s_p, steps, scheduler, seed)
            r = render_step.render(
                service, session, _photos(photo, more), first, last, settings, side_by_side, _bar(progress)
            )
        if r.video is None:
            raise gr.Error(for_page(r.message))
        return str(r.video), (str(r.frames_zip) if r.frames_zip else None), r.message

    def cancel(kind: str):
        def handler(request: gr.Request):
            if service.cancel(request.session_hash, kind):
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
        "cancel_finetune": cancel("finetune"),
        "cancel_render": cancel("render"),
        "end_session": end_session,
    }


def cache_lifetime(limits) -> tuple[int, int]:
    """Gradio's ``delete_cache`` (every, age) in seconds: uploads and results that Gradio keeps
    in its own cache are deleted once older than ``limits.cache_ttl_s`` (checked every tenth
    of it, at most every 10 minutes), and all of them when the server stops."""
    age = max(1, int(limits.cache_ttl_s))
    return max(1, min(age // 10, 600)), age


def create_demo(service: AppService) -> gr.Blocks:
    """The whole page. Shows setup instructions instead when the model is missing."""
    with gr.Blocks(title="DreamPose", delete_cache=cache_lifetime(service.limits)) as demo:
        if not service.status.ready:
            gr.Markdown(service.status.message)
            return demo
        gr.Markdown(INTRO)
        if service.is_tiny:
            gr.Markdown(TINY_BANNER, elem_id="tiny-banner")
        h = create_handlers(service)
        fast = service.default_settings(fast=True)  # previews and grids: fast preset
        paper = service.default_settings()  # the video: the paper's sampler unless changed
        default_steps = 4 if service.is_tiny else fast.num_inference_steps
        render_steps_default = 4 if service.is_tiny else paper.num_inference_steps
        limits = service.limits

        with gr.Group():
            gr.Markdown("## 1 · Inputs")
            with gr.Row():
                photo = gr.Image(label="Photo of the person", type="filepath", height=320, elem_id="photo")
                driving = gr.File(
                    label="Driving video (or a pose file: .npz, or the official .npy poses as a .zip)",
                    file_types=["video", ".npz", ".zip"],
                    elem_id="driving",
                )
            more = gr.File(
                label="More photos of the same person (optional: they help finetuning)",
                file_count="multiple",
                file_types=["image"],
                height=110,
            )
            examples = [[str(ASSETS / "example_photo.png"), str(ASSETS / "example_dance.mp4")]]
            if all(Path(p).is_file() for p in examples[0]):
                gr.Examples(examples, inputs=[photo, driving], label="Example (synthetic drawings)")

        with gr.Group():
            gr.Markdown("## 2 · Poses")
            with gr.Row():
                fps = gr.Number(
                    label="Frames per second (0 = as in the video)", value=0, minimum=0, maximum=60
                )
                start = gr.Number(label="Start at second", value=0, minimum=0)
                end = gr.Number(label="End at second (0 = the end)", value=0, minimum=0)
                max_frames = gr.Number(
                    label=f"At most this many frames (limit {limits.max_pose_frames})",
                    value=limits.max_pose_frames, minimum=1, maximum=limits.max_pose_frames, precision=0,
                )  # fmt: skip
            align = gr.Checkbox(
                label="Align poses to the photo (size and position of the person)", value=True
            )
            extract_btn = gr.Button("Extract poses", variant="primary", elem_id="extract-btn")
            with gr.Row():
                pose_video = gr.Video(
                    label="Poses (before | after aligning)", height=300, elem_id="pose-video"
                )
                subject_pose = gr.Image(
                    label="The photo and its own pose", height=300, elem_id="subject-pose"
                )
            pose_status = gr.Markdown(elem_id="pose-status")

        with gr.Group():
            gr.Markdown("## 3 · Subject finetuning (optional)")
            gr.Markdown(FINETUNE_NOTE)
            with gr.Row():
                mode = gr.Radio(
                    ["Full (as in the paper)", "LoRA (smaller and faster)"],
                    value="Full (as in the paper)",
                    label="Mode",
                )
                unet_steps = gr.Slider(
                    0,
                    limits.max_finetune_steps,
                    value=min(PAPER_FINETUNE.unet_steps, limits.max_finetune_steps),
                    step=1,
                    label=f"UNet steps (paper: {PAPER_FINETUNE.unet_steps})",
                    elem_id="unet-steps",
                )
                vae_steps = gr.Slider(
                    0,
                    limits.max_finetune_steps,
                    value=min(PAPER_FINETUNE.vae_steps, limits.max_finetune_steps),
                    step=1,
                    label=f"VAE decoder steps (paper: {PAPER_FINETUNE.vae_steps})",
                    elem_id="vae-steps",
                )
            with gr.Row():
                finetune_btn = gr.Button("Finetune", variant="primary", elem_id="finetune-btn")
                finetune_cancel = gr.Button("Cancel finetuning", variant="stop")
            finetune_status = gr.Markdown(elem_id="finetune-status")
            subject_download = gr.File(label="Finetuned subject (download)", elem_id="subject-download")

        with gr.Group():
            gr.Markdown("## 4 · Tune and preview")
            with gr.Row():
                frame = gr.Slider(0, 1, value=0, step=1, label="Frame to preview", elem_id="frame")
                s_i = gr.Slider(
                    0, 20, value=fast.image_guidance_scale, step=0.5, label="Image guidance sI (paper: 8)"
                )
                s_p = gr.Slider(
                    0, 10, value=fast.pose_guidance_scale, step=0.5, label="Pose guidance sP (paper: 3)"
                )
            with gr.Row():
                steps = gr.Slider(
                    1, 150, value=default_steps, step=1, label="Steps (paper: 100 with pndm)", elem_id="steps"
                )
                scheduler = gr.Dropdown(list(SAMPLERS), value=fast.scheduler, label="Sampler")
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=MAX_SEED)
                random_seed = gr.Button("Random seed")
            preview_btn = gr.Button("Preview frame", variant="primary", elem_id="preview-btn")
            with gr.Row():
                preview_image = gr.Image(label="Preview", height=320, elem_id="preview-image")
                with gr.Column():
                    used = gr.Markdown(elem_id="preview-used")
                    s_i_values = gr.Textbox(value="4, 8, 12", label="Grid: image guidance values (rows)")
                    s_p_values = gr.Textbox(value="1, 3, 5", label="Grid: pose guidance values (columns)")
                    grid_btn = gr.Button("Guidance grid")
            grid_image = gr.Image(
                label="Guidance grid: pick the sI and sP you like", height=420, elem_id="grid-image"
            )

        with gr.Group():
            gr.Markdown("## 5 · Render")
            with gr.Row():
                first = gr.Number(label="First frame", value=0, precision=0, minimum=0)
                last = gr.Number(label="Last frame", value=0, precision=0, minimum=0)
                side_by_side = gr.Checkbox(label="Side by side (photo | pose | result)", value=False)
            with gr.Row():
                render_steps = gr.Slider(
                    1, 150, value=render_steps_default, step=1, label="Steps for the video (paper: 100)"
                )
                render_scheduler = gr.Dropdown(
                    list(SAMPLERS), value=paper.scheduler, label="Sampler for the video (paper: pndm)"
                )
            with gr.Row():
                render_btn = gr.Button("Render video", variant="primary", elem_id="render-btn")
                render_cancel = gr.Button("Cancel rendering", variant="stop")
            with gr.Row():
                video = gr.Video(label="Result", height=420, elem_id="result-video")
                with gr.Column():
                    render_status = gr.Markdown(elem_id="render-status")
                    frames_zip = gr.File(label="All frames (zip of PNGs)", elem_id="frames-zip")

        photos = [photo, more]
        tune = [s_i, s_p, steps, scheduler, seed]
        extract_btn.click(
            h["extract_poses"],
            [*photos, driving, fps, start, end, max_frames, align],
            [pose_video, subject_pose, pose_status, frame, first, last],
            api_name="extract_poses",
        )
        finetune_btn.click(
            h["finetune"],
            [*photos, mode, unet_steps, vae_steps],
            [finetune_status, subject_download],
            api_name="finetune",
        )
        preview_btn.click(h["preview"], [*photos, frame, *tune], [preview_image, used], api_name="preview")
        grid_btn.click(
            h["guidance_grid"],
            [*photos, frame, s_i_values, s_p_values, steps, scheduler, seed],
            grid_image,
            api_name="guidance_grid",
        )
        render_btn.click(
            h["render"],
            [*photos, first, last, s_i, s_p, render_steps, render_scheduler, seed, side_by_side],
            [video, frames_zip, render_status],
            api_name="render",
        )
        finetune_cancel.click(
            h["cancel_finetune"], None, None, concurrency_limit=None, api_name="cancel_finetune"
        )
        render_cancel.click(h["cancel_render"], None, None, concurrency_limit=None, api_name="cancel")
        random_seed.click(lambda: random.randint(0, MAX_SEED), None, seed, api_visibility="private")
        demo.unload(h["end_session"])
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="DreamPose web app")
    parser.add_argument(
        "--model",
        default=None,
        help="DreamPose model folder or hub id; 'tiny' = random test model "
        "(default: $DREAMPOSE_MODEL, else models/dreampose)",
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


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO)
    args = parse_args(argv)
    service = AppService(
        resolve_model(args.model),
        densepose_weights=args.densepose_weights,
        device=args.device,
        dtype=args.dtype,
        cpu_offload=args.cpu_offload,
        speed=speed_settings(args),
    )
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
