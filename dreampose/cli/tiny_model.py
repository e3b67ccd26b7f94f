"""`dreampose tiny-model`: write a tiny random DreamPose model (for tests and demos; outputs are noise)."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "tiny-model", help="write a tiny randomly initialised model (tests, offline demos; renders noise)"
    )
    parser.add_argument("--output", required=True, help="folder to write the model to")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from dreampose.base.files import atomic_dir, writable_folder
    from dreampose.model.tiny import tiny_pipeline

    writable_folder(args.output)
    with atomic_dir(args.output) as tmp:  # a full disk leaves no half-written model
        tiny_pipeline(seed=args.seed).save_pretrained(tmp, safe_serialization=True)
    print(f"wrote a tiny random model to {args.output} (not a real model: it renders noise)")
    return 0
