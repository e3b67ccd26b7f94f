"""Turbo: reuse the UNet's deep features across neighbouring denoising steps (DeepCache).

Ma, Fang and Wang, "DeepCache: Accelerating Diffusion Models for Free", CVPR 2024
(arXiv:2312.00858). The deep, low-resolution features of a diffusion UNet change little from
one denoising step to the next, while the high-resolution skip connections carry the detail.
So every ``interval``-th step (and the first) runs the whole UNet and keeps the feature that
enters the up path at one skip connection (the "branch"); the steps in between run only the
shallow layers on either side of that branch, ``conv_in`` and the first down layers, then the
last up layers, and read the deep part from the cache. Training-free, and beyond the paper
of DreamPose: it trades a little fidelity to the full sampler for speed (figures in
benchmarks/RESULTS.md).

Written here instead of using the ``DeepCache`` package (0.1.1), which runs with diffusers
0.42 but patches ``forward`` of the shared UNet's blocks in place (two renders of one model
at once would share its cache) and finds the step by looking the timestep up in
``scheduler.timesteps``, which miscounts PNDM's repeated timestep. This wrapper only reads
the UNet's modules and keeps its state in itself, so make one per render (per frame batch).

The layers are the diffusers ``UNet2DConditionModel`` blocks' own modules, called with the
same arguments in the same order as its ``forward``: a step that runs the whole UNet gives
bit-for-bit the UNet's output (tested), so ``interval=1`` is the plain sampler.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
from torch import nn

from dreampose.model.checks import check_interval

__all__ = ["DeepCacheUNet", "num_branches"]

# Blocks whose layers this wrapper can call one by one (those of Stable Diffusion 1.x and 2.x).
DOWN_BLOCKS = ("CrossAttnDownBlock2D", "DownBlock2D")
UP_BLOCKS = ("CrossAttnUpBlock2D", "UpBlock2D")


@dataclass(frozen=True)
class _Layer:
    """One step of the U that makes (down path) or takes (up path) one skip connection:
    a resnet with its optional attention, or a downsampler. ``samplers`` are a down block's
    downsamplers (the layer is just them) or the upsamplers that follow an up block's last layer."""

    resnet: nn.Module | None = None
    attention: nn.Module | None = None
    samplers: nn.ModuleList | None = None

    def down(self, h: torch.Tensor, temb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.resnet is None:
            for sampler in self.samplers:
                h = sampler(h)
            return h
        return self._resnet_attention(h, temb, context)

    def up(
        self, h: torch.Tensor, skip: torch.Tensor, temb: torch.Tensor, context: torch.Tensor
    ) -> torch.Tensor:
        h = self._resnet_attention(torch.cat([h, skip], dim=1), temb, context)
        for sampler in self.samplers or ():
            h = sampler(h, None)  # upsample_size: the input size is checked to need none
        return h

    def _resnet_attention(self, h, temb, context):
        h = self.resnet(h, temb)
        if self.attention is not None:
            h = self.attention(
                h,
                encoder_hidden_states=context,
                cross_attention_kwargs=None,
                attention_mask=None,
                encoder_attention_mask=None,
                return_dict=False,
            )[0]
        return h


class DeepCacheUNet:
    """A UNet2DConditionModel that runs in full every ``interval``-th call and shallow in between.

    ``branch`` is the skip connection the cache sits at, counted from the shallowest: 0 keeps
    only ``conv_in`` and the UNet's last up layer on the cached steps (the fastest, DeepCache's
    default), higher values recompute more layers and drift less. Calls are counted from the
    construction or the last ``reset()``: call 0, interval, 2 x interval ... run the whole UNet.
    Call with one denoising loop's UNet inputs in order; the batch must not change in between.
    """

    def __init__(self, unet: UNet2DConditionModel, interval: int = 3, branch: int = 0) -> None:
        check_interval(interval)
        check_supported(unet)
        self.unet = unet
        self.interval = interval
        self._down, self._up = _layers(unet)  # up layers from the output end: _up[j] takes skip j
        if not (isinstance(branch, int) and 0 <= branch < len(self._up)):
            raise ValueError(f"branch must be 0 to {len(self._up) - 1} for this UNet; got {branch!r}")
        self.branch = branch
        self.reset()

    def reset(self) -> None:
        """Forget the cache and restart the count: the next call runs the whole UNet."""
        self.calls = 0
        self.full_calls = 0
        self._cache: torch.Tensor | None = None
        self._cached_for: torch.Size | None = None

    def __call__(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        return_dict: bool = True,
    ) -> UNet2DConditionOutput | tuple:
        hook = getattr(self.unet, "_hf_hook", None)  # accelerate's CPU offload moves the UNet in
        if hook is not None:
            (sample, timestep), kwargs = hook.pre_forward(
                self.unet, sample, timestep, encoder_hidden_states=encoder_hidden_states
            )
            encoder_hidden_states = kwargs["encoder_hidden_states"]
        full = self.calls % self.interval == 0
        if not full:
            self._check_cache(sample)
        self.calls += 1
        self.full_calls += int(full)
        out = self._forward(sample, timestep, encoder_hidden_states, full)
        if hook is not None:
            out = hook.post_forward(self.unet, out)
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)

    def _forward(self, sample, timestep, context, full: bool) -> torch.Tensor:
        unet = self.unet
        _check_size(unet, sample)
        # Time embedding: cheap, and the shallow layers need this step's.
        emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep), None)
        if unet.time_embed_act is not None:
            emb = unet.time_embed_act(emb)

        # Down path: every layer on a full step, only those before the branch on a cached one.
        h = unet.conv_in(sample)
        skips = [h]
        for layer in self._down if full else self._down[: self.branch]:
            h = layer.down(h, emb, context)
            skips.append(h)

        if full:  # the deep part: mid block and the up layers below the branch
            if unet.mid_block is not None:
                if getattr(unet.mid_block, "has_cross_attention", False):
                    h = unet.mid_block(
                        h,
                        emb,
                        encoder_hidden_states=context,
                        attention_mask=None,
                        cross_attention_kwargs=None,
                        encoder_attention_mask=None,
                    )
                else:
                    h = unet.mid_block(h, emb)
            for j in range(len(self._up) - 1, self.branch, -1):
                h = self._up[j].up(h, skips[j], emb, context)
            self._cache, self._cached_for = h, sample.shape
        else:
            h = self._cache

        # Shallow up path: the layers from the branch to the output, with fresh skips.
        for j in range(self.branch, -1, -1):
            h = self._up[j].up(h, skips[j], emb, context)
        if unet.conv_norm_out is not None:
            h = unet.conv_act(unet.conv_norm_out(h))
        return unet.conv_out(h)

    def _check_cache(self, sample: torch.Tensor) -> None:
        if self._cache is None or self._cached_for != sample.shape:
            raise RuntimeError(
                "the turbo cache belongs to another batch or size: make one DeepCacheUNet per "
                "denoising loop (or call reset() before a new one)"
            )


def num_branches(unet: UNet2DConditionModel) -> int:
    """How many skip connections (valid ``branch`` values) the UNet has; 12 for SD 1.x."""
    return len(_layers(unet)[1])


def check_supported(unet: UNet2DConditionModel) -> None:
    """Raise a clear ValueError for UNets whose forward this wrapper does not reproduce."""
    config = unet.config
    unsupported = {
        "class_embed_type": config.class_embed_type,
        "num_class_embeds": config.num_class_embeds,
        "addition_embed_type": config.addition_embed_type,
        "encoder_hid_dim_type": config.encoder_hid_dim_type,
        "center_input_sample": config.center_input_sample or None,
        "time_cond_proj_dim": config.time_cond_proj_dim,
    }
    used = {k: v for k, v in unsupported.items() if v is not None}
    blocks = [type(b).__name__ for b in unet.down_blocks if type(b).__name__ not in DOWN_BLOCKS]
    blocks += [type(b).__name__ for b in unet.up_blocks if type(b).__name__ not in UP_BLOCKS]
    freeu = any(getattr(b, "s1", None) for b in unet.up_blocks)
    if used or blocks or freeu:
        what = [f"{k}={v!r}" for k, v in used.items()] + blocks + (["FreeU"] if freeu else [])
        raise ValueError(
            f"turbo supports Stable Diffusion 1.x/2.x-style UNets only; this one uses {', '.join(what)}. "
            "Render without turbo."
        )


def _layers(unet: UNet2DConditionModel) -> tuple[list[_Layer], list[_Layer]]:
    """(down layers after conv_in in forward order, up layers from the output end).

    Down layer k - 1 makes skip k (skip 0 is conv_in's output); up layer j takes skip j, so
    the two lists pair up around each skip connection as the U does.
    """
    down: list[_Layer] = []
    for block in unet.down_blocks:
        attentions = getattr(block, "attentions", None) or [None] * len(block.resnets)
        down += [_Layer(r, a) for r, a in zip(block.resnets, attentions, strict=True)]
        if block.downsamplers is not None:
            down.append(_Layer(samplers=block.downsamplers))
    up: list[_Layer] = []
    for block in unet.up_blocks:
        attentions = getattr(block, "attentions", None) or [None] * len(block.resnets)
        layers = [_Layer(r, a) for r, a in zip(block.resnets, attentions, strict=True)]
        if block.upsamplers is not None:
            layers[-1] = _Layer(layers[-1].resnet, layers[-1].attention, block.upsamplers)
        up += layers
    up.reverse()
    if len(up) != len(down) + 1:
        raise ValueError(
            f"the UNet's up path takes {len(up)} skip connections but its down path makes {len(down) + 1}"
        )
    return down, up


def _check_size(unet: UNet2DConditionModel, sample: torch.Tensor) -> None:
    factor = 2**unet.num_upsamplers
    if any(s % factor for s in sample.shape[-2:]):
        raise ValueError(
            f"turbo needs latents whose height and width divide by {factor}; got {tuple(sample.shape[-2:])} "
            f"(images in multiples of {8 * factor} pixels)"
        )
