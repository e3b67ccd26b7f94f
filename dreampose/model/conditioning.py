"""Turning a subject photo and DensePose UV maps into what the UNet reads.

One home for every input convention, shared by training and inference, so the two can
never disagree (the official code normalises differently in each; see NUMERICS).

Conventions ("dreampose" numerics, the default):
- Pose maps stay in [0, 1] as DensePose gives them, with 0 meaning "no body". The
  unconditional pose of classifier-free guidance is therefore all zeros: no body anywhere.
- Images enter the VAE in [-1, 1], as Stable Diffusion was trained; CLIP gets the photo
  through its own processor. The unconditional image is the all-black image (pixels 0)
  taken through the same path.
- Pose maps reach the latent grid by nearest-neighbour resizing (as the official code):
  averaging would invent UV values that belong to no body part.

"official" numerics reproduce the official inference code for converted checkpoints: poses
normalised to [-1, 1] by (x - 0.5) / 0.5 (background becomes -1), the adapter's VAE input
given raw 0..255 pixel values, a missing window neighbour replaced by the centre frame,
and sampling started from the subject's latents noised to the first timestep.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

POSE_CHANNELS = 2  # U and V
DEFAULT_NUM_POSE_FRAMES = 5  # c_p = {p_{i-2}, ..., p_{i+2}}
NUMERICS = ("dreampose", "official")


def pose_channels(num_pose_frames: int) -> int:
    return POSE_CHANNELS * num_pose_frames


def check_numerics(numerics: str) -> str:
    if numerics not in NUMERICS:
        raise ValueError(f"numerics must be one of {', '.join(NUMERICS)}; got {numerics!r}")
    return numerics


# --------------------------------------------------------------------------- poses
def pose_window(
    index: int, num_frames: int, num_pose_frames: int = DEFAULT_NUM_POSE_FRAMES, numerics: str = "dreampose"
) -> list[int]:
    """Frame indices of the pose window centred on ``index``.

    Beyond the ends of the sequence we repeat the nearest frame that exists (so frame 1 of a
    sequence reads 0, 0, 1, 2, 3); official numerics repeat the centre frame instead.
    """
    if not 0 <= index < num_frames:
        raise ValueError(f"frame {index} is out of range for a sequence of {num_frames} frames")
    half = num_pose_frames // 2
    window = []
    for j in range(index - half, index - half + num_pose_frames):
        if 0 <= j < num_frames:
            window.append(j)
        else:
            window.append(index if numerics == "official" else min(max(j, 0), num_frames - 1))
    return window


def pose_condition(
    uv: torch.Tensor,
    indices: list[int],
    latent_size: tuple[int, int],
    num_pose_frames: int = DEFAULT_NUM_POSE_FRAMES,
    numerics: str = "dreampose",
) -> torch.Tensor:
    """The UNet's pose input for target frames ``indices``: (B, 2 * num_pose_frames, h, w).

    ``uv`` is the whole sequence (N, 2, H, W) with values in [0, 1].
    """
    check_pose_array(uv)
    windows = [pose_window(i, uv.shape[0], num_pose_frames, numerics) for i in indices]
    index = torch.tensor(windows, device=uv.device).flatten()
    poses = uv[index].float()  # (B * F, 2, H, W)
    poses = F.interpolate(poses, size=tuple(latent_size), mode="nearest")
    if numerics == "official":
        poses = (poses - 0.5) / 0.5
    return poses.reshape(len(indices), pose_channels(num_pose_frames), *latent_size)


def check_pose_array(uv) -> None:
    """Validate a pose array (N, 2, H, W): raise a ValueError that says what is wrong."""
    shape = tuple(uv.shape)
    if len(shape) != 4 or shape[1] != POSE_CHANNELS:
        raise ValueError(f"poses must have shape (N, 2, H, W): N frames of U and V maps; got shape {shape}")
    if shape[0] == 0:
        raise ValueError("the pose sequence is empty: give at least one pose frame")


# --------------------------------------------------------------------------- images
def load_rgb(image) -> np.ndarray:
    """A path, PIL image or array as RGB uint8 (H, W, 3).

    Greyscale is repeated to three channels; transparency is composited onto white (a
    cut-out photo's usual background) instead of being dropped to black.
    """
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        try:
            image = Image.open(path)
            image.load()
        except Exception as e:
            raise ValueError(f"{path.name} is not a readable image ({e})") from e
    if isinstance(image, Image.Image):
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8 (0..255); got {array.dtype}")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 4:
        return load_rgb(Image.fromarray(array, "RGBA"))
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"images must be H x W x 3 (RGB); got shape {array.shape}")
    return array


def vae_pixels(images: np.ndarray, numerics: str = "dreampose") -> torch.Tensor:
    """RGB uint8 (B, H, W, 3) -> VAE input (B, 3, H, W): [-1, 1], or 0..255 (official adapter)."""
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
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """c_I = A(c_CLIP, c_VAE) for RGB uint8 images (B, H, W, 3): (B, T, D).

    The VAE contributes the mean of its latent distribution (deterministic), scaled like
    the diffusion latents.
    """
    clip_input = feature_extractor(images=list(images), return_tensors="pt").pixel_values
    clip_tokens = image_encoder(clip_input.to(device=device, dtype=dtype)).last_hidden_state
    pixels = vae_pixels(images, numerics).to(device=device, dtype=dtype)
    latents = vae.encode(pixels).latent_dist.mode() * vae.config.scaling_factor
    return adapter(clip_tokens, latents.to(dtype))
