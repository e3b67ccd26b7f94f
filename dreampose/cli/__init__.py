"""The `dreampose` command line: one parser, one subcommand per module in `dreampose.cli`.

`python -m dreampose` and the `dreampose` console script both land here. Each command
module defines ``add_parser(subparsers)`` and ``run(args)``, and keeps heavy imports
(torch, diffusers) inside ``run``, so `dreampose --help` stays instant. Options that come
from settings dataclasses are made by ``dreampose.cli.options``.

Every error ends as one line on stderr saying what failed and what to do, and a non-zero
exit code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import threading

# Order is the order shown in `dreampose --help`.
COMMANDS = (
    "download",
    "extract_poses",
    "preview",
    "render",
    "finetune",
    "convert",
    "push_to_hub",
    "evaluate",
    "tiny_model",
    "train",
    "prepare_dataset",
    "convert_densepose",
)
EXIT_USER_ERROR = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dreampose",
        description="Animate a photo of a person with a driving video (DreamPose).",
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"dreampose.cli.{name}").add_parser(subparsers)
    return parser


EXIT_TERMINATED = 128 + 15  # the shell's code for a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken down the Ctrl-C path so that a long job keeps what it finished."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():  # signals only go there
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:
        print(f"dreampose {args.command}: interrupted", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    except Exception as e:
        if args.debug:
            raise
        code, text = explain(e)
        print(f"dreampose {args.command}: error: {text}", file=sys.stderr)
        return code


def explain(error: BaseException) -> tuple[int, str]:
    """(exit code, one line for the user) for any error a command can end with."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    if isinstance(error, (ValueError, FileNotFoundError)):  # the user's input: the message says it
        return EXIT_USER_ERROR, text or type(error).__name__
    if isinstance(error, OverflowError):  # e.g. a seed past 2**63 reaching torch
        return EXIT_USER_ERROR, f"a number is too large ({text}); use smaller values"
    if isinstance(error, MemoryError) or "out of memory" in text.lower():
        return EXIT_FAILURE, (
            "not enough memory for this job; render fewer frames at once (--batch-frames 1), use "
            "--cpu-offload on a small GPU, or close other programs"
        )
    number = error.errno if isinstance(error, OSError) else _errno_in(text)  # e.g. from safetensors or ffmpeg
    where = f" ({error.filename})" if isinstance(error, OSError) and error.filename else ""
    if number == errno.ENOSPC:
        return EXIT_FAILURE, f"the disk is full{where}; free some space or choose another output folder"
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return EXIT_USER_ERROR, f"no permission to write{where}; choose another output folder"
    if isinstance(error, OSError):
        return EXIT_FAILURE, f"{error.strerror or text}{where}"
    return EXIT_FAILURE, (
        f"unexpected {type(error).__name__}: {text[:500]} (run again with `dreampose --debug ...` for the "
        "traceback, and please report it)"
    )


def _errno_in(text: str) -> int | None:
    """A disk-full or permission error described in the text of a non-OSError (safetensors and
    other native libraries report the system's words, not an OSError)."""
    for number in (errno.ENOSPC, errno.EROFS, errno.EACCES):
        if os.strerror(number).lower() in text.lower():
            return number
    if "storagefull" in text.lower():
        return errno.ENOSPC
    return None


if __name__ == "__main__":
    sys.exit(main())
