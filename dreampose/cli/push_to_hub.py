"""`dreampose push-to-hub`: publish a DreamPose model on the Hugging Face Hub, with a model card."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "push-to-hub",
        help="publish a converted, trained or finetuned model on the Hugging Face Hub",
        description="Upload MODEL_DIR (a model folder from `dreampose convert`, `download`, `train` or "
        "`finetune`, full or LoRA) to the hub repository REPO_ID in diffusers format, with a model card "
        "(source checkpoints, numerics, licence, how to load it). Log in first with `hf auth login` or "
        "set HF_TOKEN. Afterwards `--model REPO_ID` loads it anywhere.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="the model folder to publish")
    parser.add_argument("repo_id", metavar="REPO_ID", help="hub repository, owner/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument(
        "--base-model",
        default=None,
        help="LoRA subjects: the hub id where their base model is published, recorded in place of a "
        "local base folder",
    )
    parser.add_argument("--message", default=None, help="commit message (default: what is uploaded)")
    parser.add_argument("--token", default=None, help="hub token (default: the logged-in one, or $HF_TOKEN)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from dreampose.runtime.hub import push_model

    url = push_model(
        args.model_dir,
        args.repo_id,
        private=args.private,
        base_model=args.base_model,
        commit_message=args.message,
        token=args.token,
    )
    print(f"published {args.model_dir} as {args.repo_id}: {url}")
    print(f"load it with: dreampose render --model {args.repo_id} ...")
    return 0
