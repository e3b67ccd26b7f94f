"""`dreampose finetune`: make a subject model from one or more photos (paper section 4.3)."""

from __future__ import annotations

import argparse
import contextlib


def add_parser(subparsers) -> None:
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
    parser.add_argument("--model", required=True, help="base DreamPose model: folder or hub id")
    parser.add_argument("--image", action="append", required=True, help="subject photo (repeat for several)")
    parser.add_argument(
        "--poses", help="pose file (.npz) with one frame per --image, in order; default: extract"
    )
    parser.add_argument("--output", required=True, help="folder for the subject model")
    parser.add_argument("--unet-steps", type=int, default=500)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--unet-lr", type=float, default=1e-5)
    parser.add_argument("--vae-lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument(
        "--lora-rank", type=int, default=0, help="train a rank-R LoRA instead of the whole UNet"
    )
    parser.add_argument("--height", type=int, default=640)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto")
    parser.add_argument("--8bit-adam", dest="use_8bit_adam", action="store_true", help="needs bitsandbytes")
    parser.add_argument(
        "--no-gradient-checkpointing",
        dest="gradient_checkpointing",
        action="store_false",
        help="faster, more memory",
    )
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    parser.add_argument("--device", help="torch device (default: cuda if available)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import threading

    from dreampose.training.finetune import FinetuneSettings, finetune

    cancel = threading.Event()

    settings = FinetuneSettings(
        unet_steps=args.unet_steps,
        unet_lr=args.unet_lr,
        vae_steps=args.vae_steps,
        vae_lr=args.vae_lr,
        batch_size=args.batch_size,
        seed=args.seed,
        height=args.height,
        width=args.width,
        lora_rank=args.lora_rank,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        use_8bit_adam=args.use_8bit_adam,
        checkpoint_every=args.checkpoint_every,
    )
    with stop_on_interrupt(cancel):
        result = finetune(
            args.model,
            args.image,
            args.output,
            poses=args.poses,
            settings=settings,
            cancel=cancel,
            resume=args.resume,
            show_progress=True,
            device=args.device,
        )
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
