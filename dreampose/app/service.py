"""The app's shared state: the chosen model, its limits and canvas, the loaded models and
the sessions. The steps themselves live one module each (``dreampose.app.steps``) as
functions taking this service and the user's session, and reuse the functions the CLI uses,
so the app and ``dreampose render`` cannot disagree.

Steps, in the order a user takes them (each also works on its own once its inputs exist):

1. :func:`dreampose.app.steps.poses.extract_poses`: driving video or pose file -> poses on the
   canvas, aligned to the subject photo, with preview videos.
2. :func:`dreampose.app.steps.finetune.finetune`: subject photos -> finetuned subject (optional).
3. :func:`dreampose.app.steps.render.preview` / :func:`~dreampose.app.steps.render.guidance_grid`:
   one frame.
4. :func:`dreampose.app.steps.render.render_stream`: the sequence (or a range) -> mp4 + zip of
   frames, as a stream of events (``render`` runs it to its result).

Without a model, the service can set the official one up in the background
(:class:`dreampose.setup.ModelSetup`) and switch to it when it is ready: the page is usable
from the first second and needs no restart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from dreampose.app.messages import UserError
from dreampose.app.models import TINY_CANVAS, ModelCache, ModelStatus, model_status
from dreampose.app.sessions import Clock, Session, SessionStore
from dreampose.app.uploads import ANY_FILE, AppLimits, read_photo
from dreampose.base import paper
from dreampose.rendering.settings import FAST_PREVIEW, RenderSettings
from dreampose.runtime.references import model_canvas, resolve
from pose_extraction.pose_sequence import PoseSequence

OnProgress = Callable[[int, int, str], None]  # (done, total, what is happening)

# The tiny random model renders noise: small step counts keep its every step a few seconds long.
TINY_VIDEO_STEPS = 10
TINY_FAST_STEPS = 5


def no_progress(done: int, total: int, text: str) -> None:
    return None


class AppService:
    """The model, limits, canvas, loaded models and sessions of one running app.

    ``extractor`` overrides the DensePose extractor (tests pass a small one);
    ``densepose_weights`` / ``extractor_kwargs`` go to ``load_densepose`` otherwise.
    ``canvas`` is the output (height, width): 640 x 512 for real models, small for the tiny one.
    ``setup``: when the model is missing, set the official model up with these options in
    the background (:meth:`setup_status` reports it and switches to the model when ready).
    ``stand_in``: a model to run meanwhile when ``model`` is missing (the demo model, when no
    model was chosen); the service switches to the set-up model once it is ready.
    ``clock``: what sessions measure their idleness on (tests pass their own).
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
        dtype: str | None = None,
        cpu_offload: bool = False,
        canvas: tuple[int, int] | None = None,
        session_root: str | os.PathLike | None = None,
        speed=None,
        setup=None,
        stand_in: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limits = limits or AppLimits.from_env()
        self.uploads = ANY_FILE  # the page narrows this to its own uploads (``UploadOrigins``)
        self.sessions = SessionStore(session_root, ttl_s=self.limits.session_ttl_s, clock=clock)
        self._canvas = canvas
        self._model_args = (device, dtype, cpu_offload, densepose_weights, extractor, extractor_kwargs, speed)
        wanted = model_status(model)
        # The demo model stands in while the model wanted is missing (no restart when it arrives).
        self.standing_in = not wanted.ready and stand_in is not None and model_status(stand_in).ready
        if self.standing_in:
            self._use(stand_in, model_status(stand_in))
        else:
            self._use(model, wanted)
        self.setup = None
        if not wanted.ready and setup is not None:
            from dreampose.setup import ModelSetup

            self.setup = ModelSetup(setup)
            self.setup.start()

    def _use(self, model: str, status: ModelStatus) -> None:
        device, dtype, cpu_offload, densepose_weights, extractor, extractor_kwargs, speed = self._model_args
        self.model, self.status, self.is_tiny = model, status, status.tiny
        self.is_demo = status.ready and resolve(model).kind == "demo"
        self.canvas = self._canvas or (TINY_CANVAS if self.is_tiny else model_canvas(model))
        if extractor is None and hasattr(self, "models"):  # a model switch keeps the loaded DensePose
            extractor = self.models._extractor
        self.models = ModelCache(
            model,
            device,
            dtype,
            cpu_offload,
            densepose_weights,
            extractor,
            extractor_kwargs,
            tiny=self.is_tiny,
            speed=speed,
        )

    @property
    def numerics(self):
        """The model's input conventions (``dreampose.model.numerics``), read from its folder
        once, without loading it."""
        if getattr(self, "_numerics_of", None) != self.model:
            self._numerics, self._numerics_of = resolve(self.model).numerics(), self.model
        return self._numerics

    # ------------------------------------------------------------------ model setup
    @property
    def setting_up(self) -> bool:
        """True while the model is missing and being set up (or its setup failed)."""
        return self.setup is not None and not self.status.ready  # a stand-in model is ready

    def setup_status(self):
        """The background setup's :class:`~dreampose.setup.SetupStatus` (None without one); once
        it is ready, the service switches to the new model (no restart)."""
        if self.setup is None:
            return None
        status = self.setup.status()
        if status.state == "ready" and (self.standing_in or not self.status.ready):
            self._use(str(status.model), model_status(str(status.model)))
            self.standing_in = False
        return status

    # ------------------------------------------------------------------ sessions
    def session(self, session_id: str | None) -> Session:
        """The caller's session (a new one for None or an unknown/expired id)."""
        return self.sessions.get(session_id)

    def end_session(self, session_id: str | None) -> None:
        """The tab closed: stop its jobs, then delete its folder."""
        self.sessions.close(session_id)

    def cancel(self, session_id: str | None, kind: str | None = None) -> bool:
        """Ask the session's running ``kind`` of step (or all) to stop after the current step."""
        session = self.sessions.find(session_id)
        return session.cancel(kind) if session is not None else False

    def warm_up(self) -> float:
        """Load the model and run one short render (compiles a torch.compile'd UNet now, not
        during the first user's render); returns the seconds it took."""
        from dreampose.runtime.speed import auto_frame_batch, warm_up

        pipe = self.pipeline()
        return warm_up(pipe, *self.canvas, auto_frame_batch(pipe, *self.canvas))

    def close(self) -> None:
        """Server shutdown: stop the setup, end every session and delete its folder."""
        if self.setup is not None:
            self.setup.cancel()
        self.sessions.close_all()

    # ------------------------------------------------------------------ defaults the page shows
    def video_settings(self) -> RenderSettings:
        """What a video is rendered with unless changed: the paper's sampler and steps (fewer
        for the tiny test model, whose frames are noise anyway)."""
        base = (
            replace(RenderSettings(), num_inference_steps=TINY_VIDEO_STEPS)
            if self.is_tiny
            else RenderSettings()
        )
        return replace(base, height=self.canvas[0], width=self.canvas[1])

    def fast_settings(self) -> RenderSettings:
        """The fast preview preset: 25 DPM-Solver++ steps (5 on the tiny model)."""
        base = replace(FAST_PREVIEW, num_inference_steps=TINY_FAST_STEPS) if self.is_tiny else FAST_PREVIEW
        return replace(base, height=self.canvas[0], width=self.canvas[1])

    def default_settings(self, fast: bool = False) -> RenderSettings:
        return self.fast_settings() if fast else self.video_settings()

    def finetune_settings(self) -> dict:
        """The model's own finetuning defaults (``finetune.json``; {} for the paper's)."""
        return resolve(self.model).finetune_defaults()

    def finetune_defaults(self) -> tuple[int, int]:
        """UNet and VAE steps that run as they stand: the model's own, else the paper's 500 +
        1500, scaled down in proportion when this server allows fewer steps in all."""
        own = self.finetune_settings()
        unet = int(own.get("unet_steps", paper.FINETUNE_UNET_STEPS))
        vae = int(own.get("vae_steps", paper.FINETUNE_VAE_STEPS))
        limit = self.limits.max_finetune_steps
        if unet + vae <= limit:
            return unet, vae
        unet = max(1, round(limit * unet / (unet + vae))) if limit > 1 else limit
        return unet, limit - unet

    def render_range(self, num_frames: int, first: int = 0) -> tuple[int, int]:
        """The frames one render covers from ``first``: to the end, or as many as allowed."""
        return first, min(num_frames, first + self.limits.max_render_frames) - 1

    # ------------------------------------------------------------------ models and inputs
    def pipeline(self, session: Session | None = None):
        """The session's finetuned subject when it has one, else the base model."""
        self.check_model()
        return self.models.pipeline(session.current_subject() if session is not None else None)

    def check_model(self) -> None:
        """Raise a clear error while the model is missing or still being set up (loads nothing)."""
        setup = self.setup_status()
        if not self.status.ready:
            if setup is not None:
                raise UserError(
                    f"The DreamPose model is still being set up ({setup.text().rstrip('…')}). "
                    "This step works as soon as it is ready; the page shows the progress at the top."
                )
            raise UserError("No DreamPose model is installed; see the instructions at the top of the page.")

    def photos(self, session: Session, uploads: list | None) -> list[Path]:
        """Check and keep the uploaded subject photos; without uploads, the ones kept before."""
        uploads = [u for u in (uploads or []) if u]
        if uploads:
            kept = session.store_photos([read_photo(u, self.limits, self.uploads) for u in uploads])
            session.remember(photo=Path(uploads[0]).stem)
            return kept
        kept = session.photos()
        if not kept:
            raise UserError("Please add a photo of the person to animate (step 1).")
        return kept

    def poses(self, session: Session) -> PoseSequence:
        """The session's driving poses, placed on the canvas."""
        if not session.poses_path.is_file():
            raise UserError("There are no poses yet. Extract them from a driving video first (step 2).")
        return PoseSequence.load(session.poses_path)


def check_frame(num_frames: int, frame: int | float | None) -> int:
    """``frame`` as a whole number, if poses of ``num_frames`` frames have it."""
    frame = int(frame or 0)
    if not 0 <= frame < num_frames:
        raise UserError(f"Frame {frame} does not exist: the poses have frames 0 to {num_frames - 1}.")
    return frame
