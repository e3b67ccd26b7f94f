"""The input conventions ("numerics") of a model, as one object chosen when the model loads.

A DreamPose model's ``model_index.json`` says how its inputs are prepared (the key
``numerics``: ``"dreampose"``, the default, or ``"official"`` for converted official
checkpoints). :func:`numerics_for` turns that name into one of two objects, and every step
that differs between the two conventions is a method of it, so no other module asks which
convention it has:

- where the subject photo and the poses go on the canvas (:meth:`Numerics.place_subject`,
  :meth:`~Numerics.place_poses`, :meth:`~Numerics.place_driving_poses`);
- the image embedding c_I (:meth:`~Numerics.encode_image`, :meth:`~Numerics.encode_subject`);
- the pose window c_P (:meth:`~Numerics.pose_window`, :meth:`~Numerics.pose_condition`);
- where sampling starts (:meth:`~Numerics.start_latents`) and what is done to the decoded
  frames (:meth:`~Numerics.finish_frames`).

The steps themselves (and why the official ones are as they are) are in ``conditioning``.
Only numpy is imported at module level, so the names can be listed without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch

    from pose_extraction.pose_sequence import PoseSequence

NUMERICS = ("dreampose", "official")


class SubjectEncoding(NamedTuple):
    """The subject photo as sampling reads it: c_I of the unconditional (black) image and of
    the photo (each (1, T, D)), and the latents sampling starts from (official numerics) or None."""

    unconditional: torch.Tensor
    conditional: torch.Tensor
    latents: torch.Tensor | None


class Numerics:
    """What both conventions share; the subclasses are the two conventions."""

    name: str
    summary: str  # for people (model cards): what the convention is
    # The adapter pools the VAE latents with the official fixed 2 x 2 max-pool where it fits.
    fixed_pool: bool = False

    def __repr__(self) -> str:
        return f"<{self.name} numerics>"

    # ------------------------------------------------------------------ the image, c_I
    def encode_image(self, parts, images: np.ndarray, device, dtype=None) -> torch.Tensor:
        """c_I = A(c_CLIP, c_VAE) for RGB uint8 images (B, H, W, 3): (B, T, D).

        ``parts`` has the ``vae``, ``image_encoder``, ``feature_extractor`` and ``adapter``
        (a pipeline, or the training loop's wrapped modules). The VAE contributes the mean of
        its latent distribution (deterministic), scaled like the diffusion latents.
        """
        dtype = dtype or next(parts.adapter.parameters()).dtype
        clip_input, clip_dtype = self.clip_input(images, parts, dtype)
        clip_tokens = parts.image_encoder(clip_input.to(device=device, dtype=clip_dtype)).last_hidden_state
        pixels = self.adapter_pixels(images).to(device=device, dtype=dtype)
        latents = parts.vae.encode(pixels).latent_dist.mode() * parts.vae.config.scaling_factor
        return parts.adapter(clip_tokens.to(dtype), latents.to(dtype), fixed_pool=self.fixed_pool)

    def clip_input(self, images: np.ndarray, parts, dtype) -> tuple[torch.Tensor, torch.dtype]:
        """CLIP's pixel input for ``images`` and the dtype CLIP runs in."""
        raise NotImplementedError

    def adapter_pixels(self, images: np.ndarray) -> torch.Tensor:
        """The VAE input of the adapter's c_VAE for RGB uint8 images (B, H, W, 3)."""
        raise NotImplementedError

    def encode_subject(self, pipe, subject: np.ndarray, device, dtype) -> SubjectEncoding:
        """The subject photo on the canvas (H, W, 3) as sampling reads it, once per render."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the poses, c_P
    def pose_window(self, index: int, num_frames: int, num_pose_frames: int) -> list[int]:
        """Frame indices of the pose window centred on ``index``."""
        raise NotImplementedError

    def pose_condition(
        self,
        uv: torch.Tensor,
        indices: list[int],
        latent_size: tuple[int, int],
        num_pose_frames: int,
        canvas_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """The UNet's pose input for target frames ``indices``: (B, 2 * num_pose_frames, h, w).

        ``uv`` is the whole sequence (N, 2, H, W) in [0, 1] as :meth:`place_poses` left it;
        ``canvas_size``: the canvas sampling renders (None: ``uv`` is on it already, as in
        training).
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ placing inputs
    def place_subject(self, image: np.ndarray, height: int, width: int) -> np.ndarray:
        """The subject photo (RGB uint8) on the height x width canvas."""
        raise NotImplementedError

    def place_poses(self, uv: torch.Tensor, height: int, width: int, device) -> torch.Tensor:
        """The pose sequence as the pipeline keeps it while sampling (on ``device`` or the CPU)."""
        raise NotImplementedError

    def place_driving_poses(
        self,
        poses: PoseSequence,
        height: int,
        width: int,
        subject: PoseSequence | None = None,
        align: bool = True,
    ) -> PoseSequence:
        """Driving poses fitted onto the canvas; with the subject photo's pose and ``align``,
        scaled and shifted so the first frame's body stands where the subject's does."""
        from pose_extraction.placement import place_on_canvas

        return place_on_canvas(poses, height, width, subject=subject, align=align)

    # ------------------------------------------------------------------ sampling
    def start_latents(self, scheduler, noise: torch.Tensor, subject: SubjectEncoding) -> torch.Tensor:
        """The latents the sampler starts from, after ``scheduler.set_timesteps``."""
        raise NotImplementedError

    def finish_frames(self, frames: np.ndarray, contrast_stretch: bool = True) -> np.ndarray:
        """Decoded RGB uint8 frames (B, H, W, 3) as they are handed out."""
        return frames


class DreamPoseNumerics(Numerics):
    """This project's convention, the same in training and inference: poses in [0, 1] (0 = no
    body), images in [-1, 1] for the VAE, photo and poses letterboxed onto the canvas."""

    name = "dreampose"
    summary = (
        "the app's own convention: poses in [0, 1] (0 = no body), images in [-1, 1] for the VAE, "
        "photo and poses letterboxed onto the canvas without distortion."
    )

    def clip_input(self, images, parts, dtype):
        return parts.feature_extractor(images=list(images), return_tensors="pt").pixel_values, dtype

    def adapter_pixels(self, images):
        from dreampose.model.conditioning import vae_pixels

        return vae_pixels(images)

    def encode_subject(self, pipe, subject, device, dtype):
        # One batch of two: the black image (the unconditional c_I) and the photo.
        both = pipe.encode_image(np.stack([np.zeros_like(subject), subject]), device, dtype)
        unconditional, conditional = both.chunk(2)
        return SubjectEncoding(unconditional, conditional, None)

    def pose_window(self, index, num_frames, num_pose_frames):
        from dreampose.model.pose_window import pose_window

        return pose_window(index, num_frames, num_pose_frames)

    def pose_condition(self, uv, indices, latent_size, num_pose_frames, canvas_size=None):
        from dreampose.model.pose_window import pose_condition

        return pose_condition(uv, indices, latent_size, num_pose_frames)

    def place_subject(self, image, height, width):
        from dreampose.media.canvas import fit_image

        return fit_image(image, height, width)

    def place_poses(self, uv, height, width, device):
        import torch

        from dreampose.media.canvas import fit_pose

        if tuple(uv.shape[-2:]) != (height, width):
            fitted, _, _ = fit_pose(uv.numpy(), None, height, width)
            uv = torch.from_numpy(fitted)
        return uv.to(device)

    def start_latents(self, scheduler, noise, subject):
        return noise * scheduler.init_noise_sigma


class OfficialNumerics(Numerics):
    """The official inference code's convention, for converted official checkpoints
    (``conditioning`` lists each step): stretched photo and poses, poses in [-1, 1], raw
    pixels for the adapter's VAE, transformers-4.25 CLIP in fp32, sampling from the photo's
    noised latents, contrast-stretched frames."""

    name = "official"
    fixed_pool = True
    summary = (
        "inputs are prepared as the official inference code prepares them (photo and poses stretched "
        "to 640 x 512, poses normalised to [-1, 1], the adapter's VAE input in raw 0..255 pixels, "
        "transformers-4.25 CLIP preprocessing, frames contrast-stretched), so the model renders what its "
        "authors' code renders. Two things differ on purpose, so that a seed always gives the same video: "
        "the VAE posterior mean instead of a sample, and seeded noise."
    )

    def clip_input(self, images, parts, dtype):
        from dreampose.model.conditioning import official_clip_pixels

        return official_clip_pixels(images, parts.feature_extractor), parts.image_encoder.dtype

    def adapter_pixels(self, images):
        import torch

        # In (B, 3, H, W) memory order, as the official code's torch.tensor(...) copy: the
        # layout changes the VAE's rounding, and an all-black image amplifies it into
        # visible differences of c_I (1.4 in the latents of a black image).
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().contiguous()

    def encode_subject(self, pipe, subject, device, dtype):
        """c_I of the official (transposed) black image and of the stretched subject, and the
        subject's latents that sampling starts from. CLIP runs in fp32, as in the official
        code (which runs it on the CPU), whatever dtype the rest of the model has."""
        import torch

        from dreampose.model.conditioning import official_unconditional_image

        if pipe.image_encoder.dtype != torch.float32:
            pipe.image_encoder.to(dtype=torch.float32)
        height, width = subject.shape[:2]
        unconditional = pipe.encode_image(official_unconditional_image(height, width), device, dtype)
        conditional = pipe.encode_image(subject[None], device, dtype)
        return SubjectEncoding(unconditional, conditional, pipe.encode_latents(subject, device, dtype))

    def pose_window(self, index, num_frames, num_pose_frames):
        """The official window: a neighbour beyond the sequence is the centre frame itself."""
        from dreampose.model.pose_window import pose_window

        return pose_window(index, num_frames, num_pose_frames, repeat_centre=True)

    def pose_condition(self, uv, indices, latent_size, num_pose_frames, canvas_size=None):
        from dreampose.model.conditioning import official_pose_condition

        return official_pose_condition(uv, indices, canvas_size, latent_size, num_pose_frames)

    def place_subject(self, image, height, width):
        from dreampose.model.conditioning import official_key_frame

        return official_key_frame(image, height, width)

    def place_poses(self, uv, height, width, device):
        return uv  # stretched per window by pose_condition, on the CPU, as the official code does

    def place_driving_poses(self, poses, height, width, subject=None, align=True):
        # Without the subject's pose the poses stay as they are: the pipeline stretches them
        # onto the canvas as the official code does.
        if subject is None:
            return poses
        return super().place_driving_poses(poses, height, width, subject, align)

    def start_latents(self, scheduler, noise, subject):
        # The subject's latents noised to the first timestep (img2img at strength 1).
        return scheduler.add_noise(subject.latents.expand_as(noise), noise, scheduler.timesteps[:1])

    def finish_frames(self, frames, contrast_stretch=True):
        from dreampose.model.conditioning import stretch_contrast

        return stretch_contrast(frames) if contrast_stretch else frames


DREAMPOSE = DreamPoseNumerics()
OFFICIAL = OfficialNumerics()
_BY_NAME = {n.name: n for n in (DREAMPOSE, OFFICIAL)}


def numerics_for(name: str) -> Numerics:
    """The convention named in a model's ``model_index.json``; a ValueError for any other name."""
    if name not in _BY_NAME:
        raise ValueError(f"numerics must be one of {', '.join(NUMERICS)}; got {name!r}")
    return _BY_NAME[name]
