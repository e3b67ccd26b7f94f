"""`dreampose convert`: import the official DreamPose checkpoints into a diffusers-format model."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="convert official DreamPose .pth checkpoints")
    parser.add_argument(
        "--base-model", default="CompVis/stable-diffusion-v1-4", help="Stable Diffusion 1.x hub id or folder"
    )
    parser.add_argument(
        "--image-encoder", default="openai/clip-vit-base-patch32", help="CLIP vision hub id or folder"
    )
    parser.add_argument("--unet", required=True, help="official unet_epoch_N.pth")
    parser.add_argument("--adapter", required=True, help="official adapter_N.pth")
    parser.add_argument("--vae", default=None, help="official vae_N.pth (subject models; optional)")
    parser.add_argument(
        "--numerics",
        choices=("official", "dreampose"),
        default="official",
        help="input conventions saved in the model: 'official' reproduces the official inference "
        "code (default); 'dreampose' uses this project's convention",
    )
    parser.add_argument("--output", required=True, help="folder for the converted model")
    parser.set_defaults(func=run)


def run(args) -> int:
    from dreampose.model.convert import convert_official

    pipe = convert_official(
        args.base_model, args.image_encoder, args.unet, args.adapter, args.vae, numerics=args.numerics
    )
    pipe.save_pretrained(args.output, safe_serialization=True)
    print(f"wrote {args.output} (numerics: {args.numerics})")
    return 0
