"""DreamPosePipeline: image- and pose-conditioned Stable Diffusion (paper sections 4.2 and 4.4).

Every frame is sampled independently, conditioned on the subject image through the CLIP-VAE
adapter (cross-attention) and on a window of 5 poses (extra UNet input channels), with
dual classifier-free guidance (eq. 4). Frames share their initial noise by default, which
the official code does for temporal consistency.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils import BaseOutput
from transformers import CLIPImageProcessor, CLIPVisionModel

from dreampose.base import paper
from dreampose.media.images import read_image
from dreampose.model.adapter import ImageAdapter, adapter_for  # imported here so save/load round-trips it
from dreampose.model.checks import check_guidance, check_interval, check_size, check_steps
from dreampose.model.conditioning import vae_pixels
from dreampose.model.events import FrameDone, Progress
from dreampose.model.guidance import dual_guidance
from dreampose.model.numerics import Numerics, SubjectEncoding, numerics_for
from dreampose.model.pose_window import check_pose_array
from dreampose.model.schedulers import make_scheduler, sampler_name
from dreampose.model.turbo import DeepCacheUNet
from dreampose.model.unet import num_pose_frames_of, widen_conv_in
from pose_extraction.pose_sequence import PoseSequence

__all__ = ["DreamPosePipeline", "DreamPoseOutput", "ImageAdapter", "PreparedInputs"]

StepCallback = Callable[["DreamPosePipeline", int, int, dict], dict | None]


@dataclass(frozen=True)
class BatchConditions:
    """What one frame batch is sampled from: the subject (c_I of the black and the real
    photo, and official numerics' start latents) and each frame's pose window c_P."""

    subject: SubjectEncoding
    pose: torch.Tensor  # (B, 2 * num_pose_frames, h, w)
    frame_indices: list[int]


@dataclass(frozen=True)
class PreparedInputs:
    """What sampling reads besides the noise and the settings, for some frames on one canvas:
    the subject encoded (c_I, and official numerics' start latents) and each frame's pose
    window c_P, on the model's device. Made by :meth:`DreamPosePipeline.prepare`; a caller
    that keeps it (the app, per session) re-renders those frames with another sI, sP, seed,
    sampler or step count without reading or encoding the photo and poses again."""

    subject: SubjectEncoding
    pose_windows: Mapping[int, torch.Tensor]  # frame -> its c_P, (1, 2 * num_pose_frames, h, w)
    num_frames: int  # of the whole pose sequence
    canvas: tuple[int, int]  # (height, width)

    def pose(self, frames: list[int]) -> torch.Tensor:
        """The pose windows of ``frames``: (B, 2 * num_pose_frames, h, w)."""
        return torch.cat([self.pose_windows[i] for i in frames])

    def check(self, frames: list[int], height: int, width: int) -> None:
        """A ValueError unless these inputs were prepared for ``frames`` on this canvas."""
        if self.canvas != (height, width):
            raise ValueError(f"the inputs were prepared for a {self.canvas} canvas, not {(height, width)}")
        missing = [i for i in frames if i not in self.pose_windows]
        if missing:
            raise ValueError(f"the inputs were not prepared for frame {missing[0]}")


@dataclass(frozen=True)
class Sampling:
    """How every frame batch is sampled: eq. 4's weights sI and sP, the steps, turbo."""

    image_guidance_scale: float
    pose_guidance_scale: float
    num_inference_steps: int
    turbo: int | None = None


@dataclass
class DreamPoseOutput(BaseOutput):
    """Rendered frames (PIL images, or uint8 (N, H, W, 3) for ``output_type="np"``)."""

    frames: list[PIL.Image.Image] | np.ndarray
    frame_indices: list[int]


class DreamPosePipeline(DiffusionPipeline):
    model_cpu_offload_seq = "image_encoder->adapter->unet->vae"

    def __init__(
        self,
        vae: AutoencoderKL,
        image_encoder: CLIPVisionModel,
        feature_extractor: CLIPImageProcessor,
        unet: UNet2DConditionModel,
        adapter: ImageAdapter,
        scheduler: KarrasDiffusionSchedulers,
        numerics: str = "dreampose",
        tiny_random: bool = False,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            unet=unet,
            adapter=adapter,
            scheduler=scheduler,
        )
        # Saved in model_index.json: how inputs are prepared (its name; ``numerics``), and
        # whether this is the random test model, so apps can say its frames are noise.
        self.register_to_config(numerics=numerics_for(numerics).name, tiny_random=bool(tiny_random))
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_stable_diffusion(
        cls,
        base_model: str = paper.BASE_MODEL,
        image_encoder: str = paper.IMAGE_ENCODER,
        num_pose_frames: int = paper.NUM_POSE_FRAMES,
        training_size: tuple[int, int] = (paper.HEIGHT, paper.WIDTH),
        unet_weights: bool = True,
        **hub_kwargs,
    ) -> DreamPosePipeline:
        """A fresh DreamPose model for training: SD 1.x weights, widened UNet, identity adapter.

        ``base_model`` and ``image_encoder`` are hub ids or local folders. ``training_size``
        (height, width) fixes the adapter's pooling grid at half the latent size there.
        ``unet_weights=False`` builds the UNet from SD's config alone, for a caller that then
        replaces every UNet weight (converting an official checkpoint): 3.4 GB of SD's UNet
        need not be downloaded or read.
        """
        from diffusers import PNDMScheduler

        vae = AutoencoderKL.from_pretrained(base_model, subfolder="vae", **hub_kwargs)
        if unet_weights:
            unet = UNet2DConditionModel.from_pretrained(base_model, subfolder="unet", **hub_kwargs)
        else:
            config = UNet2DConditionModel.load_config(base_model, subfolder="unet", **hub_kwargs)
            unet = UNet2DConditionModel.from_config(config)
        scheduler = PNDMScheduler.from_pretrained(base_model, subfolder="scheduler", **hub_kwargs)
        encoder = CLIPVisionModel.from_pretrained(image_encoder, **hub_kwargs)
        processor = CLIPImageProcessor.from_pretrained(image_encoder, **hub_kwargs)
        widen_conv_in(unet, num_pose_frames)
        adapter = adapter_for(encoder, vae, unet, training_size)
        return cls(vae, encoder, processor, unet, adapter, make_scheduler(paper.SAMPLER, scheduler.config))

    @property
    def num_pose_frames(self) -> int:
        return num_pose_frames_of(self.unet)

    @property
    def numerics(self) -> Numerics:
        """The model's input conventions, as the object that applies them (``numerics``)."""
        return numerics_for(self.config.numerics)

    # ------------------------------------------------------------------ calling
    @torch.no_grad()
    def __call__(
        self, image, poses, *, output_type: str = "pil", return_dict: bool = True, **sampling
    ) -> DreamPoseOutput | tuple:
        """Render frames of ``poses`` with the subject in ``image``, all at once.

        Takes every argument of :meth:`stream` (``sampling``); ``output_type`` is "pil"
        (a list of images) or "np" (uint8 (N, H, W, 3)).
        """
        if output_type not in ("pil", "np"):
            raise ValueError(f"output_type must be 'pil' or 'np'; got {output_type!r}")
        done = [event for event in self.stream(image, poses, **sampling) if isinstance(event, FrameDone)]
        indices = [event.index for event in done]
        frames = np.stack([event.image for event in done])
        if output_type == "pil":
            frames = [PIL.Image.fromarray(f) for f in frames]
        if not return_dict:
            return (frames, indices)
        return DreamPoseOutput(frames=frames, frame_indices=indices)

    @torch.no_grad()
    def stream(
        self,
        image,
        poses: PoseSequence | np.ndarray | torch.Tensor,
        image_guidance_scale: float = paper.IMAGE_GUIDANCE,
        pose_guidance_scale: float = paper.POSE_GUIDANCE,
        num_inference_steps: int = paper.INFERENCE_STEPS,
        scheduler: str | SchedulerMixin | None = None,
        frames: list[int] | range | None = None,
        height: int | None = None,
        width: int | None = None,
        frame_batch_size: int = 1,
        generator: torch.Generator | None = None,
        same_noise_for_all_frames: bool = True,
        callback_on_step_end: StepCallback | None = None,
        turbo: int | None = None,
        contrast_stretch: bool = True,
        prepared: PreparedInputs | None = None,
    ) -> Iterator[Progress | FrameDone]:
        """Render ``frames`` (default: all) as a stream of events: :class:`Progress` after
        every denoising step (steps done over the whole call), :class:`FrameDone` as each
        frame is decoded. Stopping the iteration stops the render within one step, and a
        caller keeps every frame handed out if a later one fails.

        ``image`` is a path, PIL image or array; it is fitted onto the height x width canvas
        without distortion (letterbox), as are poses of another size. ``poses`` is a
        PoseSequence or an array (N, 2, H, W) of U, V in [0, 1]. ``scheduler`` is a sampler
        name (pndm, ddim, dpm++, euler) or instance; default: a copy of the model's. Each
        call samples with its own scheduler, so concurrent calls cannot disturb each other.
        The seed is taken from ``generator.initial_seed()`` so any frame renders the same
        whichever frames share its call. ``callback_on_step_end(pipe, step, timestep,
        {"latents", "frame_indices"})`` (as in diffusers) runs after every denoising step and
        may return new latents. ``turbo=N`` runs the whole UNet only every N-th step and its
        shallow layers in between (DeepCache, see ``turbo.py``); None is the plain sampler.

        ``prepared`` (from :meth:`prepare`, for these frames and this canvas) replaces
        ``image`` and ``poses``, which are then not read: a re-render only samples.

        Models with official numerics prepare their inputs as the official code does
        instead (stretched photo and poses, see ``numerics``), and ``contrast_stretch``
        stretches each of their frames to 0..255 as the official code does before saving.
        """
        # 0. Check inputs
        height = self.trained_size[0] if height is None else height
        width = self.trained_size[1] if width is None else width
        scheduler = self.make_scheduler(scheduler)
        self.check_settings(
            image_guidance_scale,
            pose_guidance_scale,
            num_inference_steps,
            height,
            width,
            sampler_name(scheduler),
        )
        if turbo is not None:
            check_interval(turbo)

        # 1.-3. Place the subject and the poses on the canvas, encode the subject (unless prepared)
        if prepared is None:
            prepared = self.prepare(image, poses, frames, height, width)
        frames = self.check_frames(frames, prepared.num_frames, frame_batch_size)
        prepared.check(frames, height, width)

        # 4. Define call parameters
        device = self._execution_device
        dtype = self.unet.dtype
        latent_size = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        seed = generator.initial_seed() if generator is not None else secrets.randbits(63)
        sampling = Sampling(image_guidance_scale, pose_guidance_scale, num_inference_steps, turbo)
        numerics = self.numerics

        # 5. Sample frame batches, reporting every step; 6. decode each batch
        per_frame = self.steps_per_frame(scheduler, num_inference_steps)
        total = len(frames) * per_frame
        try:
            for start in range(0, len(frames), frame_batch_size):
                batch = frames[start : start + frame_batch_size]
                conditions = BatchConditions(prepared.subject, prepared.pose(batch), batch)
                noise = self.prepare_noise(batch, latent_size, seed, same_noise_for_all_frames)
                denoising = self.denoise(
                    scheduler,
                    noise.to(device=device, dtype=dtype),
                    conditions,
                    sampling,
                    callback_on_step_end,
                )
                for step, latents in enumerate(denoising):  # noqa: B007 - the last step's are the result
                    yield Progress(start * per_frame + (step + 1) * len(batch), total)
                images = numerics.finish_frames(self.decode_latents(latents), contrast_stretch)
                for index, frame in zip(batch, images, strict=True):
                    yield FrameDone(index, frame)
        finally:
            self.maybe_free_model_hooks()  # with CPU offload: move the last model off the GPU

    def make_scheduler(self, scheduler: str | SchedulerMixin | None = None) -> SchedulerMixin:
        """A new scheduler for one call: of the named kind, or like the model's own."""
        if scheduler is None:
            return type(self.scheduler).from_config(self.scheduler.config)
        if isinstance(scheduler, str):
            return make_scheduler(scheduler, self.scheduler.config)
        return scheduler

    # ------------------------------------------------------------------ steps
    @property
    def trained_size(self) -> tuple[int, int]:
        """The (height, width) the model was trained at, the default canvas: the adapter's
        pooled grid is half the latent grid there (``adapter_for``)."""
        rows, cols = self.adapter.config.pooled_size
        return rows * 2 * self.vae_scale_factor, cols * 2 * self.vae_scale_factor

    def prepare(
        self,
        image,
        poses: PoseSequence | np.ndarray | torch.Tensor,
        frames: list[int] | range | None = None,
        height: int | None = None,
        width: int | None = None,
    ) -> PreparedInputs:
        """The subject in ``image`` encoded and the pose windows of ``frames`` (default: all),
        on the height x width canvas (default: the trained size), as :meth:`stream` reads them."""
        height = self.trained_size[0] if height is None else height
        width = self.trained_size[1] if width is None else width
        check_size(height, width)
        uv = self.check_poses(poses)
        frames = self.check_frames(frames, len(uv), 1)
        return PreparedInputs(
            self.encode_photo(image, height, width),
            self.pose_windows(uv, frames, height, width),
            len(uv),
            (height, width),
        )

    @torch.no_grad()
    def encode_photo(self, image, height: int, width: int) -> SubjectEncoding:
        """The subject photo (a path, PIL image or array) placed on the canvas and encoded."""
        subject = self.numerics.place_subject(read_image(image), height, width)
        return self.encode_subject(subject, self._execution_device, self.unet.dtype)

    def pose_windows(self, uv: torch.Tensor, frames: list[int], height: int, width: int) -> dict:
        """Each frame's pose window c_P on the model's device, from the checked poses ``uv``
        (N, 2, H, W) in [0, 1]."""
        device, dtype = self._execution_device, self.unet.dtype
        latent_size = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        uv = self.numerics.place_poses(uv, height, width, device)
        # One frame at a time: a window reads 5 full-size poses, so all frames at once would
        # hold 5 times the whole sequence.
        return {
            i: self.numerics.pose_condition(uv, [i], latent_size, self.num_pose_frames, (height, width)).to(
                device=device, dtype=dtype
            )
            for i in dict.fromkeys(frames)
        }

    def check_settings(
        self, image_guidance_scale, pose_guidance_scale, steps, height, width, sampler: str | None = None
    ) -> None:
        """Validate the sampling settings of a call (``sampler``: its name in SAMPLERS, if any)."""
        check_guidance("image_guidance_scale", image_guidance_scale)
        check_guidance("pose_guidance_scale", pose_guidance_scale)
        check_steps(steps, sampler)
        check_size(height, width)

    @staticmethod
    def check_poses(poses) -> torch.Tensor:
        """Validate poses; return them as a float tensor (N, 2, H, W) in [0, 1]."""
        if isinstance(poses, PoseSequence):
            return torch.from_numpy(poses.uv_float())
        uv = torch.as_tensor(np.asarray(poses) if not torch.is_tensor(poses) else poses).float()
        check_pose_array(uv)
        if not torch.isfinite(uv).all() or uv.min() < 0 or uv.max() > 1:
            raise ValueError(
                "pose values must be DensePose U, V coordinates in [0, 1] (0 = no body); "
                f"got values in [{uv.min().item():.3g}, {uv.max().item():.3g}]"
            )
        return uv

    @staticmethod
    def check_frames(frames, num_frames: int, frame_batch_size: int) -> list[int]:
        if not isinstance(frame_batch_size, int) or frame_batch_size < 1:
            raise ValueError(f"frame_batch_size must be at least 1; got {frame_batch_size}")
        frames = list(range(num_frames)) if frames is None else [int(i) for i in frames]
        if not frames:
            raise ValueError("no frames selected to render")
        bad = [i for i in frames if not 0 <= i < num_frames]
        if bad:
            raise ValueError(f"frame {bad[0]} is out of range: the poses have frames 0..{num_frames - 1}")
        return frames

    def encode_image(self, images: np.ndarray, device, dtype) -> torch.Tensor:
        """The adapter's embedding c_I for RGB uint8 images (B, H, W, 3), in the model's numerics."""
        return self.numerics.encode_image(self, images, device, dtype)

    def encode_subject(self, subject: np.ndarray, device, dtype) -> SubjectEncoding:
        """The subject photo on the canvas (H, W, 3) as sampling reads it (``SubjectEncoding``)."""
        return self.numerics.encode_subject(self, subject, device, dtype)

    def encode_latents(self, image: np.ndarray, device, dtype) -> torch.Tensor:
        """Diffusion-space latents of one RGB uint8 image (1, 4, h, w)."""
        pixels = vae_pixels(image[None]).to(device=device, dtype=dtype)
        return self.vae.encode(pixels).latent_dist.mode() * self.vae.config.scaling_factor

    def prepare_noise(self, frame_indices, latent_size, seed: int, same_for_all: bool) -> torch.Tensor:
        """Initial noise (B, C, h, w), on the CPU so every device draws the same numbers.

        Shared noise comes from ``seed``; per-frame noise from ``seed + frame index``, so a
        frame's noise never depends on which other frames are rendered with it.
        """
        shape = (1, self.unet.config.out_channels, *latent_size)
        if same_for_all:
            noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
            return noise.expand(len(frame_indices), -1, -1, -1).clone()
        return torch.cat(
            [torch.randn(shape, generator=torch.Generator().manual_seed(seed + i)) for i in frame_indices]
        )

    def steps_per_frame(self, scheduler: str | SchedulerMixin | None, num_inference_steps: int) -> int:
        """Denoising steps one frame really takes: PNDM, for one, runs one more than asked."""
        scheduler = self.make_scheduler(scheduler)
        scheduler.set_timesteps(num_inference_steps)
        return len(scheduler.timesteps)

    def denoise(
        self,
        scheduler: SchedulerMixin,
        noise: torch.Tensor,
        conditions: BatchConditions,
        sampling: Sampling,
        callback_on_step_end: StepCallback | None = None,
    ) -> Iterator[torch.Tensor]:
        """Run the sampler on one frame batch, yielding the latents after every step (the last
        are the result). The three guidance branches, for every frame of the batch, share one
        UNet call: (∅, ∅), (c_I, c_P), (c_I, ∅)."""
        batch = noise.shape[0]
        subject, pose = conditions.subject, conditions.pose
        scheduler.set_timesteps(sampling.num_inference_steps, device=noise.device)
        latents = self.numerics.start_latents(scheduler, noise, subject)
        no_pose = torch.zeros_like(pose)
        pose_in = torch.cat([no_pose, pose, no_pose])
        embeds = torch.cat(
            [subject.unconditional.expand(batch, -1, -1), subject.conditional.expand(2 * batch, -1, -1)]
        )
        # Turbo: a fresh DeepCache wrapper per frame batch, so no two loops share its cache.
        unet = self.unet if sampling.turbo is None else DeepCacheUNet(self.unet, interval=sampling.turbo)

        with self.progress_bar(total=len(scheduler.timesteps)) as progress:
            for i, t in enumerate(scheduler.timesteps):
                model_input = scheduler.scale_model_input(torch.cat([latents] * 3), t)
                model_input = torch.cat([model_input, pose_in], dim=1)
                eps = unet(model_input, t, encoder_hidden_states=embeds).sample
                eps_uncond, eps_image_pose, eps_image = eps.chunk(3)
                eps = dual_guidance(
                    eps_uncond,
                    eps_image,
                    eps_image_pose,
                    sampling.image_guidance_scale,
                    sampling.pose_guidance_scale,
                )
                latents = scheduler.step(eps, t, latents).prev_sample
                if callback_on_step_end is not None:
                    out = callback_on_step_end(
                        self, i, int(t), {"latents": latents, "frame_indices": list(conditions.frame_indices)}
                    )
                    if out and "latents" in out:
                        latents = out["latents"]
                progress.update()
                yield latents

    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Latents -> RGB uint8 frames (B, H, W, 3)."""
        images = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        images = (images.float() / 2 + 0.5).clamp(0, 1)
        return (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).cpu().numpy()
