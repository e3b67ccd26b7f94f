"""Subject-specific finetuning, the second phase of DreamPose training (paper section 4.3).

A base DreamPose model is refined on one or more photos of one subject so that it keeps the
person's face and garment:

1. UNet + adapter, 500 steps at lr 1e-5, no condition dropout, with the same random
   crop/scale applied to each target photo and its pose (``dreampose.training.augment``), which the
   paper uses against texture sticking. With several photos, each step pairs a subject
   photo i (the condition c_I) with a target photo j, its *own* pose c_P and its *own*
   pixels as the target; i and j are drawn independently, so one photo is also paired
   with itself (the official script set the target to the input, ``frame_j = frame_i``).
2. VAE decoder only, 1500 steps at lr 5e-5. Loss: L1 between the decoded latents of a
   (randomly cropped) subject photo and the photo, in [-1, 1] pixels. Why L1: it is the
   pixel term Stable Diffusion's autoencoder was trained with; MSE prefers blur, and
   removing blur is what this stage is for. The perceptual and adversarial terms of that
   recipe need pretrained networks we do not ship. Latents are *sampled* from the frozen
   encoder's posterior, not its mean, so the decoder also learns to tolerate the small
   latent errors that sampling leaves.

``finetune`` is the one entry point (CLI and app). It reports progress through a callback
and a tqdm bar, stops between steps when a ``threading.Event`` is set, and writes resumable
checkpoints atomically (write a temporary folder, then rename), so a crash or a cancel
never damages the last good checkpoint.

Output folder:
- full mode: a ``DreamPosePipeline.save_pretrained`` folder (loads with ``from_pretrained``).
- LoRA mode: ``subject.json`` (base model id, LoRA config), ``unet_lora.safetensors``,
  ``adapter.safetensors``, ``vae_decoder.safetensors``: tens of MB instead of GB. Load it
  with :func:`dreampose.runtime.loading.load_pipeline`, which also loads full-mode folders.
While training, ``checkpoint/`` holds the resumable state; it is removed on success.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from dreampose.base.files import atomic_dir, existing_dir, remove, writable_folder
from dreampose.media.canvas import fit_image, fit_pose
from dreampose.media.images import read_image
from dreampose.model.numerics import Numerics
from dreampose.model.subject import add_lora, load_weights, save_weights, write_description
from dreampose.training.augment import crop_image, crop_pose
from dreampose.training.common import make_optimizer, model_fingerprint, publish_entries
from dreampose.training.losses import denoising_loss, target_latents, training_scheduler
from dreampose.training.settings import NO_DROPOUT, CropScale, FinetuneSettings
from pose_extraction.pose_sequence import PoseSequence

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
STAGES = ("unet", "vae")


@dataclass(frozen=True)
class FinetuneProgress:
    """What the callback receives after every step."""

    stage: str  # "unet" or "vae"
    step: int  # steps finished in this stage
    total: int
    loss: float
    elapsed: float  # seconds since this call started
    eta: float  # seconds left in this stage, from this call's pace


@dataclass
class FinetuneResult:
    output: Path
    cancelled: bool
    steps_done: dict[str, int]
    losses: dict[str, list[float]]


ProgressCallback = Callable[[FinetuneProgress], None]


# =========================================================================== subject data
@dataclass
class SubjectPhotos:
    """The subject photos and their poses on the canvas: images uint8 (N, H, W, 3),
    uv float32 (N, 2, H, W)."""

    images: np.ndarray
    uv: np.ndarray

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.images.tobytes())
        digest.update(self.uv.astype(np.float16).tobytes())
        return digest.hexdigest()[:16]


def prepare_subject(
    images: Sequence, poses=None, height: int = 640, width: int = 512, extractor=None
) -> SubjectPhotos:
    """Load the photos and their poses and fit both onto the height x width canvas.

    ``poses``: None (extract each photo's pose), a PoseSequence, or a pose file path, with
    one frame per photo in order. A pose frame must have its photo's aspect ratio (it was
    made from that photo), or the letterboxing would move the body off the pose.
    """
    if not images:
        raise ValueError("give at least one subject photo")
    photos = [read_image(image) for image in images]
    frames = _subject_poses(photos, images, poses, extractor)
    fitted_images, fitted_uv = [], []
    for i, (photo, frame) in enumerate(zip(photos, frames, strict=True)):
        if frame.missing[0]:
            raise ValueError(f"photo {i + 1} ({_name(images[i])}): its pose frame has no person")
        _check_aspect(photo, frame, i, images[i])
        fitted_images.append(fit_image(photo, height, width))
        uv, _, _ = fit_pose(frame.uv_float(), None, height, width)
        fitted_uv.append(uv[0])
    return SubjectPhotos(np.stack(fitted_images), np.stack(fitted_uv).astype(np.float32))


def _subject_poses(photos, images, poses, extractor) -> list[PoseSequence]:
    """One single-frame PoseSequence per photo: split from the given poses, or extracted."""
    if poses is not None:
        sequence = poses if isinstance(poses, PoseSequence) else PoseSequence.load(poses)
        if len(sequence) != len(photos):
            raise ValueError(
                f"the pose file has {len(sequence)} frames for {len(photos)} photos; "
                "it needs exactly one pose frame per photo, in the same order"
            )
        for i in np.flatnonzero(sequence.missing):
            raise ValueError(f"photo {i + 1} ({_name(images[i])}): its pose frame has no person")
        return [sequence.select([i]) for i in range(len(photos))]
    # Imported here: extraction loads DensePose, which a caller with poses never needs.
    from dreampose.runtime.loading import load_densepose
    from pose_extraction.extract import extract_image_pose

    extractor = extractor if extractor is not None else load_densepose()
    frames = []
    for photo, image in zip(photos, images, strict=True):
        try:
            frames.append(extract_image_pose(photo, extractor))
        except ValueError as e:
            raise ValueError(f"{_name(image)}: {e}") from e
    return frames


def _check_aspect(photo: np.ndarray, frame: PoseSequence, i: int, image) -> None:
    photo_aspect = photo.shape[1] / photo.shape[0]
    pose_aspect = frame.width / frame.height
    if abs(photo_aspect / pose_aspect - 1) > 0.02:
        raise ValueError(
            f"photo {i + 1} ({_name(image)}) is {photo.shape[1]} x {photo.shape[0]} but its pose frame is "
            f"{frame.width} x {frame.height}: the pose was not made from this photo "
            "(give poses in the same order as the photos, or omit --poses to extract them)"
        )


def _name(image) -> str:
    return Path(image).name if isinstance(image, str | os.PathLike) else "array"


# =========================================================================== batches
def unet_batch(
    subject: SubjectPhotos,
    batch_size: int,
    crop: CropScale,
    latent_size: tuple[int, int],
    num_pose_frames: int,
    numerics: Numerics,
    generator: torch.Generator,
) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(condition images, target images, target poses) for one UNet step.

    Condition photo i and target photo j are drawn independently; the target keeps its own
    pose, and the target and its pose share one random crop. The condition photo is left
    as the user gives it at inference time.
    """
    n = len(subject.images)
    conditions, targets, poses = [], [], []
    for _ in range(batch_size):
        i, j = torch.randint(0, n, (2,), generator=generator).tolist()
        box = crop.sample(generator)
        conditions.append(subject.images[i])
        targets.append(crop_image(subject.images[j], box))
        uv = torch.from_numpy(crop_pose(subject.uv[j], box))[None]  # (1, 2, H, W)
        poses.append(numerics.pose_condition(uv, [0], latent_size, num_pose_frames))
    return np.stack(conditions), np.stack(targets), torch.cat(poses)


def decoder_loss(vae, images: np.ndarray, generator: torch.Generator | None = None) -> torch.Tensor:
    """L1 between the decoded posterior sample of ``images`` (uint8 (B, H, W, 3)) and them."""
    latents = target_latents(vae, images, generator) / vae.config.scaling_factor
    decoded = vae.decode(latents).sample
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).to(decoded.device, torch.float32) / 127.5 - 1
    return F.l1_loss(decoded.float(), pixels)


# =========================================================================== entry point
def finetune(
    model,
    images: Sequence,
    output: str | os.PathLike,
    poses=None,
    settings: FinetuneSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    resume: bool = False,
    show_progress: bool = False,
    device: str | torch.device | None = None,
    extractor=None,
) -> FinetuneResult:
    """Finetune ``model`` on photos of one subject and write the subject model to ``output``.

    ``model`` is a DreamPose folder / hub id, or a loaded ``DreamPosePipeline`` (trained in
    place). ``images`` are paths, PIL images or RGB arrays; ``poses`` as in
    :func:`prepare_subject`. ``resume`` continues from ``output/checkpoint`` when there is
    one. Setting ``cancel`` stops the run after the current step; what finished is kept (a
    checkpoint and a loadable model in ``output``).
    """
    settings = settings or FinetuneSettings()
    output = writable_folder(output)
    checkpoint = existing_dir(output / CHECKPOINT_DIR, STATE_FILE)
    if checkpoint is not None and not resume:
        raise ValueError(
            f"{output} already holds a finetuning checkpoint; pass resume=True (--resume) to continue it "
            "or choose another output folder"
        )
    pipe, base_model = _load_model(model, device)
    subject = prepare_subject(images, poses, settings.height, settings.width, extractor)
    trainer = _Trainer(pipe, base_model, subject, settings, output, progress, cancel, show_progress)
    if checkpoint is not None:
        trainer.restore(checkpoint)
    return trainer.run()


class _Trainer:
    """The state of one finetuning run: model, optimiser, random generator, counters."""

    def __init__(self, pipe, base_model, subject, settings, output, progress, cancel, show_progress):
        self.pipe = pipe
        self.base_model = base_model
        self.subject = subject
        self.settings = settings
        self.output = output
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.show_progress = show_progress
        self.device = pipe.unet.device
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.fingerprint = model_fingerprint(pipe)
        self.steps_done = {stage: 0 for stage in STAGES}
        self.losses: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self.autocast_dtype = _autocast_dtype(settings.mixed_precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.autocast_dtype == torch.float16 else None
        self._freeze_all()
        if settings.lora_rank:
            add_lora(pipe.unet, settings.lora_rank)
        self.stage = "unet"
        self.optimizer = self._optimizer("unet")

    # ------------------------------------------------------------------ parameters
    def _freeze_all(self) -> None:
        for module in (self.pipe.unet, self.pipe.adapter, self.pipe.vae, self.pipe.image_encoder):
            module.requires_grad_(False)
            module.eval()  # no dropout layers active: the paper's "no dropout"

    def _parameters(self, stage: str) -> list[torch.nn.Parameter]:
        if stage == "vae":  # the decoder side only: post_quant_conv and decoder
            return [*self.pipe.vae.post_quant_conv.parameters(), *self.pipe.vae.decoder.parameters()]
        unet = self.pipe.unet
        unet_params = (
            [p for n, p in unet.named_parameters() if "lora_" in n]
            if self.settings.lora_rank
            else list(unet.parameters())
        )
        return unet_params + list(self.pipe.adapter.parameters())

    def _optimizer(self, stage: str) -> torch.optim.Optimizer:
        params = self._parameters(stage)
        for p in params:
            p.requires_grad_(True)
        lr = self.settings.unet_lr if stage == "unet" else self.settings.vae_lr
        if self.settings.gradient_checkpointing:
            (self.pipe.unet if stage == "unet" else self.pipe.vae).enable_gradient_checkpointing()
        return make_optimizer(params, lr, self.settings.use_8bit_adam)

    def _enter_stage(self, stage: str) -> None:
        if stage == self.stage:
            return
        for p in self._parameters(self.stage):
            p.requires_grad_(False)
        self.stage = stage
        self.optimizer = self._optimizer(stage)

    # ------------------------------------------------------------------ loop
    def run(self) -> FinetuneResult:
        start = time.monotonic()
        cancelled = False
        for stage, total in (("unet", self.settings.unet_steps), ("vae", self.settings.vae_steps)):
            if self.steps_done[stage] >= total:
                continue
            self._enter_stage(stage)
            cancelled = not self._run_stage(stage, total, start)
            if cancelled:
                break
        if any(self.steps_done.values()):  # a cancel before the first step trained nothing to save
            self.save_model()
        if not cancelled:
            remove(self.output / CHECKPOINT_DIR)
        return FinetuneResult(self.output, cancelled, dict(self.steps_done), self.losses)

    def _run_stage(self, stage: str, total: int, start: float) -> bool:
        """Train ``stage`` up to ``total`` steps; False if cancelled (after a checkpoint)."""
        bar = _progress_bar(stage, total, self.steps_done[stage], self.show_progress)
        stage_start, first_step = time.monotonic(), self.steps_done[stage]
        try:
            while self.steps_done[stage] < total:
                if self.cancel.is_set():
                    if any(self.steps_done.values()):
                        self.save_checkpoint()
                    return False
                loss = self._step(stage)
                self.steps_done[stage] += 1
                self.losses[stage].append(loss)
                step = self.steps_done[stage]
                if step % self.settings.checkpoint_every == 0 or step == total:
                    self.save_checkpoint()
                pace = (time.monotonic() - stage_start) / (step - first_step)
                report = FinetuneProgress(
                    stage, step, total, loss, time.monotonic() - start, pace * (total - step)
                )
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                if self.progress is not None:
                    self.progress(report)
        finally:
            if bar is not None:
                bar.close()
        return True

    def _step(self, stage: str) -> float:
        pipe, settings = self.pipe, self.settings
        with self._autocast():
            if stage == "unet":
                conditions, targets, pose = unet_batch(
                    self.subject,
                    settings.batch_size,
                    settings.crop,
                    _latent_size(pipe, settings),
                    pipe.num_pose_frames,
                    pipe.numerics,
                    self.generator,
                )
                loss = denoising_loss(
                    pipe, conditions, targets, pose, self._noise_scheduler, NO_DROPOUT, self.generator
                )
            else:
                loss = decoder_loss(pipe.vae, self._decoder_batch(), self.generator)
        self._backward(loss)
        return float(loss.detach())

    @property
    def _noise_scheduler(self):
        if not hasattr(self, "_scheduler"):
            self._scheduler = training_scheduler(self.pipe.scheduler.config)
        return self._scheduler

    def _decoder_batch(self) -> np.ndarray:
        n = len(self.subject.images)
        picks = torch.randint(0, n, (self.settings.batch_size,), generator=self.generator).tolist()
        return np.stack(
            [crop_image(self.subject.images[j], self.settings.crop.sample(self.generator)) for j in picks]
        )

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _backward(self, loss: torch.Tensor) -> None:
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.settings.max_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.settings.max_grad_norm)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ saving
    def _state(self) -> dict:
        return {
            "stage": self.stage,
            "steps_done": self.steps_done,
            "losses": self.losses,
            "model_fingerprint": self.fingerprint,
            "subject_fingerprint": self.subject.fingerprint(),
            "lora_rank": self.settings.lora_rank,
            "size": [self.settings.height, self.settings.width],
        }

    def save_checkpoint(self) -> None:
        """Trained weights, optimiser and generator state, counters: atomically replaced."""

        with atomic_dir(self.output / CHECKPOINT_DIR) as folder:
            save_weights(self.pipe, folder, self.settings.lora_rank)
            torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
            save_file({"generator": self.generator.get_state()}, folder / "rng.safetensors")
            if self.scaler is not None:
                torch.save(self.scaler.state_dict(), folder / "scaler.pt")
            (folder / STATE_FILE).write_text(json.dumps(self._state()))

    def restore(self, folder: Path) -> None:
        state = json.loads((folder / STATE_FILE).read_text())
        if state["model_fingerprint"] != self.fingerprint:
            raise ValueError(
                f"the checkpoint in {folder.parent} was made from another model; resume with the same "
                "--model, or choose a new output folder"
            )
        if state["subject_fingerprint"] != self.subject.fingerprint():
            raise ValueError(
                f"the checkpoint in {folder.parent} was made for other photos or poses; resume with the same "
                "--image and --poses, or choose a new output folder"
            )
        if state["lora_rank"] != self.settings.lora_rank or state["size"] != [
            self.settings.height,
            self.settings.width,
        ]:
            raise ValueError(
                f"the checkpoint in {folder.parent} used lora_rank={state['lora_rank']} and size "
                f"{state['size'][0]} x {state['size'][1]}; resume with the same settings"
            )
        load_weights(self.pipe, folder)
        self.steps_done = {k: int(v) for k, v in state["steps_done"].items()}
        self.losses = state["losses"]
        self._enter_stage(state["stage"])
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
        self.generator.set_state(load_file(folder / "rng.safetensors")["generator"])
        if self.scaler is not None and (folder / "scaler.pt").is_file():
            self.scaler.load_state_dict(torch.load(folder / "scaler.pt", weights_only=True))

    def save_model(self) -> None:
        """The subject model (what finished so far) into ``output``, entry by entry."""
        if self.settings.lora_rank:

            def write(folder: Path) -> None:
                save_weights(self.pipe, folder, self.settings.lora_rank)
                write_description(folder, self.base_model, self.settings.lora_rank, self.steps_done)
        else:

            def write(folder: Path) -> None:
                self.pipe.save_pretrained(folder, safe_serialization=True)

        publish_entries(self.output, write)


# =========================================================================== helpers
def _load_model(model, device):
    """The pipeline in fp32 (trained weights stay fp32; mixed precision is autocast) on the
    device of the one device rule, and the name LoRA results should record as their base."""
    from dreampose.model.pipeline import DreamPosePipeline
    from dreampose.runtime.loading import load_pipeline, pick_device
    from dreampose.runtime.speed import apply_speed_settings, default_speed_settings

    placement = pick_device(device, "fp32")
    speed = default_speed_settings(placement.device, training=True)
    if isinstance(model, DreamPosePipeline):
        base = model.config.get("_name_or_path") or model.name_or_path
        model.to(placement.device)
        apply_speed_settings(model, speed)
        return model, str(base or "")
    return load_pipeline(str(model), device, "fp32", speed=speed), str(model)


def _latent_size(pipe, settings: FinetuneSettings) -> tuple[int, int]:
    return settings.height // pipe.vae_scale_factor, settings.width // pipe.vae_scale_factor


def _autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``mixed_precision``: "auto" follows the one device rule
    (bf16 or fp16 on GPUs, none on the CPU); bf16 autocast also runs on the CPU."""
    from dreampose.runtime.loading import pick_device, torch_dtype

    if mode == "no":
        return None
    if mode == "auto":
        dtype = pick_device(device).dtype
        return None if dtype == torch.float32 else dtype
    if mode == "fp16" and device.type == "cpu":
        raise ValueError("mixed_precision=fp16 needs a GPU; use bf16, no or auto on the CPU")
    return torch_dtype(mode)


def _progress_bar(stage: str, total: int, done: int, show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    label = "UNet + adapter" if stage == "unet" else "VAE decoder"
    return tqdm(total=total, initial=done, desc=label, unit="step")
