"""Step 3 of the app (optional): finetune the model on the subject's photos (paper
section 4.3); later previews and renders of the session use the result."""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dreampose.app.messages import Eta, UserError, duration, sentence
from dreampose.app.service import SUBJECT_POINTER, AppService, Progress, no_progress
from dreampose.app.sessions import Session

MAX_DOWNLOAD_BYTES = 2 * 2**30  # larger finetuned subjects are not zipped for download


@dataclass
class FinetuneOutcome:
    model_dir: Path | None
    download: Path | None
    cancelled: bool
    message: str


def finetune(
    app: AppService,
    session: Session,
    photos: list | None,
    lora: bool = False,
    unet_steps: int = 500,
    vae_steps: int = 1500,
    progress: Progress = no_progress,
) -> FinetuneOutcome:
    """Finetune the model on the subject photos; the result is used by later steps."""
    from dreampose.training.finetune import finetune as run_finetune
    from dreampose.training.settings import DEFAULT_LORA_RANK, FinetuneSettings

    photo_paths = app.photos(session, photos)
    unet_steps, vae_steps = int(unet_steps), int(vae_steps)
    total = unet_steps + vae_steps
    if total > app.limits.max_finetune_steps:
        raise UserError(
            f"{total} finetuning steps is more than this app allows ({app.limits.max_finetune_steps} "
            "UNet and VAE steps together). Lower the step sliders."
        )
    if total == 0:
        raise UserError("Set at least one finetuning step, or skip finetuning.")
    height, width = app.canvas
    settings = FinetuneSettings(
        unet_steps=unet_steps,
        vae_steps=vae_steps,
        height=height,
        width=width,
        lora_rank=DEFAULT_LORA_RANK if lora else 0,
    )
    output = session.path(f"subject_model_{time.time_ns()}")
    eta = Eta()

    def report(p) -> None:
        done = p.step + (unet_steps if p.stage == "vae" else 0)
        stage = "UNet" if p.stage == "unet" else "VAE decoder"
        progress(
            done,
            total,
            f"Finetuning {stage}: step {p.step}/{p.total}, loss {p.loss:.4f}, "
            + eta.text(done, total, "steps"),
        )

    # Everything that writes into the session stays inside the job: closing the tab waits for
    # the job to end before the folder is deleted, so nothing is written after the cleanup.
    with session.job("finetune") as cancel:
        progress(0, total, "Loading the model and preparing the photos")
        try:
            result = run_finetune(
                app.model, [str(p) for p in photo_paths], output, settings=settings, progress=report,
                cancel=cancel, device=app.models.device, extractor=app.models.extractor(),
            )  # fmt: skip
        except ValueError as e:
            raise UserError(sentence(e)) from e
        done = sum(result.steps_done.values())
        if result.cancelled and done == 0:
            return FinetuneOutcome(
                None, None, True, "Finetuning was cancelled before its first step finished: nothing was trained, "
                "and previews and renders keep using the model as it was."
            )  # fmt: skip
        (session.folder / SUBJECT_POINTER).write_text(output.name)
        download = zip_model(output)
    message = (
        f"Cancelled after {done} of {total} steps; the partly finetuned subject is kept and used."
        if result.cancelled
        else f"Finetuned on {len(photo_paths)} photo(s) in {duration(time.monotonic() - eta.start)}; "
        "previews and renders now use this subject."
    )
    return FinetuneOutcome(output, download, result.cancelled, message)


def zip_model(folder: Path) -> Path | None:
    """The subject folder as a zip to download (None when it is too large to offer)."""
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    if size > MAX_DOWNLOAD_BYTES:
        return None
    target = folder.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, Path(folder.name) / f.relative_to(folder))
    return target
