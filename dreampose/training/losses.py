"""The denoising objective shared by base training (phase 1) and subject finetuning (phase 2).

One function computes the loss for a batch of (subject image, target image, target pose
window) triples, using the same input conventions as inference (``dreampose.model.conditioning``),
so what the UNet sees while learning is exactly what it sees while sampling:

- c_I: the subject image through CLIP and the VAE, then the adapter (the model's
  ``numerics.encode_image``, which the pipeline's ``encode_image`` calls too);
  a dropped image is the all-black image taken through the same path, which is the
  pipeline's unconditional image.
- c_P: the 5-pose window at latent size (``pose_condition``); a dropped pose is all zeros,
  the pipeline's unconditional pose.
- z_0: the target's VAE latents (a posterior sample, scaled), noised at a uniformly drawn
  timestep; the UNet predicts the noise (or v, if the scheduler says so), trained with MSE.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from dreampose.model.conditioning import vae_pixels
from dreampose.training.settings import NO_DROPOUT, ConditionDropout


def training_scheduler(config) -> DDPMScheduler:
    """The forward-noising schedule matching the pipeline's sampler (same betas)."""
    return DDPMScheduler.from_config(config)


@torch.no_grad()
def target_latents(vae, images: np.ndarray, generator: torch.Generator | None = None) -> torch.Tensor:
    """z_0 for RGB uint8 images (B, H, W, 3): a posterior sample, scaled for diffusion."""
    param = next(vae.parameters())
    pixels = vae_pixels(images).to(device=param.device, dtype=param.dtype)
    dist = vae.encode(pixels).latent_dist
    noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean)
    return (dist.mean + dist.std * noise) * vae.config.scaling_factor


def denoising_loss(
    pipe,
    subject_images: np.ndarray,
    target_images: np.ndarray,
    pose: torch.Tensor,
    noise_scheduler: DDPMScheduler,
    dropout: ConditionDropout = NO_DROPOUT,
    generator: torch.Generator | None = None,
    timesteps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean-squared denoising loss for one batch.

    ``subject_images`` and ``target_images`` are RGB uint8 (B, H, W, 3) on the canvas;
    ``pose`` is the target's pose window from ``pose_condition`` (B, 2 * frames, h, w).
    ``pipe`` supplies ``encode_image``, ``vae`` and ``unet`` (a pipeline, or ``train``'s
    wrapped modules);
    gradients reach whichever of the UNet and adapter require them. All randomness comes
    from ``generator`` (CPU), so a resumed run draws the same numbers.
    """
    weight = next(pipe.unet.parameters())  # works for a DDP/FSDP-wrapped UNet too
    device, dtype = weight.device, weight.dtype
    batch = len(target_images)
    drop_image, drop_pose = dropout.draw(batch, generator)

    # 1. Conditions: c_I (with dropped images replaced by black) and c_P (dropped -> zeros)
    subjects = np.where(drop_image.numpy()[:, None, None, None], 0, subject_images).astype(np.uint8)
    # CLIP and the VAE are frozen (no parameter requires grad), so autograd records a
    # graph only from the adapter on.
    c_image = pipe.encode_image(subjects, device, dtype)
    pose = (
        pose.to(device=device, dtype=dtype) * (~drop_pose).to(device=device, dtype=dtype)[:, None, None, None]
    )

    # 2. Noise the target latents at random timesteps
    latents = target_latents(pipe.vae, target_images, generator).to(dtype)
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    if timesteps is None:
        timesteps = torch.randint(
            0, noise_scheduler.config.num_train_timesteps, (batch,), generator=generator
        )
    timesteps = timesteps.to(device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)

    # 3. Predict and compare
    prediction = pipe.unet(torch.cat([noisy, pose], dim=1), timesteps, encoder_hidden_states=c_image).sample
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    return F.mse_loss(prediction.float(), target.float())
