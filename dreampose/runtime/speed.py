"""Speed settings for a DreamPosePipeline, applied in place, and their defaults.

Everything here keeps the model's numerics up to floating-point reassociation (tested on
the CPU against the plain path in ``tests/test_optimize.py``), except VAE tiling, which
blends overlapping tiles and so changes pixels slightly; it exists only to fit sizes well
above 640 x 512 in memory. :func:`default_speed_settings` is the one place that decides
what is on: on a CUDA GPU the settings that keep numerics (channels-last, fused QKV, VAE
slicing); ``torch.compile`` only when asked (its first call takes minutes); on the CPU
nothing (measured: no gain in fp32, benchmarks/RESULTS.md). ``SpeedSettings()`` (all off)
is the plain path, for debugging (``--no-speed-settings``).

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

import time
from dataclasses import dataclass

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
        import torch

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

    def describe(self) -> str:
        on = [
            name
            for name in ("channels_last", "fuse_qkv", "compile_unet", "vae_slicing", "vae_tiling")
            if getattr(self, name)
        ]
        return ", ".join(on) or "plain (no speed settings)"


def default_speed_settings(device, compile: bool = False, training: bool = False) -> SpeedSettings:
    """What runs by default on ``device``: on CUDA, channels-last (the layout of the fastest
    fp16/bf16 convolution kernels), fused QKV projections (fewer, larger matmuls; not while
    training, where LoRA targets the separate projections) and VAE slicing (less memory,
    same result); ``compile`` adds ``torch.compile`` of the UNet. Elsewhere nothing: on the
    CPU these measured no gain (benchmarks/RESULTS.md), and MPS is untested."""
    import torch

    if torch.device(device).type != "cuda":
        return SpeedSettings(compile_unet=compile)
    return SpeedSettings(channels_last=True, fuse_qkv=not training, vae_slicing=True, compile_unet=compile)


def warm_up(pipe, height: int, width: int, frame_batch_size: int = 1) -> float:
    """Run one short render so ``torch.compile`` compiles now, not during the first real
    frame; returns the seconds it took. Compiled graphs are per frame-batch size."""
    import numpy as np

    start = time.monotonic()
    poses = np.zeros((frame_batch_size, 2, height, width), np.float32)
    image = np.zeros((height, width, 3), np.uint8)
    pipe(image, poses, num_inference_steps=2, height=height, width=width, frame_batch_size=frame_batch_size)
    return time.monotonic() - start


# Bytes one more frame in a UNet batch takes at 640 x 512 in 16-bit (3 guidance branches,
# SDPA attention): a conservative estimate that benchmarks/gpu_check measures (peak memory
# at batch 1 and at the automatic batch).
BYTES_PER_FRAME_640X512 = 1.5 * 2**30
MAX_AUTO_FRAME_BATCH = 8  # beyond this, batching buys nothing on large GPUs


def auto_frame_batch(pipe, height: int, width: int) -> int:
    """The frames to sample together: 1 except on CUDA, where as many as fit in 80 % of the
    free memory (estimated per frame, scaled by canvas area), at most MAX_AUTO_FRAME_BATCH."""
    import torch

    device = pipe._execution_device
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    per_frame = BYTES_PER_FRAME_640X512 * (height * width) / (640 * 512)
    if pipe.unet.dtype == torch.float32:
        per_frame *= 2
    return int(max(1, min(MAX_AUTO_FRAME_BATCH, 0.8 * free // per_frame)))


def attention_backends(pipe) -> dict[str, set[str]]:
    """Attention implementation per model: diffusers processor class names for the UNet and
    VAE, transformers' ``attn_implementation`` for the CLIP image encoder."""
    return {
        "unet": {type(p).__name__ for p in pipe.unet.attn_processors.values()},
        "vae": {type(p).__name__ for p in pipe.vae.attn_processors.values()},
        "image_encoder": {str(pipe.image_encoder.config._attn_implementation)},
    }


def _sdpa_processors() -> tuple:
    """Attention processors of diffusers that call torch's scaled_dot_product_attention."""
    from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0

    return (AttnProcessor2_0, FusedAttnProcessor2_0)


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
            if not isinstance(p, _sdpa_processors())
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
    import torch

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
    from diffusers.models.attention_processor import FusedAttnProcessor2_0

    if any(isinstance(p, FusedAttnProcessor2_0) for p in model.attn_processors.values()):
        return
    model.fuse_qkv_projections()
