"""`dreampose preview`: render one frame (or a guidance grid of it) to a PNG."""

from __future__ import annotations

from dreampose.cli.options import add_render_arguments, load_model, render_inputs


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "preview",
        help="render a single frame to a PNG",
        description="Render one frame with the same options as `render`, to judge settings quickly.",
    )
    add_render_arguments(parser)
    parser.add_argument("--frame", type=int, default=0, help="pose frame to render (default 0)")
    parser.add_argument(
        "--guidance-grid",
        metavar="SI_VALUES:SP_VALUES",
        help="render the frame for every pair of image (rows) and pose (columns) guidance weights, "
        "e.g. '4,8,12:1,3,5', into one labelled PNG",
    )
    parser.add_argument("--output", required=True, help="output .png")
    parser.set_defaults(func=run)


def run(args) -> int:
    from dreampose.base.files import writable_file
    from dreampose.media.frames import save_png
    from dreampose.rendering.frames import preview_frame
    from dreampose.rendering.grid import guidance_grid

    settings, poses = render_inputs(args)
    grid = _grid_values(args.guidance_grid)
    if not 0 <= args.frame < len(poses):
        raise ValueError(f"--frame {args.frame} does not exist: the poses have frames 0 to {len(poses) - 1}")
    output = writable_file(args.output, suffixes=(".png",))
    pipe = load_model(args, settings)
    if grid is None:
        picture = preview_frame(pipe, args.image, poses, args.frame, settings)
    else:
        picture = guidance_grid(pipe, args.image, poses, args.frame, *grid, settings).image
    save_png(output, picture)
    print(f"wrote {output}")
    return 0


def _grid_values(text: str | None) -> tuple[list[float], list[float]] | None:
    from dreampose.rendering.grid import parse_scales

    if text is None:
        return None
    image_values, sep, pose_values = text.partition(":")
    if not sep:
        raise ValueError(
            f"--guidance-grid must look like SI_VALUES:SP_VALUES, e.g. 4,8,12:1,3,5; got {text!r}"
        )
    return parse_scales(image_values, "image guidance values"), parse_scales(
        pose_values, "pose guidance values"
    )
