"""`dreampose convert`: import the official DreamPose checkpoints into a diffusers-format model."""

from __future__ import annotations

from pathlib import Path

from dreampose.base import paper
from dreampose.model.numerics import NUMERICS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="convert official DreamPose .pth checkpoints")
    parser.add_argument(
        "--base-model",
        default=paper.BASE_MODEL,
        help=f"Stable Diffusion 1.x hub id or folder (default {paper.BASE_MODEL})",
    )
    parser.add_argument(
        "--image-encoder",
        default=paper.IMAGE_ENCODER,
        help=f"CLIP vision hub id or folder (default {paper.IMAGE_ENCODER})",
    )
    parser.add_argument("--unet", required=True, help="official unet_epoch_N.pth")
    parser.add_argument("--adapter", required=True, help="official adapter_N.pth")
    parser.add_argument("--vae", default=None, help="official vae_N.pth (subject models; optional)")
    parser.add_argument(
        "--numerics",
        choices=NUMERICS,
        default="official",
        help="input conventions saved in the model: 'official' reproduces the official inference "
        "code (default); 'dreampose' uses this project's convention",
    )
    parser.add_argument("--output", required=True, help="folder for the converted model")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json

    from dreampose.base.files import atomic_dir, writable_folder
    from dreampose.model.convert import CONVERSION_RECORD, conversion_record, convert_official

    writable_folder(Path(args.output).parent, min_free_bytes=6 * 2**30)  # about 5 GB of weights
    pipe = convert_official(
        args.base_model, args.image_encoder, args.unet, args.adapter, args.vae, numerics=args.numerics
    )
    with atomic_dir(args.output) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        files = {"unet": args.unet, "adapter": args.adapter} | ({"vae": args.vae} if args.vae else {})
        record = conversion_record(args.base_model, args.image_encoder, files, args.numerics)
        (tmp / CONVERSION_RECORD).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.output} (numerics: {args.numerics})")
    return 0
