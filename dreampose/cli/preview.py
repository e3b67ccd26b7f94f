"""`dreampose preview`: render one frame to a PNG."""

from __future__ import annotations

from dreampose.cli.render_args import add_render_arguments, load_poses_from_args, settings_from_args


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("preview", help="render a single frame to a PNG")
    add_render_arguments(parser)
    parser.add_argument("--frame", type=int, default=0, help="pose frame to render (default 0)")
    parser.add_argument("--output", required=True, help="output .png")
    parser.set_defaults(func=run)


def run(args) -> int:
    from PIL import Image

    from dreampose import render as service

    settings = settings_from_args(args)
    poses = load_poses_from_args(args)
    service.check_writable(service.Path(args.output))
    pipe = service.load_pipeline(args.model, args.device, args.cpu_offload)
    frame = service.preview_frame(pipe, args.image, poses, args.frame, settings)
    Image.fromarray(frame).save(args.output)
    print(f"wrote {args.output}")
    return 0
