"""What one request may upload, and checking uploads by their content.

Uploads are judged by their content, never by their file name: a photo must decode as an
image, a video must probe as a video, a pose file must load as one. Limits come from
environment variables so a public Space can be stricter than a local install.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dreampose.app.messages import UserError
from dreampose.base import paper
from dreampose.media.images import MAX_PHOTO_PIXELS
from pose_extraction.pose_sequence import is_pose_archive


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


# One pose frame as uploaded: U, V of 1024 x 1024 pixels in float32 (the official layout's
# type; extracted poses are float16 U, V plus labels at most 1024 pixels on a side).
POSE_FRAME_BYTES = 2 * 1024 * 1024 * 4


@dataclass(frozen=True)
class AppLimits:
    """What one request may ask for. Defaults suit a public Space on one GPU."""

    max_upload_mb: float = 50.0  # any single uploaded file
    max_video_seconds: float = 30.0  # the selected part of a driving video
    max_pixels: int = 3840 * 2160  # one video frame (width x height)
    max_photo_pixels: int = MAX_PHOTO_PIXELS  # one photo: every phone camera's full size
    max_pose_frames: int = 300  # frames in a pose sequence (extracted or uploaded)
    max_render_frames: int = 120  # frames in one render
    # UNet + VAE finetuning steps together: the paper's 500 + 1500 by default
    max_finetune_steps: int = paper.FINETUNE_UNET_STEPS + paper.FINETUNE_VAE_STEPS
    session_ttl_s: float = 3 * 3600.0  # idle sessions are deleted after this long
    cache_ttl_s: float = 3 * 3600.0  # Gradio's copies of uploads and results are deleted after this long

    @property
    def max_pose_bytes(self) -> int:
        """What an uploaded pose file may unpack to: ``max_pose_frames`` frames of at most
        ``POSE_FRAME_BYTES``. Checked from the zip directory and the array headers before
        anything is unpacked; frames past the limit are never read."""
        return self.max_pose_frames * POSE_FRAME_BYTES

    @classmethod
    def from_env(cls) -> AppLimits:
        """Read ``DREAMPOSE_MAX_*``, ``DREAMPOSE_SESSION_TTL`` and ``DREAMPOSE_CACHE_TTL``
        (seconds) over the defaults."""
        d = cls()
        return cls(
            max_upload_mb=_env_number("DREAMPOSE_MAX_UPLOAD_MB", d.max_upload_mb),
            max_video_seconds=_env_number("DREAMPOSE_MAX_VIDEO_SECONDS", d.max_video_seconds),
            max_pixels=int(_env_number("DREAMPOSE_MAX_PIXELS", d.max_pixels)),
            max_photo_pixels=int(_env_number("DREAMPOSE_MAX_PHOTO_PIXELS", d.max_photo_pixels)),
            max_pose_frames=int(_env_number("DREAMPOSE_MAX_POSE_FRAMES", d.max_pose_frames)),
            max_render_frames=int(_env_number("DREAMPOSE_MAX_RENDER_FRAMES", d.max_render_frames)),
            max_finetune_steps=int(_env_number("DREAMPOSE_MAX_FINETUNE_STEPS", d.max_finetune_steps)),
            session_ttl_s=_env_number("DREAMPOSE_SESSION_TTL", d.session_ttl_s),
            cache_ttl_s=_env_number("DREAMPOSE_CACHE_TTL", d.cache_ttl_s),
        )


# ----------------------------------------------------------------------------- upload origins
@dataclass(frozen=True)
class UploadOrigins:
    """Which server files the page's endpoints may read: what was uploaded to it and the
    bundled examples' copies. An API client can name any server path as a file (Gradio copies
    a file it allows, e.g. one under the working directory or the temp folder, into its
    cache, so the copy looks like an upload); only these are read. ``None`` sets: Python
    callers of the service, whose paths are their own, are not restricted."""

    uploaded: set[str] | None = None  # live: Gradio adds each upload as it arrives
    bundled: frozenset[str] = frozenset()

    def check(self, path: Path, what: str) -> None:
        if self.uploaded is None:
            return
        # As Gradio named it; also absolute and resolved (a temp folder behind a symlink, as on macOS)
        names = {str(path), os.path.abspath(path), str(path.resolve())}
        if not any(name in self.uploaded or name in self.bundled for name in names):
            raise UserError(f"The {what} must be a file uploaded to this app; please upload it.")


ANY_FILE = UploadOrigins()


# ----------------------------------------------------------------------------- upload checks
def check_upload_size(
    path: str | os.PathLike, limits: AppLimits, what: str, origins: UploadOrigins = ANY_FILE
) -> Path:
    """The upload as a Path, refused when missing, not uploaded here, empty or over the size limit."""
    if path is None or str(path) == "":
        raise UserError(f"Please add {what} first.")
    path = Path(path)
    origins.check(path, what)
    if not path.is_file():
        raise UserError(f"The {what} upload did not arrive; please upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"The {what} is an empty file; please upload it again.")
    if size > limits.max_upload_mb * 1e6:
        raise UserError(
            f"The {what} is {size / 1e6:.0f} MB, more than the {limits.max_upload_mb:g} MB this app accepts. "
            "Please upload a smaller file."
        )
    return path


def read_photo(path: str | os.PathLike, limits: AppLimits, origins: UploadOrigins = ANY_FILE):
    """Decode a subject photo (RGB uint8, upright), refusing non-images and huge pictures."""
    from dreampose.media.images import read_image

    path = check_upload_size(path, limits, "subject photo", origins)
    try:
        return read_image(path, max_pixels=limits.max_photo_pixels)
    except ValueError as e:
        if "megapixels" in str(e):
            raise UserError(f"The photo is too large: {e}.") from None
        raise UserError(
            "The subject photo is not a picture this app can read; please upload a JPEG or PNG."
        ) from None


def driving_kind(path: Path) -> str:
    """``"npz"`` (a DreamPose pose file), ``"official_zip"`` or ``"video"``, from the content.

    An ``.npz`` is a zip of ``.npy`` arrays named after the pose-file fields; the official
    DreamPose poses are a zip of ``frame_N_densepose.npy`` files; anything else must be a
    video (the video reader then decides whether it really is one). Only the zip's
    directory is read here; the pose loaders check sizes against
    ``AppLimits.max_pose_bytes`` before they unpack anything.
    """
    if not zipfile.is_zipfile(path):
        return "video"
    try:
        with zipfile.ZipFile(path) as z:
            names = {i.filename for i in z.infolist() if not i.is_dir()}
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError("The uploaded zip file is damaged; please create it again.") from e
    if is_pose_archive(names):
        return "npz"
    if any(n.endswith(".npy") for n in names):
        return "official_zip"
    raise UserError(
        "The uploaded zip holds neither a DreamPose pose file (.npz) nor the official "
        "frame_N_densepose.npy pose files. Upload a video instead, or one of those pose files."
    )
