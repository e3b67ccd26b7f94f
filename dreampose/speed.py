"""Opt-in speed settings for a DreamPosePipeline, applied in place.

Everything here keeps the model's numerics up to floating-point reassociation (tested on
the CPU against the plain path in ``tests/test_optimize.py``), except VAE tiling, which
blends overlapping tiles and so changes pixels slightly; it exists only to fit sizes well
above 640 x 512 in memory. Nothing is on by default: the plain pipeline is the reference.

What each setting buys (see benchmarks/RESULTS.md for measurements):
- ``channels_last``: NHWC convolutions, the layout cuDNN's fastest fp16/bf16 kernels use.
- ``fuse_qkv``: one matmul for Q, K and V in self-attention (K and V in cross-attention)
  instead of three; fewer, larger kernels.
- ``compile_unet``: ``torch.compile`` of the UNet (the one model run every step). The first
  call compiles (tens of seconds to minutes); a frame batch of a new size recompiles.
- ``vae_slicing``: decode a frame batch one frame at a time (less peak memory, same result).
- ``vae_tiling``: decode large images in overlapping tiles (much less memory, slightly
  different pixels; diffusers only tiles above the VAE's 512 px sample size).

SDPA (fused "flash" attention) is what diffusers and transformers pick by default with
PyTorch 2; ``attention_backends`` reports it and ``apply_speed_settings`` checks it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0

__all__ = [
    "SpeedSettings",
    "FAST_GPU",
    "apply_speed_settings",
    "attention_backends",
    "check_sdpa",
]

# Attention processors of diffusers that call torch.nn.functional.scaled_dot_product_attention.
SDPA_PROCESSORS = (AttnProcessor2_0, FusedAttnProcessor2_0)
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class SpeedSettings:
    """Which optimisations to apply. All off by default (the reference numerics)."""

    channels_last: bool = False
    fuse_qkv: bool = False
    compile_unet: bool = False
    compile_mode: str | None = None  # torch.compile mode; None = its default
    compile_backend: str = "inductor"  # "cudagraphs" replays CUDA graphs without codegen
    vae_slicing: bool = False
    vae_tiling: bool = False

    def __post_init__(self) -> None:
        if self.compile_backend not in torch._dynamo.list_backends(exclude_tags=()):
            raise ValueError(
                f"unknown torch.compile backend {self.compile_backend!r}; "
                f"choose one of {', '.join(torch._dynamo.list_backends(exclude_tags=()))}"
            )
        if self.compile_mode is not None and self.compile_backend != "inductor":
            raise ValueError("compile_mode applies to the inductor backend only")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"compile_mode must be one of {', '.join(map(str, COMPILE_MODES))}; got {self.compile_mode!r}"
            )


# The settings we expect to help on a GPU (to be confirmed by benchmarks/render_speed.py).
FAST_GPU = SpeedSettings(channels_last=True, fuse_qkv=True)


def attention_backends(pipe) -> dict[str, set[str]]:
    """Attention implementation per model: diffusers processor class names for the UNet and
    VAE, transformers' ``attn_implementation`` for the CLIP image encoder."""
    return {
        "unet": {type(p).__name__ for p in pipe.unet.attn_processors.values()},
        "vae": {type(p).__name__ for p in pipe.vae.attn_processors.values()},
        "image_encoder": {str(pipe.image_encoder.config._attn_implementation)},
    }


def check_sdpa(pipe) -> None:
    """Raise a ValueError naming any model whose attention does not use PyTorch SDPA.

    SDPA picks the flash / memory-efficient kernels on a GPU; a pipeline loaded with an
    old processor (plain matmul attention) or eager CLIP attention would be much slower
    and hold the full attention matrix in memory.
    """
    slow = []
    for name in ("unet", "vae"):
        others = {
            type(p).__name__
            for p in getattr(pipe, name).attn_processors.values()
            if not isinstance(p, SDPA_PROCESSORS)
        }
        if others:
            slow.append(f"{name} uses {', '.join(sorted(others))}")
    if pipe.image_encoder.config._attn_implementation != "sdpa":
        slow.append(f"image_encoder uses {pipe.image_encoder.config._attn_implementation!r} attention")
    if slow:
        raise ValueError(
            "attention is not PyTorch SDPA: "
            + "; ".join(slow)
            + " (call unet.set_attn_processor(AttnProcessor2_0()) or load CLIP with attn_implementation='sdpa')"
        )


def apply_speed_settings(pipe, settings: SpeedSettings) -> list[str]:
    """Apply ``settings`` to ``pipe`` in place; return what was applied, for logs.

    Call after moving the pipeline to its device and dtype (``pipe.to``), since compiling
    and memory layouts are per device.
    """
    check_sdpa(pipe)
    applied = ["sdpa attention (checked)"]
    if settings.fuse_qkv:
        # Fuse before compiling, so the compiled graph sees the fused projections.
        for model in (pipe.unet, pipe.vae):
            _fuse_qkv(model)
        applied.append("fused qkv projections (unet, vae)")
    if settings.channels_last:
        for model in (pipe.unet, pipe.vae):
            model.to(memory_format=torch.channels_last)
        applied.append("channels_last (unet, vae)")
    if settings.vae_slicing:
        pipe.vae.enable_slicing()
        applied.append("vae slicing")
    if settings.vae_tiling:
        pipe.vae.enable_tiling()
        applied.append("vae tiling")
    if settings.compile_unet:
        # In place (nn.Module.compile): pipe.unet keeps its class, config and save_pretrained.
        pipe.unet.compile(backend=settings.compile_backend, mode=settings.compile_mode)
        applied.append(
            f"torch.compile unet (backend={settings.compile_backend}, mode={settings.compile_mode or 'default'})"
        )
    return applied


def _fuse_qkv(model) -> None:
    """Fuse Q/K/V projections once; a second call would find them already fused."""
    if any(isinstance(p, FusedAttnProcessor2_0) for p in model.attn_processors.values()):
        return
    model.fuse_qkv_projections()
