"""What both training phases share: the optimiser, the identity of a starting model, and
publishing a model into an output folder."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from dreampose.base.files import remove


def make_optimizer(params, lr: float, use_8bit: bool = False) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel for all tensors: 3-4x faster optimiser steps on the CPU,
    benchmarks/RESULTS.md), or bitsandbytes' 8-bit AdamW (CUDA only) to save memory."""
    if not use_8bit:
        return torch.optim.AdamW(params, lr=lr, fused=True)
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise ValueError("8-bit Adam needs bitsandbytes: pip install bitsandbytes (CUDA only)") from e
    return bnb.optim.AdamW8bit(params, lr=lr)


def canonical_json(config: dict) -> str:
    """``config`` as JSON that is the same in every process: sorted keys, and diffusers'
    ``_use_default_values`` sorted (it is built from a set, so its order follows
    PYTHONHASHSEED). Other lists keep their order: block types in order are the model's shape."""
    config = dict(config)
    if "_use_default_values" in config:
        config["_use_default_values"] = sorted(config["_use_default_values"], key=str)
    return json.dumps(config, sort_keys=True, default=str)


def model_fingerprint(pipe) -> str:
    """A cheap identity of the starting model, so a resumed run refuses another model:
    its configs plus a few weight sums."""
    digest = hashlib.sha256()
    for module in (pipe.unet, pipe.adapter, pipe.vae):
        digest.update(canonical_json(dict(module.config)).encode())
    probes = (pipe.unet.conv_in.weight, pipe.unet.conv_out.weight, pipe.vae.decoder.conv_out.weight)
    for tensor in probes:
        digest.update(f"{tensor.double().sum().item():.6e}".encode())
    return digest.hexdigest()[:16]


def publish_entries(output: Path, write: Callable[[Path], None]) -> None:
    """Write a model into a temporary folder inside ``output``, then move each of its entries
    into ``output`` (which also holds the resumable checkpoint, so it cannot be swapped
    whole). Each entry appears complete or not at all."""
    with tempfile.TemporaryDirectory(prefix=".model.", dir=output) as tmp:
        write(Path(tmp))
        for entry in Path(tmp).iterdir():
            dest = output / entry.name
            if dest.is_dir():
                remove(dest)
            os.replace(entry, dest)
