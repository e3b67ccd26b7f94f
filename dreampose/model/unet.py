"""Widening a pretrained Stable Diffusion UNet to read the pose window (paper section 4.2.2).

The input gains ``2 * num_pose_frames`` channels (U and V of each of the 5 poses) after the 4
latent channels. The new weights start at zero and the old ones are copied, so the widened
UNet computes exactly what the pretrained one did until finetuning teaches it the poses.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from dreampose.model.pose_window import POSE_CHANNELS, pose_channels


def widen_conv_in(unet: UNet2DConditionModel, num_pose_frames: int = 5) -> UNet2DConditionModel:
    """Give ``unet`` ``4 + 2 * num_pose_frames`` input channels, in place, and return it."""
    old = unet.conv_in
    latent_channels = unet.config.in_channels
    if latent_channels != unet.config.out_channels:
        raise ValueError(
            f"this UNet already has {latent_channels} input channels for {unet.config.out_channels} "
            "output channels; widen only a plain Stable Diffusion UNet"
        )
    new = nn.Conv2d(
        latent_channels + pose_channels(num_pose_frames),
        old.out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :latent_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=new.in_channels)
    return unet


def num_pose_frames_of(unet: UNet2DConditionModel) -> int:
    """How many poses a widened UNet reads (its extra input channels / 2)."""
    extra = unet.config.in_channels - unet.config.out_channels
    if extra <= 0 or extra % POSE_CHANNELS:
        raise ValueError(
            f"UNet with {unet.config.in_channels} input channels is not a DreamPose UNet "
            f"(expected {unet.config.out_channels} latent channels + 2 per pose frame)"
        )
    return extra // POSE_CHANNELS
