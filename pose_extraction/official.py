"""Export to and import from the official DreamPose pose layout.

The official code reads one ``frame_N_densepose.npy`` per frame, N counting from 0: a
float array of shape (2, H, W) holding DensePose U and V in [0, 1], pasted at the
person's box in a frame-sized array that is 0 elsewhere. It has no part labels, boxes or
frame rate, so an import marks every pixel with U or V > 0 as body (label 1) and takes the
frame rate from the caller.

Imports read folders and ``.zip`` files of such a folder. Zip members are read into
memory and never extracted, so a hostile archive cannot write anywhere ("zip slip"), and
names that try to climb out of the archive are refused anyway. Sizes are checked from the
zip directory and the ``.npy`` headers before anything is unpacked, against a byte budget,
and only the frames the caller will use are read (:mod:`dreampose.media.npy`).
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from dreampose.base.files import atomic_dir
from dreampose.media.npy import ArrayFileError, Budget, read_array
from pose_extraction.pose_sequence import MAX_LOAD_BYTES, NO_BODY, PoseSequence

FILE_PATTERN = re.compile(r"^frame_(\d+)_densepose\.npy$")


def official_name(index: int) -> str:
    """File name of frame ``index`` (0-based) in the official layout."""
    return f"frame_{index}_densepose.npy"


# ---------------------------------------------------------------------------- export
def export_official(seq: PoseSequence, directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``seq`` as ``frame_N_densepose.npy`` files (float32 (2, H, W)) in ``directory``.

    The folder appears complete or not at all: files go to a temporary folder next to it,
    which is then renamed. An existing folder must be empty, or hold only an earlier
    export and ``overwrite=True``.
    """
    directory = Path(directory)
    _check_target(directory, overwrite)  # empty, or an earlier export we may replace
    with atomic_dir(directory) as tmp:
        for i in range(len(seq)):
            np.save(tmp / official_name(i), seq.uv[i].astype(np.float32))
    return directory


def _check_target(directory: Path, overwrite: bool) -> None:
    if not directory.exists():
        return
    if not directory.is_dir():
        raise ValueError(f"cannot export to {directory}: it exists and is not a folder")
    entries = list(directory.iterdir())
    foreign = [e.name for e in entries if not FILE_PATTERN.match(e.name)]
    if foreign:
        raise ValueError(
            f"cannot export to {directory}: it holds other files ({', '.join(sorted(foreign)[:3])}); "
            "choose an empty or new folder"
        )
    if entries and not overwrite:
        raise ValueError(
            f"{directory} already holds an exported pose sequence; pass overwrite=True to replace it"
        )


# ---------------------------------------------------------------------------- import
def import_official(
    path: str | os.PathLike,
    fps: float = 30.0,
    max_frames: int | None = None,
    max_bytes: int = MAX_LOAD_BYTES,
    max_frame_bytes: int | None = None,
) -> PoseSequence:
    """Read an official-layout folder or ``.zip`` into a :class:`PoseSequence`.

    Frames are taken in the order of their numbers, which may start anywhere (the official
    code takes any ``frame_N_densepose.npy`` sequence) but must not skip one: the official
    code would fill a missing window neighbour with each frame's own pose, which a pose
    sequence cannot express. Frames must share one size; U and V must lie in [0, 1], and
    some frame must show a body. Only the first ``max_frames`` frames are read
    (``extra["frames_in_file"]`` keeps N), nothing is unpacked when they would take more
    than ``max_bytes``, and no frame whose header claims more than ``max_frame_bytes``. Each
    problem is a ``ValueError`` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"pose folder or zip not found: {path}")
    if path.is_dir():
        members = {
            int(m.group(1)): p for p in path.iterdir() if (m := FILE_PATTERN.match(p.name)) and p.is_file()
        }
        frames = _selected(members, path.name, max_frames, lambda p: p.stat().st_size, max_bytes)
        budget = Budget(max_bytes, path.name, max_frame_bytes)

        def read(i: int) -> np.ndarray:
            with open(members[i], "rb") as f:
                return _load_array(f, members[i].name, members[i].stat().st_size, budget)

        seq = _to_sequence(map(read, frames), frames, len(members), fps, path.name)
        seq.source = (str(path), tuple(members[i].name for i in frames))
        return seq
    if zipfile.is_zipfile(path):
        return _import_zip(path, fps, max_frames, Budget(max_bytes, path.name, max_frame_bytes))
    raise ValueError(f"{path.name} is neither a folder nor a zip of frame_N_densepose.npy files")


def _import_zip(path: Path, fps: float, max_frames: int | None, budget: Budget) -> PoseSequence:
    with zipfile.ZipFile(path) as archive:
        members: dict[int, zipfile.ZipInfo] = {}
        folders = set()
        for info in archive.infolist():
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or re.match(r"^[A-Za-z]:", info.filename):
                raise ValueError(f"{path.name}: refusing unsafe path {info.filename!r} in the zip")
            match = FILE_PATTERN.match(name.name)
            if match and not info.is_dir() and "__MACOSX" not in name.parts:
                members[int(match.group(1))] = info
                folders.add(name.parent)
        if len(folders) > 1:
            raise ValueError(
                f"{path.name} holds pose frames in several folders ({', '.join(sorted(map(str, folders)))}); "
                "zip one sequence at a time"
            )
        frames = _selected(members, path.name, max_frames, lambda info: info.file_size, budget.limit)

        def read(i: int) -> np.ndarray:
            name = PurePosixPath(members[i].filename).name
            with archive.open(members[i]) as f:
                return _load_array(f, name, members[i].file_size, budget)

        seq = _to_sequence(map(read, frames), frames, len(members), fps, path.name)
        seq.source = (str(path), tuple(members[i].filename for i in frames))
        return seq


def _selected(members: dict, source: str, max_frames: int | None, size, max_bytes: int) -> list[int]:
    """The frames to read (the first ``max_frames``), refused when their declared sizes
    (file sizes or zip directory entries, read before any unpacking) exceed ``max_bytes``."""
    frames = _ordered(members, source)[:max_frames]
    declared = sum(size(members[i]) for i in frames)
    if declared > max_bytes:
        raise ValueError(
            f"{source}: {len(frames)} pose frames would unpack to {declared / 2**30:.2f} GiB, over the limit of "
            f"{max_bytes / 2**30:.2f} GiB; use fewer or smaller frames"
        )
    return frames


def _ordered(members: dict, source: str) -> list[int]:
    if not members:
        raise ValueError(f"{source} holds no frame_N_densepose.npy files")
    frames = sorted(members)
    gaps = sorted(set(range(frames[0], frames[-1] + 1)) - set(frames))
    if gaps:
        shown = ", ".join(official_name(i) for i in gaps[:3]) + (" ..." if len(gaps) > 3 else "")
        raise ValueError(
            f"{source} is missing {shown}: the frames run from {official_name(frames[0])} to "
            f"{official_name(frames[-1])} and must not skip a number (copy a neighbouring frame "
            "into the gap, or import each unbroken run separately)"
        )
    return frames


def _load_array(stream, name: str, size: int, budget: Budget) -> np.ndarray:
    try:
        array = read_array(stream, name, size, budget, frame=True)
    except ArrayFileError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # truncated or corrupted data
        raise ValueError(f"{name} is not a readable numeric .npy array ({e})") from e
    if not isinstance(array, np.ndarray) or array.ndim != 3 or array.shape[0] != 2:
        raise ValueError(
            f"{name} must hold U, V as an array of shape (2, H, W); got {getattr(array, 'shape', '?')}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must hold floating-point U, V values; got {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    lo, hi = float(array.min()), float(array.max())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{name} has values in [{lo:.3g}, {hi:.3g}]; U and V must lie in [0, 1] "
            "(DensePose IUV images with 0..255 values must be divided by 255 first)"
        )
    return array


@dataclass(eq=False)
class OfficialPoseSequence(PoseSequence):
    """Poses imported from official files. Like every pose sequence it holds U, V in float16;
    :meth:`uv_float` reads the files again for their own values (as float32, as the official
    ``test.py`` does), so official numerics get exactly the official inputs (float16 would
    round them by up to 2.4e-4). Should the files be gone or changed, it gives the float16 maps.
    """

    source: tuple[str, tuple[str, ...]] | None = field(default=None, repr=False)  # (folder or zip, names)

    def uv_float(self) -> np.ndarray:
        exact = _reread(self.source, self.uv.shape) if self.source is not None else None
        return exact if exact is not None else super().uv_float()


def _reread(source: tuple[str, tuple[str, ...]], shape: tuple[int, ...]) -> np.ndarray | None:
    """The imported files' U, V again, read within the bytes they took at import."""
    path, names = Path(source[0]), source[1]
    uv = np.empty(shape, dtype=np.float32)
    budget = Budget(uv.nbytes * 2, path.name)  # float64 files take twice float32
    try:
        if path.is_dir():
            for i, name in enumerate(names):
                with open(path / name, "rb") as f:
                    uv[i] = _load_array(f, name, (path / name).stat().st_size, budget)
        else:
            with zipfile.ZipFile(path) as archive:
                for i, name in enumerate(names):
                    with archive.open(name) as f:
                        uv[i] = _load_array(f, name, archive.getinfo(name).file_size, budget)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # gone or changed since the import
        return None
    return uv


def _to_sequence(
    arrays: Iterable[np.ndarray], numbers: list[int], in_file: int, fps: float, source: str
) -> OfficialPoseSequence:
    """The frames (in the order of their file ``numbers``) as a sequence indexed from 0."""
    uv = labels = None
    for i, array in enumerate(arrays):
        if uv is None:
            uv = np.empty((len(numbers), *array.shape), dtype=np.float16)
            labels = np.empty((len(numbers), *array.shape[1:]), dtype=np.uint8)
        elif array.shape != uv.shape[1:]:
            raise ValueError(
                f"{official_name(numbers[i])} in {source} is {array.shape[1]} x {array.shape[2]}, but "
                f"{official_name(numbers[0])} is {uv.shape[2]} x {uv.shape[3]}: all frames must share one size"
            )
        uv[i] = array
        # Body = any non-zero U or V, judged before float16 could round a tiny value to 0.
        labels[i] = (array != 0).any(axis=0)
    if not labels.any():  # before building and validating a sequence of nothing
        raise ValueError(f"{source}: {NO_BODY}")
    seq = OfficialPoseSequence.from_uv(uv, fps=fps, labels=labels)
    seq.extra["frames_in_file"] = in_file
    return seq
