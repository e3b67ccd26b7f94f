"""Subject models: what subject finetuning (paper section 4.3) writes, and how it loads.

A *full* subject is an ordinary DreamPose model folder (``save_pretrained``). A *LoRA*
subject is a small folder applied onto its base model when loaded:

- ``subject.json``: the base model (folder or hub id) and the LoRA configuration;
- ``unet_lora.safetensors``: rank-R LoRA weights on the UNet's attention projections;
- ``adapter.safetensors``, ``vae_decoder.safetensors``: the finetuned adapter and decoder.

Applying a subject lives here, in the model layer, so inference never imports training
code; training writes these files with :func:`save_weights`. What a folder is (a LoRA
subject, a whole model, something else) is decided once, by ``dreampose.runtime.references``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SUBJECT_FILE = "subject.json"
SUBJECT_FORMAT = "dreampose-subject"
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def add_lora(unet, rank: int) -> None:
    """Rank-``rank`` LoRA on every attention projection of ``unet`` (peft), in place."""
    from peft import LoraConfig

    config = LoraConfig(
        r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS)
    )
    unet.add_adapter(config)


def save_weights(pipe, folder: Path, lora_rank: int) -> None:
    """What finetuning changes: the UNet (or its LoRA), the adapter and the VAE decoder."""
    from safetensors.torch import save_file

    if lora_rank:
        from peft.utils import get_peft_model_state_dict

        save_file(_contiguous(get_peft_model_state_dict(pipe.unet)), folder / "unet_lora.safetensors")
    else:
        save_file(_contiguous(pipe.unet.state_dict()), folder / "unet.safetensors")
    save_file(_contiguous(pipe.adapter.state_dict()), folder / "adapter.safetensors")
    decoder = {f"decoder.{k}": v for k, v in pipe.vae.decoder.state_dict().items()}
    decoder |= {f"post_quant_conv.{k}": v for k, v in pipe.vae.post_quant_conv.state_dict().items()}
    save_file(_contiguous(decoder), folder / "vae_decoder.safetensors")


def load_weights(pipe, folder: Path) -> None:
    """Load what :func:`save_weights` wrote into ``pipe`` (LoRA layers must exist already)."""
    from safetensors.torch import load_file

    if (folder / "unet_lora.safetensors").is_file():
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(pipe.unet, load_file(folder / "unet_lora.safetensors"))
    else:
        pipe.unet.load_state_dict(load_file(folder / "unet.safetensors"))
    pipe.adapter.load_state_dict(load_file(folder / "adapter.safetensors"))
    pipe.vae.load_state_dict(load_file(folder / "vae_decoder.safetensors"), strict=False)


def write_description(folder: Path, base_model: str, lora_rank: int, steps_done: dict) -> None:
    """``subject.json`` of a LoRA subject."""
    meta = {
        "format": SUBJECT_FORMAT,
        "version": 1,
        "base_model": base_model,
        "lora": {"rank": lora_rank, "target_modules": list(LORA_TARGETS)},
        "steps_done": steps_done,
    }
    (folder / SUBJECT_FILE).write_text(json.dumps(meta, indent=2))


def apply_subject(pipe, path: str | os.PathLike) -> None:
    """Put a LoRA subject's weights into its loaded base model, merged into the UNet, so
    inference runs at full speed."""
    folder = Path(path)
    meta = json.loads((folder / SUBJECT_FILE).read_text())
    dtype = pipe.unet.dtype
    add_lora(pipe.unet, int(meta["lora"]["rank"]))
    load_weights(pipe, folder)
    pipe.unet.fuse_lora()
    pipe.unet.unload_lora()
    pipe.to(dtype=dtype)


def _contiguous(state: dict) -> dict:
    return {k: v.detach().contiguous() for k, v in state.items()}
