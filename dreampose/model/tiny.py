"""A tiny, randomly initialised DreamPose model with the real structure.

For tests, the offline demo and plumbing benchmarks: a few MB, fast on a CPU, seeded. It is
never a real model: its frames are noise. Unlike a fresh model for training, *every* weight
is random, the pose channels of ``conv_in`` and the adapter's VAE weights included, so both
the subject image and the poses change its output.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

from dreampose.model.adapter import adapter_for
from dreampose.model.pipeline import DreamPosePipeline
from dreampose.model.schedulers import SD_SCHEDULER_CONFIG
from dreampose.model.unet import widen_conv_in


def tiny_stable_diffusion(
    seed: int = 0, unet_channels: tuple[int, ...] = (32, 64), vae_channels: int = 16
) -> dict:
    """Tiny stand-ins for what a DreamPose model is built from: a Stable Diffusion 1.x
    VAE, UNet and scheduler (the VAE keeps the real 8x downsampling), and a CLIP vision
    model with its processor. The widths default to the plumbing model's; the demo model
    (``dreampose.world.train_demo``) builds wider ones from the same recipe."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=(80, 64),
        in_channels=4,
        out_channels=4,
        block_out_channels=tuple(unet_channels),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(vae_channels,) * 4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )
    torch.manual_seed(seed + 2)
    image_encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            projection_dim=32,
        )
    )
    feature_extractor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    scheduler = PNDMScheduler(**SD_SCHEDULER_CONFIG)
    return {
        "vae": vae,
        "unet": unet,
        "scheduler": scheduler,
        "image_encoder": image_encoder,
        "feature_extractor": feature_extractor,
    }


def tiny_components(
    seed: int = 0,
    num_pose_frames: int = 5,
    randomize_new_weights: bool = True,
    training_size: tuple[int, int] = (64, 64),
    **widths,
) -> dict:
    """The six components of a tiny DreamPose model (``widths``: see :func:`tiny_stable_diffusion`).

    With ``randomize_new_weights=False`` the new layers keep the paper's initialisation
    (zero pose channels, identity adapter), as ``from_stable_diffusion`` builds them.
    """
    parts = tiny_stable_diffusion(seed, **widths)
    unet = widen_conv_in(parts["unet"], num_pose_frames)
    adapter = adapter_for(parts["image_encoder"], parts["vae"], unet, training_size=training_size)
    if randomize_new_weights:
        torch.manual_seed(seed + 3)
        with torch.no_grad():
            unet.conv_in.weight[:, 4:].normal_(0, 0.1)
            adapter.linear1.weight.add_(torch.randn_like(adapter.linear1.weight) * 0.2)
    return {**parts, "unet": unet, "adapter": adapter}


def tiny_pipeline(seed: int = 0, **kwargs) -> DreamPosePipeline:
    pipe = DreamPosePipeline(**tiny_components(seed, **kwargs), tiny_random=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe
