"""Turning a subject photo into the UNet's cross-attention embedding c_I, and the input
conventions ("numerics") shared by training and inference, so the two can never disagree
(the official code normalises differently in each). Poses: ``pose_window``.

Conventions ("dreampose" numerics, the default):
- Pose maps stay in [0, 1] as DensePose gives them, with 0 meaning "no body". The
  unconditional pose of classifier-free guidance is therefore all zeros: no body anywhere.
- Images enter the VAE in [-1, 1], as Stable Diffusion was trained; CLIP gets the photo
  through its own processor. The unconditional image is the all-black image (pixels 0)
  taken through the same path.

"official" numerics reproduce the official inference code for converted checkpoints: poses
normalised to [-1, 1] by (x - 0.5) / 0.5 (background becomes -1), the adapter's VAE input
given raw 0..255 pixel values, a missing window neighbour replaced by the centre frame,
and sampling started from the subject's latents noised to the first timestep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

NUMERICS = ("dreampose", "official")


def check_numerics(numerics: str) -> str:
    if numerics not in NUMERICS:
        raise ValueError(f"numerics must be one of {', '.join(NUMERICS)}; got {numerics!r}")
    return numerics


def vae_pixels(images: np.ndarray, numerics: str = "dreampose") -> torch.Tensor:
    """RGB uint8 (B, H, W, 3) -> VAE input (B, 3, H, W): [-1, 1], or 0..255 (official adapter)."""
    import torch

    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return pixels if numerics == "official" else pixels / 127.5 - 1.0


def image_embedding(
    images: np.ndarray,
    *,
    vae,
    image_encoder,
    feature_extractor,
    adapter,
    numerics: str = "dreampose",
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """c_I = A(c_CLIP, c_VAE) for RGB uint8 images (B, H, W, 3): (B, T, D).

    The VAE contributes the mean of its latent distribution (deterministic), scaled like
    the diffusion latents.
    """
    dtype = dtype or next(adapter.parameters()).dtype
    clip_input = feature_extractor(images=list(images), return_tensors="pt").pixel_values
    clip_tokens = image_encoder(clip_input.to(device=device, dtype=dtype)).last_hidden_state
    pixels = vae_pixels(images, numerics).to(device=device, dtype=dtype)
    latents = vae.encode(pixels).latent_dist.mode() * vae.config.scaling_factor
    return adapter(clip_tokens, latents.to(dtype))
