"""`dreampose finetune`: make a subject model from one or more photos (paper section 4.3)."""

from __future__ import annotations

import argparse
import contextlib

from dreampose.base.arguments import add_settings_arguments, settings_from_args
from dreampose.cli.options import canvas_options
from dreampose.runtime.options import add_densepose_arguments, add_device_arguments, load_densepose


def add_parser(subparsers) -> None:
    from dreampose.training.settings import FinetuneSettings

    parser = subparsers.add_parser(
        "finetune",
        help="finetune a DreamPose model on photos of one subject",
        description=(
            "Subject-specific finetuning: UNet + adapter on the photos with aligned crop "
            "augmentation, then the VAE decoder. The output folder works as --model for "
            "preview and render. Ctrl-C stops after the current step and keeps a checkpoint; "
            "--resume continues it."
        ),
    )
    parser.add_argument(
        "--model", default=None, help="base DreamPose model: folder or hub id (default: as for render)"
    )
    parser.add_argument("--image", action="append", required=True, help="subject photo (repeat for several)")
    parser.add_argument(
        "--poses", help="pose file (.npz) with one frame per --image, in order; default: extract"
    )
    parser.add_argument("--output", required=True, help="folder for the subject model")
    add_settings_arguments(parser, FinetuneSettings)
    add_device_arguments(parser, dtype=False)  # trained weights stay fp32; see --mixed-precision
    add_densepose_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output")
    parser.set_defaults(func=run)


def settings_for(args: argparse.Namespace):
    """The options given, else the model's own defaults (size, ``finetune.json``), else the paper's."""
    from dreampose.runtime.references import resolve
    from dreampose.training.settings import FinetuneSettings

    own = {k: v for k, v in resolve(args.model).finetune_defaults().items() if getattr(args, k, None) is None}
    return settings_from_args(FinetuneSettings, args, **canvas_options(args), **own)


def run(args: argparse.Namespace) -> int:
    import threading

    from dreampose.base.files import writable_folder
    from dreampose.runtime.references import chosen_model
    from dreampose.training.finetune import finetune

    settings = settings_for(args)
    writable_folder(args.output)  # before DensePose and the model load
    extractor = None
    if args.poses is None:  # each photo's pose is extracted
        extractor = load_densepose(args)
    cancel = threading.Event()
    with stop_on_interrupt(cancel):
        result = finetune(
            chosen_model(args.model),
            args.image,
            args.output,
            poses=args.poses,
            settings=settings,
            cancel=cancel,
            resume=args.resume,
            show_progress=True,
            device=args.device,
            extractor=extractor,
        )
    if result.cancelled and not any(result.steps_done.values()):
        print("stopped before the first step: nothing was trained or written")
        return 130
    if result.cancelled:
        print(f"stopped; a checkpoint is in {result.output} (continue with --resume)")
        return 130
    print(f"subject model written to {result.output}")
    return 0


@contextlib.contextmanager
def stop_on_interrupt(cancel):
    """First Ctrl-C sets ``cancel`` (the run stops after its step and saves); a second one
    interrupts at once."""
    import signal

    if threading_is_main():
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if cancel.is_set():
                raise KeyboardInterrupt
            cancel.set()
            print("\nstopping after this step (Ctrl-C again to abort now)", flush=True)

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
    else:  # signal handlers can only be set from the main thread
        yield


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
