"""`dreampose download`: fetch and convert the official DreamPose models into the cache, once."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from dreampose.model.numerics import NUMERICS
    from dreampose.setup.sources import PARTS

    parser = subparsers.add_parser(
        "download",
        help="download and convert the official DreamPose models (once; later runs do nothing)",
        description="Fetch the official DreamPose checkpoints (Google Drive), Stable Diffusion 1.4 and CLIP "
        "(Hugging Face), check them and convert them into a DreamPose model in $DREAMPOSE_CACHE "
        "(default ~/.cache/dreampose). Interrupted downloads resume on the next run.",
    )
    parser.add_argument(
        "--demo-subject",
        action="store_true",
        help="also the official demo subject (finetuned checkpoints) and its poses",
    )
    parser.add_argument(
        "--no-base", action="store_true", help="skip the base model (e.g. only --demo-subject)"
    )
    parser.add_argument(
        "--no-convert", action="store_true", help="only download and check the official checkpoints"
    )
    parser.add_argument(
        "--numerics",
        choices=NUMERICS,
        default="official",
        help="input conventions saved in the converted models (default: official, as their code renders)",
    )
    parser.add_argument(
        "--verify", action="store_true", help="re-check cached downloads against their recorded SHA-256"
    )
    parser.add_argument(
        "--cache", default=None, help="cache folder (default: $DREAMPOSE_CACHE or ~/.cache/dreampose)"
    )
    sources = parser.add_argument_group(
        "sources",
        "each takes a URL, a local file or folder, drive:ID or a Google Drive link (default in brackets)",
    )
    for part in PARTS.values():
        sources.add_argument(
            part.flag,
            dest=f"source_{part.name}",
            default=None,
            metavar="SOURCE",
            help=f"{part.label} [{part.default.describe()}; env {part.env}]",
        )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreampose.base.downloads import (
        CorruptDownloadError,
        DownloadCancelled,
        DownloadError,
        console_progress,
    )
    from dreampose.setup import PARTS, SetupError, SetupOptions, run_setup
    from dreampose.setup.contents import UnsafeArchiveError
    from dreampose.setup.install import describe_result

    if args.no_base and not args.demo_subject:
        raise ValueError("--no-base leaves nothing to do; add --demo-subject")
    options = SetupOptions(
        cache=args.cache,
        base=not args.no_base,
        demo_subject=args.demo_subject,
        convert=not args.no_convert,
        numerics=args.numerics,
        verify=args.verify,
        sources={p: getattr(args, f"source_{p}") for p in PARTS if getattr(args, f"source_{p}")},
    )
    show_bytes = console_progress()
    last = {"step": 0}

    def report(step) -> None:
        if step.transfer is not None:
            show_bytes(step.transfer)
        elif step.index != last["step"] or step.what:
            print(f"[{step.index}/{step.count}] {step.what}", file=sys.stderr)
        last["step"] = step.index

    try:
        result = run_setup(options, report=report)
    except (SetupError, DownloadError, CorruptDownloadError, UnsafeArchiveError) as e:
        print(f"dreampose download: error: {e}", file=sys.stderr)
        return 1
    except DownloadCancelled:
        print("dreampose download: interrupted; run it again to resume", file=sys.stderr)
        return 130
    if not result.changed:
        print("Everything asked for is already set up.")
    for line in describe_result(result):
        print(line)
    if result.model is not None:
        print(
            f"Render with: dreampose render --model {result.model} --image PHOTO --poses POSES.npz --output out.mp4"
        )
    return 0
