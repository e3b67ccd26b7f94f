"""`dreampose convert-densepose`: write a safetensors copy of the DensePose weights.

safetensors holds only tensors, so the copy loads without unpickling anything and faster than the
model-zoo ``.pkl``.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-densepose",
        help="convert the DensePose model-zoo .pkl to .safetensors",
        description="Check the DensePose weights (densepose_rcnn_R_50_FPN_s1x) and write a safetensors copy.",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="model-zoo .pkl (or a URL); default: the official model_final_162be9.pkl, downloaded once",
    )
    parser.add_argument("--output", required=True, help="where to write the .safetensors file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreampose.base.files import writable_file
    from pose_extraction.densepose.checkpoint import load_state_dict, match_state_dict, save_safetensors
    from pose_extraction.densepose.download import resolve_weights
    from pose_extraction.densepose.model import DensePoseRCNN

    writable_file(args.output, suffixes=(".safetensors",))  # before a download and a 250 MB read
    model = DensePoseRCNN()
    source = resolve_weights(args.weights, verify=lambda p: match_state_dict(load_state_dict(p), model))
    state_dict = match_state_dict(load_state_dict(source), model)  # raises, naming bad keys, before writing
    out = save_safetensors(state_dict, args.output)
    print(f"wrote {out} ({len(state_dict)} tensors) from {source}")
    return 0
