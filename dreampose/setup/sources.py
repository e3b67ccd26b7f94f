"""Where each part of the official DreamPose setup comes from, and how a user overrides it.

The defaults are the official README's links (johannakarras/DreamPose) and the Stable Diffusion
revision the official code pins. Every part can be pointed elsewhere, by a flag of
`dreampose download` or an environment variable, at a URL, a local file or folder, a Google Drive
id or link, or (for Stable Diffusion and CLIP) a Hugging Face repository: so mirrors, offline
machines and tests need no code change.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from dreampose.base.downloads import is_url

BASE_MODEL_DRIVE_FILE = "10JjayW2mMqGxhUyM9ds_GHEvuqCTDaH3"  # unet_epoch_20.pth (+ adapter_20.pth)
DEMO_SUBJECT_DRIVE_FOLDER = "15SaT3kZFRIjxuHT6UrGr6j0183clTK_D"  # unet_epoch_499, adapter_499, vae_1499
DEMO_POSES_DRIVE_FOLDER = "1CjzcOp_ZUt-dyrzNAFE0T8bS3cbKTsVG"  # frame_N_densepose.npy (poses.zip)
STABLE_DIFFUSION_REPO = "CompVis/stable-diffusion-v1-4"
STABLE_DIFFUSION_REVISION = "ebb811dd71cdc38a204ecbdd6ac5d580f529fd8c"  # as the official code pins it
CLIP_REPO = "openai/clip-vit-base-patch32"

KINDS = ("drive_file", "drive_folder", "url", "path", "hub")


@dataclass(frozen=True)
class Source:
    """One place to fetch from: ``kind`` is one of :data:`KINDS`."""

    kind: str
    location: str  # Drive id, URL, local path or hub repo id
    revision: str | None = None  # hub only

    @property
    def key(self) -> str:
        """Stable name of the source in the manifest of recorded checksums."""
        if self.kind == "hub":
            return f"hub:{self.location}@{self.revision or 'main'}"
        return f"{self.kind}:{self.location}"

    def describe(self) -> str:
        if self.kind == "drive_file":
            return f"Google Drive file {self.location}"
        if self.kind == "drive_folder":
            return f"Google Drive folder {self.location}"
        if self.kind == "hub":
            return f"Hugging Face {self.location}" + (
                f" (revision {self.revision[:10]})" if self.revision else ""
            )
        return self.location

    def browser_url(self) -> str:
        """Where a person can open this source by hand."""
        if self.kind == "drive_file":
            return f"https://drive.google.com/file/d/{self.location}/view"
        if self.kind == "drive_folder":
            return f"https://drive.google.com/drive/folders/{self.location}"
        if self.kind == "hub":
            tree = f"/tree/{self.revision}" if self.revision else ""
            return f"https://huggingface.co/{self.location}{tree}"
        return self.location


@dataclass(frozen=True)
class Part:
    """One thing `dreampose download` fetches."""

    name: str
    label: str  # for messages: "the DreamPose base model (UBC Fashion)"
    default: Source
    env: str  # environment variable that overrides the source
    flag: str  # `dreampose download` flag that overrides the source
    needs: tuple[str, ...] = ()  # checkpoint kinds that must be found in it


PARTS: dict[str, Part] = {
    part.name: part
    for part in (
        Part(
            "base",
            "the DreamPose base model (UBC Fashion)",
            Source("drive_file", BASE_MODEL_DRIVE_FILE),
            "DREAMPOSE_BASE_SOURCE",
            "--base-source",
            ("unet", "adapter"),
        ),
        Part(
            "subject",
            "the demo subject's finetuned checkpoints",
            Source("drive_folder", DEMO_SUBJECT_DRIVE_FOLDER),
            "DREAMPOSE_SUBJECT_SOURCE",
            "--subject-source",
            ("unet", "adapter", "vae"),
        ),
        Part(
            "poses",
            "the demo subject's poses",
            Source("drive_folder", DEMO_POSES_DRIVE_FOLDER),
            "DREAMPOSE_POSES_SOURCE",
            "--poses-source",
        ),
        Part(
            "stable_diffusion",
            "Stable Diffusion 1.4",
            Source("hub", STABLE_DIFFUSION_REPO, STABLE_DIFFUSION_REVISION),
            "DREAMPOSE_SD_SOURCE",
            "--sd-source",
        ),
        Part(
            "clip",
            "the CLIP image encoder",
            Source("hub", CLIP_REPO),
            "DREAMPOSE_CLIP_SOURCE",
            "--clip-source",
        ),
    )
}
HUB_PARTS = ("stable_diffusion", "clip")

_DRIVE_ID = re.compile(r"^[-\w]{25,}$")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(@[\w.-]+)?$")


def source_for(part: str, override: str | None = None) -> Source:
    """The source of ``part``: ``override`` (a flag), else its environment variable, else the default."""
    text = override or os.environ.get(PARTS[part].env) or ""
    return parse_source(text, part) if text.strip() else PARTS[part].default


def parse_source(text: str, part: str) -> Source:
    """Read a user's source for ``part``.

    Accepted: an http(s) URL (a Google Drive link becomes a Drive file or folder), ``drive:ID``,
    an existing local file or folder, and for Stable Diffusion and CLIP ``hf:owner/name[@revision]``
    or a bare ``owner/name[@revision]``. Anything else is a ``ValueError`` saying what is accepted.
    """
    text = text.strip()
    default_kind = PARTS[part].default.kind
    if text.startswith(("drive:", "gdrive:")):
        drive_id = text.split(":", 1)[1]
        kind = default_kind if default_kind.startswith("drive") else "drive_file"
        return Source(kind, drive_id)
    if is_url(text):
        drive = _drive_source(text)
        return drive or Source("url", text)
    path = Path(text).expanduser()
    if path.exists():
        return Source("path", str(path.resolve()))
    if part in HUB_PARTS:
        repo = text.removeprefix("hf:")
        if _HUB_ID.match(repo):
            repo, _, revision = repo.partition("@")
            return Source("hub", repo, revision or None)
    hub = " a Hugging Face id (owner/name[@revision])," if part in HUB_PARTS else ""
    raise ValueError(
        f"{PARTS[part].flag} / ${PARTS[part].env}: {text!r} is neither an existing file or folder,{hub} "
        "an http(s) URL nor drive:ID"
    )


def _drive_source(url: str) -> Source | None:
    parsed = urllib.parse.urlparse(url)
    if parsed.hostname not in ("drive.google.com", "docs.google.com"):
        return None
    folder = re.match(r"^/drive/(?:u/\d+/)?folders/([-\w]+)", parsed.path)
    if folder:
        return Source("drive_folder", folder.group(1))
    file = re.match(r"^/file/(?:u/\d+/)?d/([-\w]+)", parsed.path)
    query = urllib.parse.parse_qs(parsed.query).get("id", [])
    file_id = file.group(1) if file else (query[0] if query else None)
    return Source("drive_file", file_id) if file_id and _DRIVE_ID.match(file_id) else None
