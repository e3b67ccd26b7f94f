"""The app's shared state: the chosen model, its limits and canvas, the loaded models and
the sessions. The steps themselves live one module each (``poses``, ``finetune``,
``render``) as functions taking this service and the user's session, and reuse the
functions the CLI uses, so the app and ``dreampose render`` cannot disagree.

Steps, in the order a user takes them (each also works on its own once its inputs exist):

1. :func:`dreampose.app.poses.extract_poses`: driving video or pose file -> poses on the
   canvas, aligned to the subject photo, with preview videos.
2. :func:`dreampose.app.finetune.finetune`: subject photos -> finetuned subject (optional).
3. :func:`dreampose.app.render.preview` / :func:`~dreampose.app.render.guidance_grid`: one frame.
4. :func:`dreampose.app.render.render`: the sequence (or a range) -> mp4 + zip of frames.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from dreampose import paper
from dreampose.app.messages import UserError
from dreampose.app.models import TINY_CANVAS, ModelCache, model_status
from dreampose.app.sessions import Session, SessionStore
from dreampose.app.uploads import AppLimits, read_photo
from dreampose.render import FAST_PREVIEW, RenderSettings
from pose_extraction.pose_sequence import PoseSequence

Progress = Callable[[int, int, str], None]  # (done, total, what is happening)


def no_progress(done: int, total: int, text: str) -> None:
    return None


class AppService:
    """The model, limits, canvas, loaded models and sessions of one running app.

    ``extractor`` overrides the DensePose extractor (tests pass a small one);
    ``densepose_weights`` / ``extractor_kwargs`` go to ``load_densepose`` otherwise.
    ``canvas`` is the output (height, width): 640 x 512 for real models, small for the tiny one.
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
    ) -> None:
        self.model = model
        self.status = model_status(model)
        self.limits = limits or AppLimits.from_env()
        self.is_tiny = self.status.tiny
        self.canvas = canvas or (TINY_CANVAS if self.is_tiny else (paper.HEIGHT, paper.WIDTH))
        self.sessions = SessionStore(session_root, ttl_s=self.limits.session_ttl_s)
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

    # ------------------------------------------------------------------ sessions
    def session(self, session_id: str | None) -> Session:
        """The caller's session (a new one for None or an unknown/expired id)."""
        return self.sessions.get(session_id)

    def end_session(self, session_id: str | None) -> None:
        """The tab closed: stop its jobs, then delete its folder."""
        self.sessions.close(session_id)

    def cancel(self, session_id: str | None, kind: str | None = None) -> bool:
        """Ask the session's running ``kind`` of step (or all) to stop after the current step."""
        session = self.sessions._sessions.get(session_id or "")
        return session.cancel(kind) if session is not None else False

    def warm_up(self) -> float:
        """Load the model and run one short render (compiles a torch.compile'd UNet now, not
        during the first user's render); returns the seconds it took."""
        from dreampose.speed import auto_frame_batch, warm_up

        pipe = self.pipeline()
        return warm_up(pipe, *self.canvas, auto_frame_batch(pipe, *self.canvas))

    def close(self) -> None:
        """Server shutdown: end every session and delete its folder."""
        self.sessions.close_all()

    # ------------------------------------------------------------------ models and inputs
    def default_settings(self, fast: bool = False) -> RenderSettings:
        base = FAST_PREVIEW if fast else RenderSettings()
        return replace(base, height=self.canvas[0], width=self.canvas[1])

    def pipeline(self, session: Session | None = None):
        """The session's finetuned subject when it has one, else the base model."""
        if not self.status.ready:
            raise UserError("No DreamPose model is installed; see the instructions at the top of the page.")
        return self.models.pipeline(current_subject(session) if session is not None else None)

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


def check_frame(poses: PoseSequence, frame: int | float | None) -> int:
    frame = int(frame or 0)
    if not 0 <= frame < len(poses):
        raise UserError(f"Frame {frame} does not exist: the poses have frames 0 to {len(poses) - 1}.")
    return frame


SUBJECT_POINTER = "current_subject.txt"


def current_subject(session: Session) -> Path | None:
    """The session's finetuned subject folder, if it has one."""
    pointer = session.folder / SUBJECT_POINTER
    if not pointer.is_file():
        return None
    folder = session.folder / pointer.read_text().strip()
    return folder if folder.is_dir() else None
