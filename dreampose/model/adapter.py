"""The split CLIP-VAE image adapter (paper section 4.2.1, eq. 3: c_I = A(c_CLIP, c_VAE)).

The adapter turns the subject image into the cross-attention embedding the UNet reads in
place of text: CLIP image tokens (B, T, D) plus the image's VAE latents, which are
max-pooled, flattened per latent channel and projected to D, giving 4 extra tokens. A linear
layer across the token axis mixes the T + 4 tokens back to T. It starts as the identity on
the CLIP tokens, so the pretrained UNet first sees exactly the CLIP embedding (the paper's
"no shock" initialisation) and learns to use the VAE tokens during finetuning.

Parameter names and shapes match the official ``adapter_N.pth`` (``vae2clip``, ``linear1``).
Pooling is adaptive to a fixed grid, so the same weights work at every output size. The
official adapter pools with a fixed 2 x 2 max-pool instead; ``fixed_pool=True`` does that
where it fits (official numerics), which matters for the official unconditional image, whose
latents are transposed (see ``dreampose.model.conditioning``).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from dreampose.base import paper


class ImageAdapter(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        clip_tokens: int = 50,
        clip_dim: int = 768,
        latent_channels: int = 4,
        pooled_size: tuple[int, int] = (40, 32),
    ):
        super().__init__()
        pooled_size = tuple(pooled_size)
        self.pool = nn.AdaptiveMaxPool2d(pooled_size)
        self.vae2clip = nn.Linear(pooled_size[0] * pooled_size[1], clip_dim)
        self.linear1 = nn.Linear(clip_tokens + latent_channels, clip_tokens)
        with torch.no_grad():  # identity on the CLIP tokens, zero weight on the VAE tokens
            self.linear1.weight.copy_(torch.eye(clip_tokens, clip_tokens + latent_channels))
            self.linear1.bias.zero_()

    def forward(
        self, clip_tokens: torch.Tensor, vae_latents: torch.Tensor, fixed_pool: bool = False
    ) -> torch.Tensor:
        """(B, T, D) CLIP tokens and (B, C, h, w) VAE latents -> (B, T, D) embedding.

        ``fixed_pool``: pool as the official adapter does (``MaxPool2d(2)``) whenever that
        gives as many values as the pooled grid, e.g. a 64 x 80 grid (32 x 40 after pooling)
        for a 40 x 32 adapter; adaptive pooling otherwise (sizes the official code cannot run).
        On latents exactly twice the grid both poolings are the same.
        """
        vae_tokens = self.vae2clip(self.pool_latents(vae_latents, fixed_pool))  # (B, C, D)
        tokens = torch.cat([clip_tokens, vae_tokens.to(clip_tokens.dtype)], dim=1)  # (B, T + C, D)
        return self.linear1(tokens.transpose(1, 2)).transpose(1, 2)  # (B, T, D)

    def pool_latents(self, vae_latents: torch.Tensor, fixed_pool: bool = False) -> torch.Tensor:
        """(B, C, h, w) latents -> (B, C, cells) max-pooled and flattened row by row."""
        cells = self.vae2clip.in_features
        h, w = vae_latents.shape[-2:]
        if fixed_pool and (h // 2) * (w // 2) == cells:
            return nn.functional.max_pool2d(vae_latents, 2).flatten(2)
        return self.pool(vae_latents).flatten(2)


def adapter_for(image_encoder, vae, unet, training_size=(paper.HEIGHT, paper.WIDTH)) -> ImageAdapter:
    """An identity-initialised adapter whose shapes fit these three models."""
    vision = image_encoder.config
    if unet.config.cross_attention_dim != vision.hidden_size:
        raise ValueError(
            f"the UNet attends to {unet.config.cross_attention_dim}-d embeddings but the image encoder "
            f"gives {vision.hidden_size}-d tokens; use a Stable Diffusion 1.x UNet with a ViT-B CLIP"
        )
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    return ImageAdapter(
        clip_tokens=(vision.image_size // vision.patch_size) ** 2 + 1,
        clip_dim=vision.hidden_size,
        latent_channels=vae.config.latent_channels,
        pooled_size=(training_size[0] // scale // 2, training_size[1] // scale // 2),
    )
