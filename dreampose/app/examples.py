"""The bundled example's poses: the app's example needs no pose detector, offline or not.

``assets/make_examples.py`` draws the example photo and video and, from the same geometry, their
exact poses; ``assets/examples.json`` ties each pose file to its picture by content (the video by
the SHA-256 of its bytes, the photo by the SHA-256 of its pixels, as the app stores photos). Given
an upload, these functions return the bundled poses when it is one of the example's pictures.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from dreampose.media.images import pixels_digest
from pose_extraction.pose_sequence import PoseSequence

ASSETS = Path(__file__).resolve().parents[2] / "assets"
INDEX = "examples.json"
BUNDLED_NOTE = "These are the example's own poses, shipped with the app (no pose detector was run)."


def _index(assets: Path) -> dict:
    try:
        return json.loads((assets / INDEX).read_text())
    except (OSError, ValueError):
        return {}


def bundled_video_poses(video: str | os.PathLike, assets: Path = ASSETS) -> PoseSequence | None:
    """The bundled poses of ``video`` when it is the example video (same bytes), else None."""
    videos = _index(assets).get("videos", {})
    path = Path(video)
    if not videos or not path.is_file():
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.stat().st_size < 64 * 2**20 else None
    name = videos.get(digest)
    return PoseSequence.load(assets / name) if name else None


def bundled_photo_pose(rgb: np.ndarray, assets: Path = ASSETS) -> PoseSequence | None:
    """The bundled pose of the photo ``rgb`` (H, W, 3 uint8) when it is the example photo, else None."""
    photos = _index(assets).get("photos", {})
    name = photos.get(pixels_digest(rgb))
    return PoseSequence.load(assets / name) if name else None


def example_pairs(assets: Path = ASSETS) -> list[list[str]]:
    """The photo x driving video pairs the app offers as examples (those whose files are here)."""
    pairs = _index(assets).get("examples", [])
    paths = [[str(assets / name) for name in pair] for pair in pairs if len(pair) == 2]
    return [pair for pair in paths if all(Path(p).is_file() for p in pair)]
