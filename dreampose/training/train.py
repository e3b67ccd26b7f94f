"""Base training, the first phase of DreamPose (paper section 4.3 and supplement section 1).

UNet + adapter are trained on pairs of frames of many videos (``dreampose.training.data``) with the
shared denoising loss (``dreampose.training.losses``) and condition dropout (pose 5%, image 5%, both
5%), so dual classifier-free guidance works at inference. The paper: lr 5e-6, effective
batch 16 through 4 accumulation steps, 5 epochs, 2 A100s.

Distribution is accelerate's: ``accelerate launch -m dreampose train ...`` runs on one GPU,
several GPUs or several machines, and DeepSpeed or FSDP through ``accelerate config``.
Checkpoints are ``Accelerator.save_state`` folders written under a temporary name and
renamed, so the last good one survives a crash; resuming restores weights, optimiser,
random states and the position in the epoch, and continues at the exact next step.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from dreampose.base.files import atomic_dir, replace_dir, writable_folder
from dreampose.model.numerics import Numerics
from dreampose.training.common import make_optimizer, model_fingerprint
from dreampose.training.losses import denoising_loss, training_scheduler
from dreampose.training.settings import TrainSettings

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "train_state.json"


@dataclass
class TrainResult:
    output: Path
    start_step: int  # steps already done when this call began (0, or the resumed step)
    step: int  # steps done when it ended
    losses: list[float]


StepCallback = Callable[[int, float], None]


@dataclass
class TrainingParts:
    """The pipeline's parts as the training loop holds them (UNet and adapter wrapped by
    accelerate) with the pipeline's image encoder, so the loss sees c_I exactly as sampling
    computes it (``DreamPosePipeline.encode_image`` calls the same numerics method)."""

    unet: torch.nn.Module
    adapter: torch.nn.Module
    vae: torch.nn.Module
    image_encoder: torch.nn.Module
    feature_extractor: object
    numerics: Numerics

    def encode_image(self, images: np.ndarray, device, dtype) -> torch.Tensor:
        return self.numerics.encode_image(self, images, device, dtype)


def train(
    model: str | os.PathLike,
    dataset: str | os.PathLike,
    output: str | os.PathLike,
    settings: TrainSettings | None = None,
    resume: bool = False,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train UNet + adapter of ``model`` on ``dataset``; checkpoints and the model go to ``output``.

    ``model``: a DreamPose folder or hub id, or a Stable Diffusion 1.x one (widened and given
    a fresh adapter). ``resume`` continues from the newest checkpoint in ``output``.
    ``on_step(step, loss)`` runs on the main process after every optimiser step.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    settings = settings or TrainSettings()
    output = writable_folder(output)
    accelerator = Accelerator(
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        mixed_precision=settings.mixed_precision,
        log_with="tensorboard" if _has_tensorboard() else None,
        project_config=ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(settings.seed)
    pipe = load_for_training(model, settings)
    fingerprint = model_fingerprint(pipe)
    checkpoint = _latest_checkpoint(output)
    if checkpoint is not None and not resume:
        raise ValueError(
            f"{output} already holds checkpoints; pass --resume to continue or choose another folder"
        )

    # 1. Data (main process first: it may build the pose caches)
    from dreampose.training.data import PairDataset, collate

    with accelerator.main_process_first():
        data = PairDataset(
            dataset,
            settings.height,
            settings.width,
            pipe.num_pose_frames,
            pipe.numerics,
            settings.crop,
            settings.seed,
            pipe.vae_scale_factor,
        )
        for v in range(len(data.videos)):
            data.pose_cache(v)
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=settings.batch_size,
        shuffle=True,
        collate_fn=collate,
        num_workers=settings.num_workers,
        drop_last=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    if len(loader) == 0:
        raise ValueError(
            f"{dataset} has {len(data)} frames, fewer than one batch of {settings.batch_size}; "
            "lower --batch-size or add videos"
        )

    # 2. Model and optimiser
    pipe.vae.requires_grad_(False)
    pipe.image_encoder.requires_grad_(False)
    pipe.vae.to(accelerator.device)
    pipe.image_encoder.to(accelerator.device)
    if settings.gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
    params = [*pipe.unet.parameters(), *pipe.adapter.parameters()]
    optimizer = make_optimizer(params, settings.learning_rate, settings.use_8bit_adam)
    unet, adapter, optimizer, loader = accelerator.prepare(pipe.unet, pipe.adapter, optimizer, loader)
    unet.train()
    adapter.train()
    steps_per_epoch = math.ceil(len(loader) / settings.gradient_accumulation_steps)
    total = settings.max_steps or settings.epochs * steps_per_epoch
    generator = torch.Generator().manual_seed(settings.seed + 1000 * accelerator.process_index)

    # 3. Resume
    step = 0
    if checkpoint is not None:
        step = _restore(accelerator, checkpoint, fingerprint, generator)
        accelerator.print(f"resuming from {checkpoint.name} at step {step + 1}")
    start_step = step
    if accelerator.is_main_process:
        accelerator.init_trackers("dreampose", config=_flat(settings)) if _has_tensorboard() else None

    # 4. Loop
    noise_scheduler = training_scheduler(pipe.scheduler.config)
    parts = TrainingParts(unet, adapter, pipe.vae, pipe.image_encoder, pipe.feature_extractor, pipe.numerics)
    losses: list[float] = []
    micro_batches_done = step * settings.gradient_accumulation_steps
    while step < total:
        epoch, skip = divmod(micro_batches_done, len(loader))
        data.set_epoch(epoch)
        loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        accumulated = 0.0
        for batch in batches:
            micro_batches_done += 1
            with accelerator.accumulate(unet, adapter):
                loss = denoising_loss(
                    parts,
                    batch["subject"].numpy(),
                    batch["target"].numpy(),
                    batch["pose"],
                    noise_scheduler,
                    settings.dropout,
                    generator,
                )
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, settings.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            accumulated += loss.detach().item() / settings.gradient_accumulation_steps
            if not accelerator.sync_gradients:
                continue
            step += 1
            mean_loss = (
                accelerator.gather(torch.tensor([accumulated], device=accelerator.device)).mean().item()
            )
            accumulated = 0.0
            losses.append(mean_loss)
            accelerator.log({"loss": mean_loss}, step=step)
            if accelerator.is_main_process and on_step is not None:
                on_step(step, mean_loss)
            if step % settings.checkpoint_every == 0 or step == total:
                _save_checkpoint(accelerator, output, step, fingerprint, generator, settings.keep_checkpoints)
            if settings.sample_every and step % settings.sample_every == 0 and accelerator.is_main_process:
                _write_sample(accelerator, pipe, unet, adapter, data, output, step, settings)
            if step >= total:
                break

    # 5. The trained model, loadable with DreamPosePipeline.from_pretrained
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        pipe.unet = accelerator.unwrap_model(unet)
        pipe.adapter = accelerator.unwrap_model(adapter)
        _publish_model(pipe, output / "model")
    accelerator.end_training()
    return TrainResult(output, start_step, step, losses)


# =========================================================================== model
def load_for_training(model: str | os.PathLike, settings: TrainSettings):
    """A DreamPose pipeline from a DreamPose folder / id, or built from Stable Diffusion."""
    from dreampose.model.pipeline import DreamPosePipeline

    if _is_dreampose(model):
        return DreamPosePipeline.from_pretrained(str(model))
    return DreamPosePipeline.from_stable_diffusion(
        str(model), settings.image_encoder, training_size=(settings.height, settings.width)
    )


def _is_dreampose(model) -> bool:
    """A DreamPose model (its model_index.json lists an adapter), not a Stable Diffusion one."""
    from dreampose.runtime.references import resolve

    return "adapter" in resolve(str(model)).model_index()


# =========================================================================== checkpoints
def _latest_checkpoint(output: Path) -> Path | None:
    folder = output / CHECKPOINTS_DIR
    found = [p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()] if folder.is_dir() else []
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def _save_checkpoint(accelerator, output: Path, step: int, fingerprint: str, generator, keep: int) -> None:
    """``save_state`` into ``.step-N.tmp``, then rename to ``step-N``; older ones pruned."""
    folder = output / CHECKPOINTS_DIR
    final = folder / f"step-{step}"
    tmp = folder / f".step-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    save_file(
        {"generator": generator.get_state()}, tmp / f"generator_{accelerator.process_index}.safetensors"
    )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps({"step": step, "model_fingerprint": fingerprint}))
        replace_dir(tmp, final)
        old = sorted(
            (p for p in folder.glob("step-*") if p != final), key=lambda p: int(p.name.split("-")[1])
        )
        for p in old[: max(0, len(old) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()


def _restore(accelerator, checkpoint: Path, fingerprint: str, generator) -> int:
    state = json.loads((checkpoint / STATE_FILE).read_text())
    if state["model_fingerprint"] != fingerprint:
        raise ValueError(
            f"{checkpoint} was made from another model; resume with the same --model or choose a new --output"
        )
    accelerator.load_state(str(checkpoint))
    own = checkpoint / f"generator_{accelerator.process_index}.safetensors"
    if own.is_file():
        generator.set_state(load_file(own)["generator"])
    return int(state["step"])


# =========================================================================== outputs
def _write_sample(
    accelerator, pipe, unet, adapter, data, output: Path, step: int, settings: TrainSettings
) -> None:
    """Render one held frame (subject | target | generated) to samples/step-N.png."""
    from dreampose.media.frames import save_png
    from dreampose.model.pipeline import DreamPosePipeline

    video = data.videos[0]
    target_index = len(video.frames) // 2
    subject = data.frame(video, 0)
    target = data.frame(video, target_index)
    sampler = DreamPosePipeline(
        vae=pipe.vae,
        image_encoder=pipe.image_encoder,
        feature_extractor=pipe.feature_extractor,
        unet=accelerator.unwrap_model(unet),
        adapter=accelerator.unwrap_model(adapter),
        scheduler=pipe.scheduler,
        numerics=pipe.numerics.name,
    )
    sampler.set_progress_bar_config(disable=True)
    poses = np.asarray(data.pose_cache(0), np.float32)
    with accelerator.autocast():
        frame = sampler(
            subject,
            poses,
            frames=[target_index],
            num_inference_steps=settings.sample_steps,
            height=settings.height,
            width=settings.width,
            generator=torch.Generator().manual_seed(settings.seed),
            output_type="np",
        ).frames[0]
    unet.train()
    adapter.train()
    strip = np.concatenate([subject, target, frame], axis=1)
    save_png(output / "samples" / f"step-{step}.png", strip)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image("sample", strip, step, dataformats="HWC")


def _publish_model(pipe, folder: Path) -> None:
    with atomic_dir(folder) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _flat(settings: TrainSettings) -> dict:
    return {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in asdict(settings).items()}
