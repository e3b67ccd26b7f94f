"""The options the command line and the app share: where models run (``--device``,
``--dtype``), how fast (``--cpu-offload``, ``--compile``, ``--no-speed-settings``) and how
DensePose runs (``--densepose-weights`` and :class:`~dreampose.runtime.loading.DensePoseOptions`).

Declared once here, below both, so ``dreampose COMMAND --help`` and ``python app.py --help``
say the same; only light modules are imported at first (``--help`` must not load torch).
"""

from __future__ import annotations

import argparse

from dreampose.base.arguments import add_settings_arguments, settings_from_args


def add_device_arguments(parser: argparse.ArgumentParser, dtype: bool = True) -> None:
    """``--device`` and ``--dtype``: the same options, with the same rule, on every command."""
    from dreampose.runtime.loading import DEVICE_HELP, DTYPE_CHOICES, DTYPE_HELP

    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    if dtype:
        parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=DTYPE_HELP)


def add_densepose_weights_argument(parser: argparse.ArgumentParser) -> None:
    """``--densepose-weights``: where DensePose's weights come from (the app takes only this)."""
    parser.add_argument(
        "--densepose-weights",
        default=None,
        help="DensePose weights: a .pkl/.safetensors file or URL (default: $DREAMPOSE_DENSEPOSE_WEIGHTS, "
        "else the model zoo file, downloaded once into the cache)",
    )


def add_densepose_arguments(parser: argparse.ArgumentParser) -> None:
    """How every command that runs DensePose finds its weights and runs it."""
    from dreampose.runtime.loading import DensePoseOptions

    add_densepose_weights_argument(parser)
    add_settings_arguments(parser, DensePoseOptions)


def load_densepose(args: argparse.Namespace, batch_size: int = 8):
    """The DensePose extractor the options ask for."""
    from dreampose.runtime import loading

    options = settings_from_args(loading.DensePoseOptions, args)
    return loading.load_densepose(args.densepose_weights, options, args.device, batch_size)


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
