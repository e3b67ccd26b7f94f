"""The Gradio app's service: every step of the app as a plain, testable method.

``app.py`` only builds the page; each button calls one method here with a
:class:`~dreampose.sessions.Session` (the user's private folder) and plain values. The
methods reuse the functions the CLI uses (``dreampose.service``, ``dreampose.finetune``,
``pose_extraction``), so the app and ``dreampose render`` cannot disagree.

Steps, in the order a user takes them (each also works on its own once its inputs exist):

1. :meth:`AppService.extract_poses`: driving video or pose file -> poses on the canvas,
   aligned to the subject photo, with preview videos.
2. :meth:`AppService.finetune`: subject photos -> finetuned subject model (optional).
3. :meth:`AppService.preview` / :meth:`AppService.guidance_grid`: one frame, fast.
4. :meth:`AppService.render`: the sequence (or a range) -> mp4 + zip of frames.

Problems the user can fix are :class:`~dreampose.sessions.UserError` with a plain sentence;
the app shows them as ``gr.Error``. Finished work is written to the session folder before
anything that can fail, so an error never loses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dreampose import service
from dreampose.service import FAST_PREVIEW, RenderSettings
from dreampose.sessions import (
    AppLimits,
    Session,
    SessionStore,
    UserError,
    check_upload_size,
    driving_kind,
    read_photo,
)
from pose_extraction.pose_sequence import PoseFileError, PoseSequence

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, what is happening)
DEFAULT_MODEL_DIR = Path("models") / "dreampose"
TINY_CANVAS = (128, 128)  # the tiny model renders noise: keep it small and fast
MAX_DOWNLOAD_BYTES = 2 * 2**30  # larger finetuned subjects are not zipped for download

MISSING_MODEL_HELP = """\
## The DreamPose model is not installed yet

This app looked for a model at **`{model}`** and did not find one. To get it:

1. Download the official DreamPose checkpoints (`unet_epoch_*.pth` and `adapter_*.pth`) from the
   links in the [official DreamPose README](https://github.com/johannakarras/DreamPose).
2. Convert them (this also downloads Stable Diffusion 1.4 and CLIP the first time):

   ```bash
   dreampose convert --unet unet_epoch_20.pth --adapter adapter_20.pth --output models/dreampose
   ```

3. Start the app again: `python app.py` (it looks in `models/dreampose` by default), or point it
   at another folder or Hugging Face model id with `python app.py --model PATH_OR_ID`
   (or the environment variable `DREAMPOSE_MODEL`).

To try the whole app without any download, start it with `python app.py --model tiny`: a tiny
random model whose videos are noise, but every step works.
"""


# ----------------------------------------------------------------------------- model choice
@dataclass(frozen=True)
class ModelStatus:
    """Whether the chosen model can be loaded, and if not, what to tell the user."""

    model: str
    ready: bool
    message: str = ""


def resolve_model(model: str | None) -> str:
    """``--model``, else ``$DREAMPOSE_MODEL``, else the documented default folder."""
    return model or os.environ.get("DREAMPOSE_MODEL") or str(DEFAULT_MODEL_DIR)


def model_status(model: str) -> ModelStatus:
    """Ready for ``tiny``, a model folder, or something shaped like a hub id (``owner/name``)."""
    if model == service.TINY_MODEL:
        return ModelStatus(model, True)
    path = Path(model).expanduser()
    if path.is_dir() and (path / "model_index.json").is_file():
        return ModelStatus(model, True)
    if path.exists():
        return ModelStatus(
            model,
            False,
            MISSING_MODEL_HELP.format(model=model)
            + f"\n`{model}` exists but is not a DreamPose model folder (it has no `model_index.json`).",
        )
    looks_local = model.startswith((".", "/", "~")) or model.count("/") != 1 or path == DEFAULT_MODEL_DIR
    if looks_local:
        return ModelStatus(model, False, MISSING_MODEL_HELP.format(model=model))
    return ModelStatus(model, True)  # a hub id: from_pretrained downloads it on first use


# ----------------------------------------------------------------------------- results
@dataclass
class ExtractResult:
    preview_video: Path  # poses before/after alignment (or just the poses)
    subject_image: np.ndarray  # the photo next to its own pose
    num_frames: int
    fps: float
    message: str


@dataclass
class FinetuneOutcome:
    model_dir: Path
    download: Path | None
    cancelled: bool
    message: str


@dataclass
class RenderOutput:
    video: Path | None
    frames_zip: Path | None
    num_frames: int
    fps: float
    cancelled: bool
    message: str


class _Eta:
    """'3 / 10 frames, about 12 s left' from the pace so far."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def text(self, done: int, total: int, unit: str) -> str:
        line = f"{done} / {total} {unit}"
        if 0 < done < total:
            left = (time.monotonic() - self.start) / done * (total - done)
            line += f", about {_duration(left)} left"
        return line


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _no_progress(done: int, total: int, text: str) -> None:
    return None


# ----------------------------------------------------------------------------- the service
class AppService:
    """Models (loaded once, lazily), sessions, limits, and one method per app step.

    ``extractor`` overrides the DensePose extractor (tests pass a small one);
    ``densepose_weights`` / ``extractor_kwargs`` go to ``load_extractor`` otherwise.
    ``canvas`` is the output (height, width): 640 x 512 for real models, small for ``tiny``.
    """

    def __init__(
        self,
        model: str,
        *,
        limits: AppLimits | None = None,
        densepose_weights: str | None = None,
        extractor=None,
        extractor_kwargs: dict | None = None,
        device: str | None = None,
        cpu_offload: bool = False,
        canvas: tuple[int, int] | None = None,
        session_root: str | os.PathLike | None = None,
    ) -> None:
        self.model = model
        self.status = model_status(model)
        self.limits = limits or AppLimits.from_env()
        self.densepose_weights = densepose_weights or os.environ.get("DREAMPOSE_DENSEPOSE_WEIGHTS") or None
        self.extractor_kwargs = dict(extractor_kwargs or {})
        self.device = device
        self.cpu_offload = cpu_offload
        self.is_tiny = model == service.TINY_MODEL
        default_canvas = TINY_CANVAS if self.is_tiny else (RenderSettings.height, RenderSettings.width)
        self.canvas = canvas or default_canvas
        self.sessions = SessionStore(session_root, ttl_s=self.limits.session_ttl_s)
        self._extractor = extractor
        self._pipe = None
        self._subject_pipe: tuple[str, object] | None = None  # (model folder, pipeline)
        self._load_lock = threading.Lock()
        self._cancels: dict[str, threading.Event] = {}

    # ------------------------------------------------------------------ sessions
    def session(self, session_id: str | None) -> Session:
        """The caller's session (a new one for None or an unknown/expired id)."""
        return self.sessions.get(session_id)

    def end_session(self, session_id: str | None) -> None:
        """Delete a session's folder (the tab closed or the state expired)."""
        self._cancels.pop(session_id or "", None)
        self.sessions.close(session_id)

    def cancel(self, session_id: str | None) -> None:
        """Ask the session's running finetune/render/grid to stop after the current step."""
        event = self._cancels.get(session_id or "")
        if event is not None:
            event.set()

    def _cancel_event(self, session: Session) -> threading.Event:
        event = threading.Event()
        self._cancels[session.id] = event
        return event

    # ------------------------------------------------------------------ models
    def default_settings(self, fast: bool = False) -> RenderSettings:
        base = FAST_PREVIEW if fast else RenderSettings()
        return replace(base, height=self.canvas[0], width=self.canvas[1])

    def pipeline(self, session: Session | None = None):
        """The session's finetuned subject when it has one, else the base model (cached)."""
        if not self.status.ready:
            raise UserError("No DreamPose model is installed; see the instructions at the top of the page.")
        subject = self._current_subject(session) if session is not None else None
        with self._load_lock:
            if subject is not None:
                if self._subject_pipe is None or self._subject_pipe[0] != str(subject):
                    self._subject_pipe = (str(subject), self._load_subject(subject))
                return self._subject_pipe[1]
            if self._pipe is None:
                self._pipe = service.load_pipeline(self.model, self.device, self.cpu_offload)
                self._pipe.set_progress_bar_config(disable=True)
            return self._pipe

    def _load_subject(self, folder: Path):
        from dreampose.finetune import load_finetuned

        device, dtype = service.pick_device(self.device)
        pipe = load_finetuned(folder, torch_dtype=dtype).to(device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def extractor(self):
        """The DensePose extractor, loaded on first use (downloads the weights once if needed).

        With the tiny model and no weights given, a tiny random DensePose (no download; its poses
        are noise, and the results say so)."""
        if self._extractor is None:
            from pose_extraction.densepose import load_extractor

            device, _ = service.pick_device(self.device)
            backend = "tiny" if self.is_tiny and not self.densepose_weights else "native"
            try:
                self._extractor = load_extractor(
                    backend, weights=self.densepose_weights, device=device, **self.extractor_kwargs
                )
            except (OSError, ValueError) as e:
                raise UserError(
                    f"The pose detector (DensePose) could not be loaded: {e}. Check the internet connection, "
                    "or start the app with --densepose-weights pointing at a downloaded copy."
                ) from e
        return self._extractor

    # ------------------------------------------------------------------ inputs
    def photos(self, session: Session, uploads: list | None) -> list[Path]:
        """Check and keep the uploaded subject photos; without uploads, the ones kept before."""
        uploads = [u for u in (uploads or []) if u]
        if uploads:
            return session.store_photos([read_photo(u, self.limits) for u in uploads])
        kept = session.photos()
        if not kept:
            raise UserError("Please add a photo of the person to animate (step 1).")
        return kept

    def poses(self, session: Session) -> PoseSequence:
        """The session's driving poses, placed on the canvas."""
        if not session.poses_path.is_file():
            raise UserError("There are no poses yet. Extract them from a driving video first (step 2).")
        return PoseSequence.load(session.poses_path)

    def _frame(self, poses: PoseSequence, frame: int | float | None) -> int:
        frame = int(frame or 0)
        if not 0 <= frame < len(poses):
            raise UserError(f"Frame {frame} does not exist: the poses have frames 0 to {len(poses) - 1}.")
        return frame

    # ------------------------------------------------------------------ step 1-2: poses
    def extract_poses(
        self,
        session: Session,
        photos: list | None,
        driving: str | os.PathLike | None,
        fps: float | None = None,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        align: bool = True,
        progress: Progress = _no_progress,
    ) -> ExtractResult:
        """Driving video / pose file -> poses on the canvas (aligned to the photo), with previews.

        Without a new ``driving`` upload the poses extracted before are placed again, so
        toggling "align" costs nothing.
        """
        photo_paths = self.photos(session, photos)
        notes: list[str] = []
        if driving:
            raw = self._read_driving(Path(driving), fps, start, end, max_frames, progress, notes)
            raw.save(session.raw_poses_path)  # kept even if the steps below fail
        elif session.raw_poses_path.is_file():
            raw = PoseSequence.load(session.raw_poses_path)
        else:
            raise UserError("Please add a driving video or a pose file (step 1).")
        subject = self._subject_pose(session, photo_paths[0], required=align)
        return self._place(session, raw, subject, photo_paths[0], align, notes)

    def _read_driving(self, path, fps, start, end, max_frames, progress, notes) -> PoseSequence:
        path = check_upload_size(path, self.limits, "driving video or pose file")
        kind = driving_kind(path, self.limits)
        try:
            if kind == "npz":
                seq = PoseSequence.load(path)
            elif kind == "official_zip":
                from pose_extraction.official import import_official

                seq = import_official(path, fps=fps or 30.0)
            else:
                seq = self._extract_video(path, fps, start, end, max_frames, progress, notes)
        except (PoseFileError, ValueError) as e:
            if isinstance(e, UserError):
                raise
            raise UserError(_sentence(e)) from e
        if len(seq) > self.limits.max_pose_frames:
            notes.append(
                f"The pose file has {len(seq)} frames; this app keeps the first {self.limits.max_pose_frames}."
            )
            seq = seq.select(slice(0, self.limits.max_pose_frames))
        return seq

    def _extract_video(self, path, fps, start, end, max_frames, progress, notes) -> PoseSequence:
        from pose_extraction.extract import extract_poses
        from pose_extraction.video_reader import VideoLimits

        limits = VideoLimits(max_duration_s=self.limits.max_video_seconds, max_pixels=self.limits.max_pixels)
        cap = self.limits.max_pose_frames
        max_frames = min(int(max_frames), cap) if max_frames else cap
        eta = _Eta()
        extractor = self.extractor()
        seq = extract_poses(
            path,
            extractor,
            fps=fps or None,
            max_frames=max_frames,
            start=start or None,
            end=end or None,
            progress=lambda done, total: progress(
                done, max(total, done), "Finding poses: " + eta.text(done, max(total, done), "frames")
            ),
            limits=limits,
        )
        if len(seq) == max_frames and max_frames == cap:
            notes.append(f"Only the first {cap} frames were used (this app's limit).")
        if seq.missing.any():
            notes.append(
                f"Nobody was found in {int(seq.missing.sum())} frame(s); they reuse the nearest pose."
            )
        from pose_extraction.densepose.tiny import TINY_POSES_NOTE, is_tiny_random

        if is_tiny_random(extractor):
            notes.append(TINY_POSES_NOTE)
        return seq

    def _subject_pose(self, session: Session, photo: Path, required: bool) -> PoseSequence | None:
        """The photo's own pose, cached per photo; None (or an error if required) without a person."""
        from pose_extraction.extract import extract_image_pose

        cached = session.folder / f"subject_pose_{photo.stem}.npz"
        if cached.is_file():
            return PoseSequence.load(cached)
        from PIL import Image

        try:
            seq = extract_image_pose(np.asarray(Image.open(photo).convert("RGB")), self.extractor())
        except ValueError as e:
            if required:
                raise UserError(
                    "No person was found in the subject photo. Use a photo where the whole body is clearly "
                    "visible, or untick 'Align poses to the photo'."
                ) from e
            return None
        seq.save(cached)
        return seq

    def _place(self, session, raw, subject, photo, align, notes) -> ExtractResult:
        from pose_extraction.placement import body_box, fit_sequence, place_on_canvas
        from pose_extraction.visualize import write_alignment_preview, write_preview

        height, width = self.canvas
        before = place_on_canvas(raw, height, width)
        preview = session.path("poses_preview.mp4")
        if align and subject is not None:
            try:
                placed = place_on_canvas(raw, height, width, subject=subject, align=True)
            except ValueError as e:
                raise UserError(_sentence(e)) from e
            box = body_box(fit_sequence(subject, height, width).labels[0])
            write_alignment_preview(before, placed, preview, subject_box=box)
        else:
            placed = before
            write_preview(placed, preview)
        placed.save(session.poses_path)
        summary = f"{len(placed)} pose frames at {placed.fps:g} fps" + (
            ", aligned to the photo." if align else "."
        )
        return ExtractResult(
            preview,
            self._subject_picture(photo, subject),
            len(placed),
            placed.fps,
            " ".join([summary, *notes]),
        )

    def _subject_picture(self, photo: Path, subject: PoseSequence | None) -> np.ndarray:
        """The photo on the canvas next to its own pose (blank when no person was found)."""
        from PIL import Image

        from pose_extraction.canvas import fit_image
        from pose_extraction.placement import fit_sequence
        from pose_extraction.visualize import render_parts

        height, width = self.canvas
        picture = fit_image(np.asarray(Image.open(photo).convert("RGB")), height, width)
        pose = np.zeros_like(picture)
        if subject is not None:
            pose = render_parts(fit_sequence(subject, height, width).labels[0])
        gap = np.full((height, 4, 3), 40, np.uint8)
        return np.concatenate([picture, gap, pose], axis=1)

    # ------------------------------------------------------------------ step 3: finetune
    def finetune(
        self,
        session: Session,
        photos: list | None,
        lora: bool = False,
        unet_steps: int = 500,
        vae_steps: int = 1500,
        progress: Progress = _no_progress,
    ) -> FinetuneOutcome:
        """Finetune the model on the subject photos; the result is used by later steps."""
        from dreampose.finetune import FinetuneSettings, finetune

        photo_paths = self.photos(session, photos)
        unet_steps, vae_steps = int(unet_steps), int(vae_steps)
        if unet_steps + vae_steps > self.limits.max_finetune_steps:
            raise UserError(
                f"{unet_steps + vae_steps} finetuning steps is more than this app allows "
                f"({self.limits.max_finetune_steps}). Lower the step sliders."
            )
        if unet_steps + vae_steps == 0:
            raise UserError("Set at least one finetuning step, or skip finetuning.")
        height, width = self.canvas
        settings = FinetuneSettings(
            unet_steps=unet_steps, vae_steps=vae_steps, height=height, width=width, lora_rank=8 if lora else 0
        )
        output = session.path(f"subject_model_{time.time_ns()}")
        eta = _Eta()
        total = unet_steps + vae_steps

        def report(p) -> None:
            done = p.step + (unet_steps if p.stage == "vae" else 0)
            stage = "UNet" if p.stage == "unet" else "VAE decoder"
            progress(
                done,
                total,
                f"Finetuning {stage}: step {p.step}/{p.total}, loss {p.loss:.4f}, "
                + eta.text(done, total, "steps"),
            )

        try:
            result = finetune(
                self._finetune_base(),
                [str(p) for p in photo_paths],
                output,
                settings=settings,
                progress=report,
                cancel=self._cancel_event(session),
                device=self.device,
                extractor=self.extractor(),
            )
        except ValueError as e:
            raise UserError(_sentence(e)) from e
        (session.folder / "current_subject.txt").write_text(output.name)
        done = sum(result.steps_done.values())
        message = (
            f"Cancelled after {done} of {total} steps; the partly finetuned subject is kept and used."
            if result.cancelled
            else f"Finetuned on {len(photo_paths)} photo(s) in {_duration(time.monotonic() - eta.start)}; "
            "previews and renders now use this subject."
        )
        return FinetuneOutcome(output, self._zip_model(output), result.cancelled, message)

    def _finetune_base(self):
        """What ``finetune`` starts from: a fresh tiny model, or the model id (loaded anew)."""
        if self.is_tiny:
            folder = self.sessions.root / "_tiny_base"
            if not (folder / "model_index.json").is_file():
                from dreampose.tiny import tiny_pipeline

                tiny_pipeline().save_pretrained(folder)
            return str(folder)
        return self.model

    def _current_subject(self, session: Session) -> Path | None:
        pointer = session.folder / "current_subject.txt"
        if not pointer.is_file():
            return None
        folder = session.folder / pointer.read_text().strip()
        return folder if folder.is_dir() else None

    def _zip_model(self, folder: Path) -> Path | None:
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        if size > MAX_DOWNLOAD_BYTES:
            return None
        target = folder.with_suffix(".zip")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    z.write(f, Path(folder.name) / f.relative_to(folder))
        return target

    # ------------------------------------------------------------------ step 4: preview, grid
    def preview(
        self, session: Session, photos: list | None, frame: int, settings: RenderSettings
    ) -> tuple[np.ndarray, str]:
        """One frame with ``settings``; returns the frame and a line naming what was used."""
        photo = self.photos(session, photos)[0]
        poses = self.poses(session)
        frame = self._frame(poses, frame)
        settings = replace(settings, height=self.canvas[0], width=self.canvas[1])
        pipe = self.pipeline(session)
        image = service.preview_frame(pipe, str(photo), poses, frame, settings)
        return image, self._used(frame, settings, session)

    def _used(self, frame: int, settings: RenderSettings, session: Session) -> str:
        who = "the finetuned subject" if self._current_subject(session) else "the base model (not finetuned)"
        return (
            f"Frame {frame}, seed {settings.seed}, sI {settings.image_guidance_scale:g}, "
            f"sP {settings.pose_guidance_scale:g}, {settings.num_inference_steps} {settings.scheduler} steps, {who}."
        )

    def guidance_grid(
        self,
        session: Session,
        photos: list | None,
        frame: int,
        image_scales: list[float],
        pose_scales: list[float],
        settings: RenderSettings,
        progress: Progress = _no_progress,
    ) -> np.ndarray:
        """One frame over an sI x sP grid (rows sI, columns sP), to choose weights by eye."""
        if len(image_scales) * len(pose_scales) > 25:
            raise UserError("The guidance grid takes at most 25 cells (for example 5 x 5 values).")
        photo = self.photos(session, photos)[0]
        poses = self.poses(session)
        frame = self._frame(poses, frame)
        settings = replace(settings, height=self.canvas[0], width=self.canvas[1])
        eta = _Eta()
        try:
            grid = service.guidance_grid(
                self.pipeline(session),
                str(photo),
                poses,
                frame,
                image_scales,
                pose_scales,
                settings,
                on_step=lambda d, t: progress(d, t, "Guidance grid: " + eta.text(d, t, "steps")),
                cancel=self._cancel_event(session),
            )
        except service.RenderCancelled:
            raise UserError("The guidance grid was cancelled.") from None
        return grid.image

    # ------------------------------------------------------------------ step 5: render
    def render(
        self,
        session: Session,
        photos: list | None,
        first: int | None,
        last: int | None,
        settings: RenderSettings,
        side_by_side: bool = False,
        progress: Progress = _no_progress,
    ) -> RenderOutput:
        """Render frames ``first..last`` (inclusive) to an mp4 at the poses' fps, plus a zip of PNGs.

        Cancelled or failed renders return the frames finished so far (``.partial.mp4``).
        """
        photo = self.photos(session, photos)[0]
        poses = self.poses(session)
        frames = self._range(poses, first, last)
        settings = replace(settings, height=self.canvas[0], width=self.canvas[1])
        pipe = self.pipeline(session)
        folder = session.path(f"renders/{time.time_ns()}/video.mp4").parent
        eta = _Eta()
        steps = settings.num_inference_steps

        def on_step(done: int, total: int) -> None:
            frame_done = done // steps
            progress(done, total, "Rendering: " + eta.text(frame_done, len(frames), "frames"))

        error: Exception | None = None
        try:
            video, result = service.render_video(
                pipe, str(photo), poses, folder / "video.mp4", settings, frames,
                frames_dir=folder / "frames", on_step=on_step, cancel=self._cancel_event(session),
            )  # fmt: skip
            kept, cancelled = result.frames, result.cancelled
        except Exception as e:  # keep what finished; the app reports the reason
            error = UserError(OUT_OF_MEMORY) if _is_out_of_memory(e) else e
            video, cancelled = service.partial_path(folder / "video.mp4"), True
            kept = [np.asarray(_read_png(p)) for p in sorted((folder / "frames").glob("*.png"))]
            if not kept:
                raise error from e
        if side_by_side and kept:
            video = self._side_by_side(photo, poses, frames[: len(kept)], kept, folder, poses.fps)
        frames_zip = _zip_frames(folder / "frames", folder / "frames.zip")
        message = self._render_message(len(kept), len(frames), poses.fps, cancelled, error)
        return RenderOutput(
            video if video.is_file() else None, frames_zip, len(kept), poses.fps, cancelled, message
        )

    def _range(self, poses: PoseSequence, first, last) -> list[int]:
        first = 0 if first in (None, "") else int(first)
        last = len(poses) - 1 if last in (None, "", -1) else int(last)
        if not 0 <= first <= last < len(poses):
            raise UserError(
                f"Frames {first} to {last} are not in the poses: choose frames between 0 and {len(poses) - 1}."
            )
        count = last - first + 1
        if count > self.limits.max_render_frames:
            raise UserError(
                f"That is {count} frames; this app renders at most {self.limits.max_render_frames} at a time. "
                "Choose a shorter range."
            )
        return list(range(first, last + 1))

    def _side_by_side(self, photo, poses, indices, frames, folder, fps) -> Path:
        from PIL import Image

        from dreampose.video import write_mp4
        from pose_extraction.canvas import fit_image
        from pose_extraction.visualize import render_parts

        height, width = self.canvas
        picture = fit_image(np.asarray(Image.open(photo).convert("RGB")), height, width)
        gap = np.full((height, 4, 3), 40, np.uint8)
        composed = (
            np.concatenate([picture, gap, render_parts(poses.labels[i]), gap, frame], axis=1)
            for i, frame in zip(indices, frames, strict=True)
        )
        return write_mp4(composed, folder / "side_by_side.mp4", fps)

    def _render_message(self, done: int, total: int, fps: float, cancelled: bool, error) -> str:
        if error is not None:
            return f"Rendering stopped after {done} of {total} frames: {_sentence(error)} The finished frames are below."
        if cancelled:
            return f"Cancelled: {done} of {total} frames were finished; here they are."
        return f"Rendered {done} frames at {fps:g} fps." + (
            " (Tiny test model: the video is noise.)" if self.is_tiny else ""
        )


OUT_OF_MEMORY = (
    "The GPU ran out of memory. Lower the number of steps or frames rendered together, "
    "or start the app with --cpu-offload."
)


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def _sentence(error: BaseException) -> str:
    """An exception's message as a sentence for the user (capitalised, with a full stop)."""
    text = str(error).strip() or type(error).__name__
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _read_png(path: Path):
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def _zip_frames(frames_dir: Path, target: Path) -> Path | None:
    pngs = sorted(frames_dir.glob("*.png")) if frames_dir.is_dir() else []
    if not pngs:
        return None
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        for png in pngs:
            z.write(png, png.name)
    return target


def parse_scales(text: str, what: str) -> list[float]:
    """'4, 8, 12' -> [4.0, 8.0, 12.0]; a UserError naming ``what`` otherwise."""
    try:
        values = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} must be numbers separated by commas, like 4, 8, 12.") from None
    if not values or any(v < 0 for v in values):
        raise UserError(f"{what} must be one or more numbers of 0 or more, like 4, 8, 12.")
    return values


def gpu(duration: int = 120):
    """``spaces.GPU(duration=...)`` on Hugging Face ZeroGPU Spaces, a no-op elsewhere."""
    with contextlib.suppress(ImportError):
        import spaces

        return spaces.GPU(duration=duration)
    return lambda fn: fn
