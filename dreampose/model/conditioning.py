"""The steps of the two input conventions ("numerics"), shared by training and inference so
the two can never disagree (the official code normalises differently in each). Which
convention a model has is one object, chosen when it loads (``numerics``); this module holds
the steps that object calls. Poses: ``pose_window``.

Conventions ("dreampose" numerics, the default):
- Pose maps stay in [0, 1] as DensePose gives them, with 0 meaning "no body". The
  unconditional pose of classifier-free guidance is therefore all zeros: no body anywhere.
- Images enter the VAE in [-1, 1], as Stable Diffusion was trained; CLIP gets the photo
  through its own processor. The unconditional image is the all-black image (pixels 0)
  taken through the same path.

"official" numerics reproduce the official inference code (``test.py`` and
``pipelines/dual_encoder_pipeline.py`` of johannakarras/DreamPose) for converted checkpoints,
checked against that code on the same random weights (benchmarks/official_parity.py):

- the subject photo is stretched to the canvas with PIL's bicubic resize, not letterboxed
  (:func:`official_key_frame`);
- CLIP gets the photo through the pipeline of transformers 4.25, the version the official
  code ran (PIL bicubic resize of the short side, centre crop, CLIP mean and std), whatever
  transformers is installed, and runs in fp32 (:func:`official_clip_pixels`);
- the adapter's VAE input is raw 0..255 pixel values;
- the unconditional image is the official ``zeros((W, H, 3))``: black, but transposed, so
  its latents are w x h and the adapter max-pools them 2 x 2 into a differently ordered
  grid (:func:`official_unconditional_image`, ``ImageAdapter.forward``). Its embedding is
  weighted by 1 - sI = -7 in eq. 4, so this shape matters;
- poses are stretched to the canvas with bilinear interpolation, normalised to [-1, 1] by
  (x - 0.5) / 0.5 (background becomes -1), then taken to the latent grid by nearest
  (:func:`official_pose_condition`); a missing window neighbour is the centre frame;
- sampling starts from the subject's latents noised to the first timestep;
- each output frame is contrast-stretched to 0..255 (:func:`stretch_contrast`; optional).

Two official steps are deliberately not reproduced, so that a seed gives the same video on
every run: the official code draws the VAE latents with ``latent_dist.sample()`` and its
initial noise from the unseeded global generator; we take the posterior mean and noise
drawn from the caller's seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def vae_pixels(images: np.ndarray) -> torch.Tensor:
    """RGB uint8 (B, H, W, 3) -> VAE input (B, 3, H, W) in [-1, 1], as Stable Diffusion was trained."""
    import torch

    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return pixels / 127.5 - 1.0


# --------------------------------------------------------------------------- official numerics
def official_key_frame(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The subject photo (H, W, 3) uint8 as the official ``test.py`` prepares it: stretched to
    height x width by ``PIL.Image.resize`` with Pillow's default filter for RGB (bicubic)."""
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    stretched = Image.fromarray(image).resize((width, height), resample=Image.Resampling.BICUBIC)
    return np.array(stretched)


def official_unconditional_image(height: int, width: int) -> np.ndarray:
    """The official unconditional image, (1, width, height, 3) uint8 zeros.

    The official pipeline builds it as ``torch.zeros((image.size[0], image.size[1], 3))``
    from a PIL image, whose ``size`` is (width, height): rows and columns swapped. CLIP sees
    the same black square either way; the VAE does not (its latents are w x h).
    """
    return np.zeros((1, width, height, 3), dtype=np.uint8)


def official_clip_pixels(images: np.ndarray, processor) -> torch.Tensor:
    """CLIP input (B, 3, crop_h, crop_w) for RGB uint8 images (B, H, W, 3), computed as
    transformers 4.25's ``CLIPProcessor`` did, so official numerics do not change with the
    installed transformers (5.x resizes differently).

    The sizes, mean, std and filter come from ``processor``'s config; the steps are 4.25's:
    PIL resize of the short side to ``shortest_edge`` (long side ``int(size * long /
    short)``), centre crop with top/left rounded down, ``x * rescale_factor`` in float64
    then float32, and ``(x - mean) / std`` in float32.
    """
    import torch
    from PIL import Image

    short_size = _shortest_edge(processor.size)
    crop_h, crop_w = _crop_size(processor.crop_size)
    if crop_h > short_size or crop_w > short_size:
        raise ValueError(f"the CLIP processor crops {crop_h} x {crop_w} out of a {short_size} px short side")
    resample = Image.Resampling(int(getattr(processor, "resample", Image.Resampling.BICUBIC)))
    scale = float(getattr(processor, "rescale_factor", 1 / 255))
    mean = np.asarray(processor.image_mean, dtype=np.float32)
    std = np.asarray(processor.image_std, dtype=np.float32)
    batch = []
    for image in images:
        h, w = image.shape[:2]
        if min(h, w) != short_size:
            long_size = int(short_size * max(h, w) / min(h, w))
            h, w = (long_size, short_size) if w <= h else (short_size, long_size)
            image = np.asarray(Image.fromarray(image).resize((w, h), resample=resample))
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        crop = image[top : top + crop_h, left : left + crop_w]
        pixels = (crop * scale).astype(np.float32)
        batch.append(((pixels - mean) / std).transpose(2, 0, 1))  # (3, crop_h, crop_w)
    return torch.from_numpy(np.stack(batch))


def official_pose_condition(
    uv: torch.Tensor,
    indices: list[int],
    canvas_size: tuple[int, int] | None,
    latent_size: tuple[int, int],
    num_pose_frames: int,
) -> torch.Tensor:
    """The UNet's pose input for target frames ``indices`` as the official code builds it:
    (B, 2 * num_pose_frames, h, w).

    ``uv`` is the whole sequence (N, 2, H, W) in [0, 1], at any size: each pose of the
    window is stretched to ``canvas_size`` with bilinear interpolation (``test.py``; None:
    ``uv`` is on the canvas already, as training data is), normalised by (x - 0.5) / 0.5,
    and resized to ``latent_size`` by nearest (the pipeline). A window neighbour beyond the
    sequence is the centre frame.
    """
    import torch
    import torch.nn.functional as F

    from dreampose.model.pose_window import check_pose_array, pose_channels, pose_window

    check_pose_array(uv)
    windows = [pose_window(i, uv.shape[0], num_pose_frames, repeat_centre=True) for i in indices]
    poses = uv[torch.tensor(windows).flatten()].float()  # (B * F, 2, H, W)
    if canvas_size is not None:
        poses = F.interpolate(poses, size=tuple(canvas_size), mode="bilinear")
    poses = (poses - 0.5) / 0.5
    poses = F.interpolate(poses, size=tuple(latent_size), mode="nearest")
    return poses.reshape(len(indices), pose_channels(num_pose_frames), *latent_size)


def stretch_contrast(frames: np.ndarray) -> np.ndarray:
    """Min-max contrast stretch of each RGB uint8 frame (B, H, W, 3), as the official
    ``test.py`` does before saving: ``255 * (f - min) / max`` over all pixels and channels,
    truncated to uint8. A flat frame (nothing to stretch) is returned unchanged.
    """
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        shifted = frame - frame.min()
        peak = shifted.max()
        out[i] = frame if peak == 0 else (255 * (shifted / peak)).astype(np.uint8)
    return out


def _shortest_edge(size) -> int:
    """``shortest_edge`` of a processor's ``size``: an int (transformers < 4.26), a dict, or
    transformers 5's ``SizeDict``."""
    if isinstance(size, int):
        return size
    edge = _field(size, "shortest_edge")
    return int(edge) if edge is not None else int(min(_field(size, "height"), _field(size, "width")))


def _crop_size(crop) -> tuple[int, int]:
    if isinstance(crop, int):
        return crop, crop
    return int(_field(crop, "height")), int(_field(crop, "width"))


def _field(size, name: str):
    return size.get(name) if isinstance(size, dict) else getattr(size, name, None)
