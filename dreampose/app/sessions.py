"""Per-session storage and upload checks for the Gradio app.

Every browser tab (or ``gradio_client.Client``) gets one :class:`Session`: a private folder
named by an unguessable id that holds everything the user made (the photos, the poses,
the finetuned subject, the rendered frames). Keeping state on disk rather than in Python
objects means it survives errors in later steps and crosses process boundaries (ZeroGPU
runs GPU functions in a forked worker). :class:`SessionStore` removes a session's folder
when the tab closes or after it has been idle for ``ttl_s`` seconds.

Uploads are judged by their content, never by their file name: a photo must decode as an
image, a video must probe as a video, a pose file must load as one. Limits come from
environment variables so a public Space can be stricter than a local install.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class UserError(ValueError):
    """A problem the user can fix; its message is shown to them as it is."""


# ----------------------------------------------------------------------------- limits
def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a number; got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"environment variable {name} must be positive; got {raw!r}")
    return value


@dataclass(frozen=True)
class AppLimits:
    """What one request may ask for. Defaults suit a public Space on one GPU."""

    max_upload_mb: float = 50.0  # any single uploaded file
    max_video_seconds: float = 30.0  # the selected part of a driving video
    max_pixels: int = 3840 * 2160  # one photo or video frame (width x height)
    max_pose_frames: int = 300  # frames in a pose sequence (extracted or uploaded)
    max_render_frames: int = 120  # frames in one render
    max_finetune_steps: int = 1000  # UNet + VAE finetuning steps together
    session_ttl_s: float = 3 * 3600.0  # idle sessions are deleted after this long

    @classmethod
    def from_env(cls) -> AppLimits:
        """Read ``DREAMPOSE_MAX_*`` and ``DREAMPOSE_SESSION_TTL`` (seconds) over the defaults."""
        d = cls()
        return cls(
            max_upload_mb=_env_number("DREAMPOSE_MAX_UPLOAD_MB", d.max_upload_mb),
            max_video_seconds=_env_number("DREAMPOSE_MAX_VIDEO_SECONDS", d.max_video_seconds),
            max_pixels=int(_env_number("DREAMPOSE_MAX_PIXELS", d.max_pixels)),
            max_pose_frames=int(_env_number("DREAMPOSE_MAX_POSE_FRAMES", d.max_pose_frames)),
            max_render_frames=int(_env_number("DREAMPOSE_MAX_RENDER_FRAMES", d.max_render_frames)),
            max_finetune_steps=int(_env_number("DREAMPOSE_MAX_FINETUNE_STEPS", d.max_finetune_steps)),
            session_ttl_s=_env_number("DREAMPOSE_SESSION_TTL", d.session_ttl_s),
        )


# ----------------------------------------------------------------------------- upload checks
def check_upload_size(path: str | os.PathLike, limits: AppLimits, what: str) -> Path:
    """The upload as a Path, refused when missing, empty or over the size limit."""
    if path is None or str(path) == "":
        raise UserError(f"Please add {what} first.")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The {what} upload did not arrive; please upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"The {what} file is empty; please upload it again.")
    if size > limits.max_upload_mb * 1e6:
        raise UserError(
            f"The {what} is {size / 1e6:.0f} MB, more than the {limits.max_upload_mb:g} MB this app accepts. "
            "Please upload a smaller file."
        )
    return path


def read_photo(path: str | os.PathLike, limits: AppLimits):
    """Decode a subject photo (RGB uint8, upright), refusing non-images and huge pictures."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = check_upload_size(path, limits, "subject photo")
    try:
        with Image.open(path) as img:
            if img.width * img.height > limits.max_pixels:
                raise UserError(
                    f"The photo is {img.width} x {img.height} pixels, more than this app accepts "
                    f"({limits.max_pixels / 1e6:.1f} megapixels). Please use a smaller photo."
                )
            import numpy as np

            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(
            "The subject photo is not a picture this app can read; please upload a JPEG or PNG."
        ) from e


def driving_kind(path: Path, limits: AppLimits) -> str:
    """``"npz"`` (a DreamPose pose file), ``"official_zip"`` or ``"video"``, from the content.

    An ``.npz`` is a zip of ``.npy`` arrays named after the pose-file fields; the official
    DreamPose poses are a zip of ``frame_N_densepose.npy`` files; anything else must be a
    video (the video reader then decides whether it really is one). Zips that would
    unpack to far more than the upload limit are refused before anything is unpacked.
    """
    if not zipfile.is_zipfile(path):
        return "video"
    try:
        with zipfile.ZipFile(path) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError("The uploaded zip file is damaged; please create it again.") from e
    if sum(i.file_size for i in infos) > 20 * limits.max_upload_mb * 1e6:
        raise UserError("The uploaded zip unpacks to far more data than this app accepts.")
    names = {i.filename for i in infos}
    if {"uv.npy", "labels.npy"} <= names:
        return "npz"
    if any(n.endswith(".npy") for n in names):
        return "official_zip"
    raise UserError(
        "The uploaded zip holds neither a DreamPose pose file (.npz) nor the official "
        "frame_N_densepose.npy pose files. Upload a video instead, or one of those pose files."
    )


# ----------------------------------------------------------------------------- sessions
@dataclass
class Session:
    """One user's private folder. File names are fixed here so every step finds the others' work."""

    id: str
    folder: Path
    last_used: float

    @property
    def photos_dir(self) -> Path:
        return self.folder / "photos"

    @property
    def poses_path(self) -> Path:  # driving poses placed on the canvas (and aligned)
        return self.folder / "poses.npz"

    @property
    def raw_poses_path(self) -> Path:  # driving poses as extracted or uploaded
        return self.folder / "poses_raw.npz"

    @property
    def subject_pose_path(self) -> Path:  # the main photo's own pose
        return self.folder / "subject_pose.npz"

    @property
    def subject_model_dir(self) -> Path:  # the finetuned subject (from_pretrained-loadable)
        return self.folder / "subject_model"

    @property
    def renders_dir(self) -> Path:
        return self.folder / "renders"

    def path(self, name: str) -> Path:
        """A file inside this session's folder; refuses names that would leave it."""
        target = (self.folder / name).resolve()
        if self.folder.resolve() not in target.parents:
            raise ValueError(f"{name!r} is not a file name inside the session folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def store_photos(self, photos: list) -> list[Path]:
        """Keep copies of the subject photos (named by content hash, in upload order)."""
        self.photos_dir.mkdir(parents=True, exist_ok=True)
        kept = []
        for i, rgb in enumerate(photos):
            digest = hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()[:16]
            target = self.photos_dir / f"{i:02d}_{digest}.png"
            if not target.exists():
                from PIL import Image

                for old in self.photos_dir.glob(f"{i:02d}_*.png"):
                    old.unlink()
                Image.fromarray(rgb).save(target)
            kept.append(target)
        for extra in sorted(self.photos_dir.glob("*.png"))[len(photos) :]:
            extra.unlink()
        return kept

    def photos(self) -> list[Path]:
        return sorted(self.photos_dir.glob("*.png")) if self.photos_dir.is_dir() else []


class SessionStore:
    """Creates, finds and deletes sessions under one root folder (thread-safe)."""

    def __init__(self, root: str | os.PathLike | None = None, ttl_s: float = AppLimits.session_ttl_s):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="dreampose-sessions-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, key: str | None) -> Session:
        """The session for ``key`` (Gradio's per-tab ``session_hash``), created on first use.

        The folder gets its own random name, so knowing a key never reveals a path.
        """
        self.sweep()
        key = key or uuid.uuid4().hex
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                folder = self.root / uuid.uuid4().hex
                folder.mkdir(mode=0o700)
                session = Session(key, folder, time.monotonic())
                self._sessions[key] = session
            session.last_used = time.monotonic()
            return session

    def close(self, session_id: str | None) -> None:
        """Delete a session and its folder (the tab was closed, or it expired)."""
        with self._lock:
            session = self._sessions.pop(session_id or "", None)
        if session is not None:
            shutil.rmtree(session.folder, ignore_errors=True)
            log.info("closed session %s", session.id[:8])

    def sweep(self) -> None:
        """Close every session idle for longer than ``ttl_s``."""
        now = time.monotonic()
        with self._lock:
            expired = [s.id for s in self._sessions.values() if now - s.last_used > self.ttl_s]
        for session_id in expired:
            self.close(session_id)

    def __len__(self) -> int:
        return len(self._sessions)

    def close_all(self) -> None:
        for session_id in list(self._sessions):
            self.close(session_id)
