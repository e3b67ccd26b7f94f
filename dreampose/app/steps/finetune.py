"""Step 3 of the app (optional): finetune the model on the subject's photos (paper
section 4.3); later previews and renders of the session use the result.

The setup (the photos' poses, loading a trainable copy of the model) reports each phase
and can be cancelled between them; a cancel before the first step leaves nothing behind.
"""

from __future__ import annotations

import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dreampose.app.messages import Eta, UserError, duration, sentence
from dreampose.app.service import AppService, OnProgress, no_progress
from dreampose.app.sessions import Session
from dreampose.base.files import atomic_file

MAX_DOWNLOAD_BYTES = 2 * 2**30  # larger finetuned subjects are not zipped for download


@dataclass
class FinetuneOutcome:
    model_dir: Path | None
    download: Path | None
    cancelled: bool
    message: str


class FinetuneCancelled(Exception):
    """The user cancelled during the setup, before any step."""


def finetune(
    app: AppService,
    session: Session,
    photos: list | None,
    lora: bool = False,
    unet_steps: int | None = None,
    vae_steps: int | None = None,
    progress: OnProgress = no_progress,
) -> FinetuneOutcome:
    """Finetune the model on the subject photos; the result is used by later steps.

    Steps default to :meth:`AppService.finetune_defaults` (the model's own or the paper's, within
    the limit), learning rates to the model's own or the paper's.
    """
    from dreampose.app.steps.poses import subject_poses
    from dreampose.training.settings import DEFAULT_LORA_RANK, FinetuneSettings

    photo_paths = app.photos(session, photos)
    default_unet, default_vae = app.finetune_defaults()
    unet_steps = default_unet if unet_steps is None else int(unet_steps)
    vae_steps = default_vae if vae_steps is None else int(vae_steps)
    total = unet_steps + vae_steps
    if total > app.limits.max_finetune_steps:
        raise UserError(
            f"{total} finetuning steps is more than this app allows ({app.limits.max_finetune_steps} "
            "UNet and VAE steps together). Lower the step sliders."
        )
    if unet_steps < 0 or vae_steps < 0 or total == 0:
        raise UserError("Set at least one finetuning step, or skip finetuning.")
    app.check_model()
    height, width = app.canvas
    rates = {k: v for k, v in app.finetune_settings().items() if k in ("unet_lr", "vae_lr")}
    settings = FinetuneSettings(
        unet_steps=unet_steps,
        vae_steps=vae_steps,
        height=height,
        width=width,
        lora_rank=DEFAULT_LORA_RANK if lora else 0,
        **rates,
    )
    with session.job("finetune") as cancel:

        def check_cancel() -> None:
            if cancel.is_set():
                raise FinetuneCancelled

        try:
            progress(0, total, "Finding the pose in each photo")
            poses = subject_poses(app, session, photo_paths, progress, check_cancel)
            check_cancel()
            progress(0, total, "Loading a trainable copy of the model (the first step follows)")
            pipe = _trainable_model(app)
            check_cancel()
        except FinetuneCancelled:
            return FinetuneOutcome(None, None, True, NOTHING_TRAINED)
        output = session.new_subject_folder()
        started = time.monotonic()
        result = _train(app, pipe, photo_paths, poses, output, settings, progress, cancel)
        # Everything that writes into the session stays inside the job: closing the tab waits
        # for the job to end before the folder is deleted, so nothing is written after cleanup.
        done = sum(result.steps_done.values())
        if result.cancelled and done == 0:
            shutil.rmtree(output, ignore_errors=True)
            return FinetuneOutcome(None, None, True, NOTHING_TRAINED)
        session.use_subject(output)
        name = f"dreampose_subject_{session.photo_name}_{'lora' if lora else 'full'}.zip"
        download = zip_model(output, output.parent / name)
    message = (
        f"Cancelled after {done} of {total} steps: the partly finetuned subject is kept, and previews and "
        "renders now use it."
        if result.cancelled
        else f"Finetuned on {len(photo_paths)} photo(s): {total} steps in {duration(time.monotonic() - started)}. "
        "Previews and renders now use this subject."
    )
    return FinetuneOutcome(output, download, result.cancelled, message)


NOTHING_TRAINED = (
    "Finetuning was cancelled before its first step finished: nothing was trained, and previews and renders "
    "keep using the model as it was."
)


def _trainable_model(app: AppService):
    """A full-precision copy of the base model to train (the shared one stays as it is)."""
    from dreampose.runtime.loading import load_pipeline

    pipe = load_pipeline(app.model, app.models.device, "fp32")
    pipe.register_to_config(_name_or_path=app.model)  # what a LoRA subject records as its base
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _train(app, pipe, photo_paths, poses, output, settings, progress, cancel):
    from dreampose.training.finetune import finetune as run_finetune

    unet_total, vae_total = settings.unet_steps, settings.vae_steps
    total = unet_total + vae_total
    etas = {"unet": Eta(), "vae": Eta()}

    def report(p) -> None:
        done = p.step + (unet_total if p.stage == "vae" else 0)
        stage = "UNet" if p.stage == "unet" else "VAE decoder"
        line = f"Finetuning the {stage}: step {p.step} of {p.total}, loss {p.loss:.3f}"
        left = etas[p.stage].seconds_left(p.step, p.total)
        if left is not None:
            line += f", about {duration(left)} left"
        if p.stage == "unet" and vae_total:
            line += f" (then {vae_total} VAE steps)"
        progress(done, total, line)

    extractor = app.models.extractor() if poses is None else None
    try:
        return run_finetune(
            pipe, [str(p) for p in photo_paths], output, poses=poses, settings=settings, progress=report,
            cancel=cancel, device=app.models.device, extractor=extractor,
        )  # fmt: skip
    except ValueError as e:
        raise UserError(sentence(e)) from e


def zip_model(folder: Path, target: Path | None = None) -> Path | None:
    """The subject folder's model files as a zip to download (None when too large to offer).

    A cancelled finetuning leaves its resumable state in ``checkpoint/`` beside the model:
    optimiser moments, 13.1 MB against 3.5 MB of model for a cancelled tiny subject (issue 24's
    walk). ``dreampose finetune --resume`` needs them; a download of the subject does not."""
    files = model_files(folder)
    if sum(f.stat().st_size for f in files) > MAX_DOWNLOAD_BYTES:
        return None
    target = target or folder.with_suffix(".zip")
    with atomic_file(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for f in files:
            z.write(f, Path(folder.name) / f.relative_to(folder))
    return target


def model_files(folder: Path) -> list[Path]:
    """The files of a subject folder that make up its model (not the finetuning's checkpoint)."""
    from dreampose.training.finetune import CHECKPOINT_DIR

    checkpoint = folder / CHECKPOINT_DIR
    return [f for f in sorted(folder.rglob("*")) if f.is_file() and checkpoint not in f.parents]
