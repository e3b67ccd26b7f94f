"""The `dreampose` command line: one parser, one subcommand per module in `dreampose.commands`.

`python -m dreampose` and the `dreampose` console script both land here. Each command
module defines ``add_parser(subparsers)`` and keeps heavy imports (torch, diffusers) inside
the function it runs, so `dreampose --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order is the order shown in `dreampose --help`.
COMMANDS = (
    "extract_poses",
    "preview",
    "render",
    "convert",
    "convert_densepose",
    "tiny_model",
    "finetune",
    "train",
    "prepare_dataset",
    "evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dreampose",
        description="Animate a photo of a person with a driving video (DreamPose).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"dreampose.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"dreampose.commands.{name}":
                raise
            continue  # a command still being written: leave it out of this build
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, PermissionError) as e:
        # User mistakes: one clear sentence, no traceback.
        print(f"dreampose {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dreampose {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
