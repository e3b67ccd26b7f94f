"""Importing the official DreamPose checkpoints (``unet_epoch_N.pth``, ``adapter_N.pth``, ``vae_N.pth``).

The official files are ``torch.save`` pickles of state dicts, sometimes with the ``module.``
prefix of DistributedDataParallel. They load with ``weights_only=True`` (never a full
unpickle), are checked key by key, and are written out as a diffusers-format DreamPose
model whose config asks for the official numerics (see ``dreampose.model.numerics``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from dreampose.model.numerics import numerics_for
from dreampose.model.pipeline import DreamPosePipeline

# What each kind of file must contain, to tell a swapped file apart from a broken one.
SIGNATURES = {
    "unet": "conv_in.weight",
    "adapter": "vae2clip.weight",
    "vae": "decoder.conv_in.weight",
}
# Attention parameter names of diffusers < 0.14 (which the official code used) -> today's.
_OLD_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def read_official_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an official ``.pth`` safely (``weights_only``, memory-mapped when possible), without prefixes.

    Memory mapping lets a caller look at the keys of a 3.4 GB UNet without reading it into memory.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # the legacy (pre-zip) format
    except Exception as e:
        refused = re.search(r"GLOBAL (\S+)", str(e))
        if refused:  # the pickle names code to run or objects to build: never load it fully
            raise ValueError(
                f"{path.name} is not a checkpoint of plain tensors and was refused: it asks to load "
                f"{refused.group(1).rstrip('.,')}, and loading it could run code. Use the official checkpoint files"
            ) from e
        raise ValueError(f"{path.name} is not a readable PyTorch checkpoint ({_load_error(e)})") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path.name} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_error(error: Exception) -> str:
    """Why ``torch.load`` failed, without PyTorch's advice to retry with ``weights_only=False``:
    for a file from elsewhere that is the wrong advice (it would run whatever the file says)."""
    boilerplate = ("Weights only load failed", "Check the documentation", "weights_only")
    for line in str(error).splitlines():
        line = line.split("WeightsUnpickler error:", 1)[-1].strip()
        if line and not any(b in line for b in boilerplate):
            return line
    return type(error).__name__


def official_kind(state: dict[str, torch.Tensor]) -> str | None:
    """Which official checkpoint (unet, adapter or vae) a state dict is, by its keys; None if none."""
    found = [name for name, key in SIGNATURES.items() if key in state]
    return found[0] if len(found) == 1 else None


def load_official_state_dict(path: str | os.PathLike, kind: str) -> dict[str, torch.Tensor]:
    """Read an official ``.pth`` of ``kind`` (unet, adapter or vae) safely, without prefixes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} checkpoint not found: {path}")
    try:
        state = read_official_checkpoint(path)
    except ValueError as e:
        raise ValueError(f"{e}; is it a {kind} checkpoint?") from e
    if kind == "vae":
        state = {_modern_attention_name(k): v for k, v in state.items()}
    if SIGNATURES[kind] not in state:
        found = official_kind(state)
        what = f"a {found} checkpoint" if found else "no DreamPose checkpoint"
        raise ValueError(f"{path.name} was given as the {kind} checkpoint but looks like {what}")
    return state


def load_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """``load_state_dict`` that names missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ValueError(f"the {name} checkpoint does not fit the model; " + "; ".join(problems))
    module.load_state_dict(state)


def convert_official(
    base_model: str,
    image_encoder: str,
    unet: str | os.PathLike,
    adapter: str | os.PathLike,
    vae: str | os.PathLike | None = None,
    numerics: str = "official",
    training_size: tuple[int, int] = (640, 512),
    **hub_kwargs,
) -> DreamPosePipeline:
    """A DreamPose pipeline holding the official weights on top of ``base_model``.

    ``numerics="official"`` (the default) makes the converted model prepare its inputs as
    the official inference code does, so it renders what the official code renders.
    ``training_size`` (height, width) is the resolution the checkpoint was trained at; it
    sets the adapter's pooling grid (640 x 512 for every official checkpoint).
    """
    unet_state = load_official_state_dict(unet, "unet")
    adapter_state = load_official_state_dict(adapter, "adapter")
    vae_state = load_official_state_dict(vae, "vae") if vae is not None else None

    # Every UNet weight comes from the checkpoint (load_checked is strict): SD's are not read.
    pipe = DreamPosePipeline.from_stable_diffusion(
        base_model, image_encoder, training_size=training_size, unet_weights=False, **hub_kwargs
    )
    pipe.register_to_config(numerics=numerics_for(numerics).name)
    load_checked(pipe.unet, unet_state, "UNet")
    load_checked(pipe.adapter, adapter_state, "adapter")
    if vae_state is not None:
        load_checked(pipe.vae, vae_state, "VAE")
    return pipe


CONVERSION_RECORD = "conversion.json"  # what `dreampose convert` made a model from (for model cards)


def conversion_record(
    base_model: str,
    image_encoder: str,
    checkpoints: dict[str, str | os.PathLike],
    numerics: str,
) -> dict:
    """Where a converted model came from: the checkpoint files (name and SHA-256), the base
    models and the numerics, saved beside the model as ``CONVERSION_RECORD``."""
    import time

    from dreampose.base.downloads import sha256_of

    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "numerics": numerics,
        "checkpoints": {
            kind: {"file": Path(path).name, "sha256": sha256_of(path)} for kind, path in checkpoints.items()
        },
        "base_model": base_model,
        "image_encoder": image_encoder,
    }


def _modern_attention_name(key: str) -> str:
    parts = key.split(".")
    if len(parts) >= 2 and parts[-2] in _OLD_ATTENTION_NAMES and "attentions" in parts:
        parts[-2] = _OLD_ATTENTION_NAMES[parts[-2]]
    return ".".join(parts)
