"""What `preview` and `render` share: their options, their inputs, and the model they load.

Options from settings dataclasses are made by ``dreampose.base.arguments``; the device,
speed and DensePose options that the app shares too are ``dreampose.runtime.options``.
Only light modules are imported here: ``dreampose --help`` must not load torch.
"""

from __future__ import annotations

import argparse

from dreampose.base.arguments import add_settings_arguments, settings_from_args
from dreampose.runtime.options import add_device_arguments, add_speed_arguments, speed_settings


# --------------------------------------------------------------------------- preview and render
def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """What `preview` and `render` share: model, inputs, sampling settings, device."""
    from dreampose.rendering.settings import RenderSettings

    parser.add_argument(
        "--model",
        default=None,
        help="DreamPose model folder, hub id or finetuned subject; 'demo' = the demo model, "
        "'tiny' = random test model (default: $DREAMPOSE_MODEL, else the model `dreampose download` "
        "set up, else models/dreampose)",
    )
    parser.add_argument("--image", required=True, help="photo of the subject")
    parser.add_argument(
        "--poses",
        required=True,
        help="driving poses: a pose file (.npz from `dreampose extract-poses`), or the official "
        "frame_N_densepose.npy files as a folder or .zip",
    )
    parser.add_argument(
        "--subject-pose",
        default=None,
        help="the photo's own pose file (`dreampose extract-poses photo.jpg`): aligns the driving "
        "poses to the subject's body size and position (feet on the same ground line)",
    )
    add_settings_arguments(parser, RenderSettings)
    add_device_arguments(parser)
    add_speed_arguments(parser)


def render_inputs(args: argparse.Namespace):
    """(settings, poses on the canvas) from the `preview`/`render` options."""
    from dreampose.rendering.poses import load_driving_poses, place_poses
    from dreampose.rendering.settings import RenderSettings
    from dreampose.runtime.references import resolve
    from pose_extraction.pose_sequence import PoseSequence

    ref = resolve(args.model)
    settings = settings_from_args(RenderSettings, args, **canvas_options(args, ref))
    poses = load_driving_poses(args.poses)
    subject = PoseSequence.load(args.subject_pose) if args.subject_pose else None
    numerics = ref.numerics()  # official models place poses their own way
    return settings, place_poses(poses, settings.height, settings.width, subject, numerics=numerics)


def canvas_options(args: argparse.Namespace, model=None) -> dict:
    """``--height``/``--width`` as given, else the size the model was trained at."""
    from dreampose.runtime.references import model_canvas

    height, width = model_canvas(args.model if model is None else model)
    return {"height": args.height or height, "width": args.width or width}


def load_model(args: argparse.Namespace, settings=None):
    """The model named by ``--model`` on the device of ``--device``/``--dtype``, with the
    speed settings asked for; with ``--compile``, warmed up for ``settings``' canvas."""
    from dreampose.runtime.loading import load_pipeline
    from dreampose.runtime.references import resolve
    from dreampose.runtime.speed import auto_frame_batch, warm_up

    speed = speed_settings(args)
    pipe = load_pipeline(resolve(args.model), args.device, args.dtype, args.cpu_offload, speed)
    pipe.set_progress_bar_config(disable=True)  # the command shows one bar for the whole job
    if speed.compile_unet and settings is not None:
        batch = settings.frame_batch_size or auto_frame_batch(pipe, settings.height, settings.width)
        print("compiling the UNet (once per run) ...", flush=True)
        print(f"compiled in {warm_up(pipe, settings.height, settings.width, batch):.0f} s", flush=True)
    return pipe
