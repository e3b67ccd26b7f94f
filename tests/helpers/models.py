"""Small models on disk for tests: a LoRA subject of the tiny model."""

from __future__ import annotations

from pathlib import Path


def tiny_lora_subject(folder: Path, rank: int = 4) -> Path:
    """A LoRA subject folder of the tiny model (``subject.json`` names ``tiny`` as its base)
    whose LoRA, adapter and decoder all changed, so loading it visibly differs from the base."""
    import torch

    from dreampose.model.subject import add_lora, save_weights, write_description
    from dreampose.model.tiny import tiny_pipeline

    pipe = tiny_pipeline(seed=0)
    add_lora(pipe.unet, rank=rank)
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in pipe.unet.named_parameters():
            if "lora_B" in name:  # B starts at zero: the LoRA would change nothing
                param.normal_(0, 0.5)
        pipe.adapter.vae2clip.bias.add_(1.0)
    folder.mkdir(parents=True)
    save_weights(pipe, folder, lora_rank=rank)
    write_description(folder, "tiny", rank, {"unet": 5, "vae": 0})
    return folder
