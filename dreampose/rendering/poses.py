"""Driving poses from a file to the canvas, the same way for the CLI and the app.

A driving pose input is a DreamPose pose file (``.npz`` from ``dreampose extract-poses``),
or the official DreamPose layout (``frame_N_densepose.npy`` files, as a folder or a
``.zip``). :func:`load_driving_poses` reads any of them, judged by content, not by name;
:func:`place_poses` fits them onto the output canvas and, given the subject photo's own
pose, aligns them to the subject's body (one scale and shift for the whole sequence, feet
on the subject's ground line). Misaligned poses are the most common cause of bad results.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from dreampose.model.numerics import DREAMPOSE, Numerics
from pose_extraction.official import import_official
from pose_extraction.pose_sequence import MAX_LOAD_BYTES, PoseSequence, is_pose_archive

OFFICIAL_FPS = 30.0  # the official layout stores no frame rate; UBC Fashion videos are 30 fps


def load_driving_poses(
    path: str | os.PathLike,
    fps: float | None = None,
    max_frames: int | None = None,
    max_bytes: int = MAX_LOAD_BYTES,
    max_frame_bytes: int | None = None,
) -> PoseSequence:
    """A pose sequence from a pose file, or an official-layout folder or zip.

    ``fps`` is the frame rate of official-layout poses (which do not store one); a pose
    file keeps its own unless ``fps`` is given. Only the first ``max_frames`` frames are
    read, and nothing is unpacked beyond ``max_bytes`` in all and ``max_frame_bytes`` a frame
    (checked from the headers first).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"pose file not found: {path}")
    if path.is_dir() or (zipfile.is_zipfile(path) and not _is_pose_file(path)):
        return import_official(
            path,
            fps=fps or OFFICIAL_FPS,
            max_frames=max_frames,
            max_bytes=max_bytes,
            max_frame_bytes=max_frame_bytes,
        )
    poses = PoseSequence.load(
        path, max_frames=max_frames, max_bytes=max_bytes, max_frame_bytes=max_frame_bytes
    )
    if fps:
        poses.fps = float(fps)
    return poses


def _is_pose_file(path: Path) -> bool:
    """An ``.npz`` is a zip of ``.npy`` arrays named after the pose file's fields."""
    try:
        with zipfile.ZipFile(path) as z:
            return is_pose_archive(set(z.namelist()))
    except (zipfile.BadZipFile, OSError):
        return False


def place_poses(
    poses: PoseSequence,
    height: int,
    width: int,
    subject_pose: PoseSequence | None = None,
    align: bool = True,
    numerics: Numerics = DREAMPOSE,
) -> PoseSequence:
    """Fit ``poses`` onto the height x width canvas; with the subject photo's pose and
    ``align``, scale and shift them so the first frame's body stands where the subject's does.

    For a model with official numerics and no subject pose the poses stay as they are: its
    pipeline stretches them onto the canvas as the official code does.
    """
    return numerics.place_driving_poses(poses, height, width, subject_pose, align)
