"""Command-line options made from the settings dataclasses, and the options every command shares.

A settings field with ``help`` metadata becomes an option: ``--field-name`` (or its
``flag``), its type and default from the field, ``choices`` when given. Booleans become
switches that flip the default. So the defaults and help texts live once, on the settings
(``RenderSettings``, ``FinetuneSettings``, ``TrainSettings``), and ``settings_from_args``
builds the settings back from the parsed arguments.

Only light modules are imported here: ``dreampose --help`` must not load torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing


def add_settings_arguments(
    parser: argparse.ArgumentParser,
    settings_cls,
    exclude: tuple[str, ...] = (),
    overrides_of: str | None = None,
) -> None:
    """One option per field of ``settings_cls`` that has ``help`` metadata.

    With ``overrides_of`` (e.g. "--preset"), options default to None and only override the
    settings that option chose (see ``settings_from_args(base=...)``).
    """
    hints = typing.get_type_hints(settings_cls)
    for f in dataclasses.fields(settings_cls):
        if "help" not in f.metadata or f.name in exclude:
            continue
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        kind = _base_type(hints[f.name])
        default = None if overrides_of else f.default
        if kind is bool:
            action = "store_false" if f.default else "store_true"
            parser.add_argument(flag, dest=f.name, action=action, default=default, help=f.metadata["help"])
            continue
        if overrides_of:
            shown = f" (default from {overrides_of})"
        elif default is None:  # the help says what happens without it
            shown = ""
        else:
            shown = f" (default {default:g})" if isinstance(default, float) else f" (default {default})"
        parser.add_argument(
            flag,
            dest=f.name,
            metavar=f.metadata.get("metavar", flag.lstrip("-").upper().replace("-", "_")),
            type=kind,
            default=default,
            choices=f.metadata.get("choices"),
            help=f.metadata["help"] + shown,
        )


def settings_from_args(settings_cls, args: argparse.Namespace, base=None, **overrides):
    """``settings_cls`` from the options :func:`add_settings_arguments` made (plus ``overrides``).

    With ``base`` (a ``settings_cls``), options left at None keep the base's values.
    """
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(settings_cls)
        if "help" in f.metadata and hasattr(args, f.name)
    }
    if base is not None:
        values = {k: v for k, v in values.items() if v is not None}
        return dataclasses.replace(base, **{**values, **overrides})
    return settings_cls(**{**values, **overrides})


def _base_type(hint):
    """``int`` for ``int`` and for ``int | None``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return hint


def add_device_arguments(parser: argparse.ArgumentParser, dtype: bool = True) -> None:
    """``--device`` and ``--dtype``: the same options, with the same rule, on every command."""
    from dreampose.runtime.loading import DEVICE_HELP, DTYPE_CHOICES, DTYPE_HELP

    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    if dtype:
        parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)


def add_densepose_arguments(parser: argparse.ArgumentParser) -> None:
    """How every command that runs DensePose finds its weights and runs it."""
    from dreampose.runtime.loading import DensePoseOptions

    parser.add_argument(
        "--densepose-weights",
        default=None,
        help="DensePose weights: a .pkl/.safetensors file or URL (default: $DREAMPOSE_DENSEPOSE_WEIGHTS, "
        "else the model zoo file, downloaded once into the cache)",
    )
    add_settings_arguments(parser, DensePoseOptions)


def load_densepose(args: argparse.Namespace, batch_size: int = 8):
    """The DensePose extractor the options ask for."""
    from dreampose.runtime import loading

    options = settings_from_args(loading.DensePoseOptions, args)
    return loading.load_densepose(args.densepose_weights, options, args.device, batch_size)


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


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """How models run: offloading, torch.compile, the plain path (CLI and app alike)."""
    parser.add_argument("--cpu-offload", action="store_true", help="keep idle models on the CPU (small GPUs)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the UNet: faster frames on a GPU after a warm-up of a minute or more at start",
    )
    parser.add_argument(
        "--no-speed-settings",
        action="store_true",
        help="the plain path, for debugging: no channels-last, fused QKV or VAE slicing (on by default on GPUs)",
    )


def speed_settings(args: argparse.Namespace):
    """The speed settings the options ask for, on the device they name."""
    from dreampose.runtime.loading import pick_device
    from dreampose.runtime.speed import SpeedSettings, default_speed_settings

    if args.no_speed_settings:
        return SpeedSettings(compile_unet=args.compile)
    return default_speed_settings(pick_device(args.device).device, compile=args.compile)


def render_inputs(args: argparse.Namespace):
    """(settings, poses on the canvas) from the `preview`/`render` options."""
    from dreampose.rendering.poses import load_driving_poses, place_poses
    from dreampose.rendering.settings import RenderSettings
    from dreampose.runtime.references import resolve
    from pose_extraction.pose_sequence import PoseSequence

    settings = settings_from_args(RenderSettings, args)
    poses = load_driving_poses(args.poses)
    subject = PoseSequence.load(args.subject_pose) if args.subject_pose else None
    numerics = resolve(args.model).numerics()  # official models place poses their own way
    return settings, place_poses(poses, settings.height, settings.width, subject, numerics=numerics)


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
