"""DreamPose web app: a photo of a person + a driving video -> a video of that person dancing.

This file composes the page from one module per step (``dreampose.app.page``) over the
service that holds the work (``dreampose.app.service``), and launches it. The steps share
their code with the ``dreampose`` CLI.

    python app.py                      # the official model (set up automatically on first start)
    python app.py --model tiny         # tiny random model: the whole app offline, videos are noise
    python app.py --model PATH_OR_ID --host 0.0.0.0 --port 7860 --share
    python app.py --no-download        # never download: without a model, show how to get one

Every step is also an API endpoint (``extract_poses``, ``finetune``, ``preview``,
``guidance_grid``, ``render``, and ``cancel_*`` for each) that ``gradio_client.Client`` can
call in order; the README lists their parameters.
"""

from __future__ import annotations

import argparse
import logging
import os

import gradio as gr

from dreampose.app.page import finetune, header, inputs, poses, preview, render
from dreampose.app.page.launch import serve
from dreampose.app.page.style import CSS
from dreampose.app.page.wiring import cache_lifetime, end_sessions, page_uploads
from dreampose.app.service import AppService
from dreampose.runtime.options import (
    add_densepose_weights_argument,
    add_device_arguments,
    add_speed_arguments,
    speed_settings,
)
from dreampose.runtime.references import DEMO, MODEL_ENV, chosen_model

__all__ = ["CSS", "build_service", "create_demo", "main", "parse_args"]
log = logging.getLogger("dreampose.app")


def create_demo(service: AppService) -> gr.Blocks:
    """The whole page. Shows setup instructions instead when the model is missing and will
    not be downloaded."""
    with gr.Blocks(title="DreamPose", delete_cache=cache_lifetime(service.limits)) as demo:
        if not service.status.ready and service.setup is None:
            gr.Markdown(service.status.message)  # how to get a model
            return demo
        top = header.create(service)
        photos = inputs.create(service)
        pose_step = poses.create(service)
        finetune_step = finetune.create(service)
        preview_step = preview.create(service)
        render_step = render.create(service)

        poses.wire(service, pose_step, photos, preview_step.frame, render_step.first, render_step.last)
        finetune.wire(service, finetune_step, photos)
        preview.wire(service, preview_step, photos)
        render.wire(service, render_step, photos, preview_step)
        needs_model = [*finetune_step.controls.buttons, *preview_step.controls.buttons]
        header.wire(service, top, [*needs_model, *render_step.controls.buttons])
        end_sessions(service, demo)
    service.uploads = page_uploads(demo)
    return demo


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
    add_densepose_weights_argument(parser)
    add_device_arguments(parser)
    add_speed_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=1, help="jobs run at once (default 1 per GPU)")
    parser.add_argument(
        "--mcp",
        action="store_true",
        help="also serve each step as an MCP tool at /gradio_api/mcp/ (for AI agents; all MCP callers "
        "share one session)",
    )
    return parser.parse_args(argv)


def build_service(args: argparse.Namespace, **kwargs) -> AppService:
    """The service for these options. With no model chosen and none installed, the official
    model is set up in the background, unless downloads are off (``--no-download`` or
    ``$DREAMPOSE_NO_DOWNLOAD``): then the page shows how to get one by hand."""
    from dreampose.setup import SetupOptions, auto_download_enabled

    chosen = args.model or os.environ.get(MODEL_ENV)
    setup = SetupOptions() if not chosen and auto_download_enabled(args.no_download) else None
    # Nothing chosen and nothing installed: the page opens on the demo model at once.
    return AppService(
        chosen_model(args.model),
        densepose_weights=args.densepose_weights,
        device=args.device,
        dtype=args.dtype,
        cpu_offload=args.cpu_offload,
        speed=speed_settings(args),
        setup=setup,
        stand_in=None if chosen else DEMO,
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO)
    args = parse_args(argv)
    service = build_service(args)
    if args.compile and service.status.ready:
        log.info("compiling the UNet before serving (once per start) ...")
        log.info("compiled and warmed up in %.0f s", service.warm_up())
    serve(
        create_demo,
        service,
        concurrency=args.concurrency,
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        mcp_server=args.mcp,
    )


if __name__ == "__main__":
    main()
