"""The pose file: the one contract between pose extraction and the DreamPose model.

A pose sequence is a versioned ``.npz`` holding, for N frames of H x W pixels:

===============  ==================  ===============================================
key              dtype, shape        meaning
===============  ==================  ===============================================
``uv``           float16 (N,2,H,W)   DensePose U and V in [0, 1]; 0 where no body
``labels``       uint8 (N,H,W)       DensePose part index 0..24 (0 = background)
``boxes``        float32 (N,4)       person box x0, y0, x1, y1 in these pixels
``scores``       float32 (N,)        detection score of that person
``missing``      bool (N,)           frames where nobody was detected (filled in)
``fps``          float64 ()          frames per second
``source_size``  int64 (2,)          height, width of the frames it was made from
``format_version`` int64 ()          ``FORMAT_VERSION``
``source_video`` str ()              optional: the video the poses were extracted from
``source_start`` float64 ()          optional: the second of that video frame 0 shows
===============  ==================  ===============================================

The source video lets a render keep the driving video's sound: frame k is its instant
``source_start + k / fps``.

Everything in the project reads and writes poses through :class:`PoseSequence`, and
loading validates every field, naming what is wrong.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dreampose.base.files import atomic_file
from dreampose.media.npy import ArrayFileError, Budget, read_array, read_header

FORMAT_VERSION = 1
NUM_PART_LABELS = 25  # DensePose: background + 24 body parts
# Largest pose input read into memory by default (the app passes its own, smaller, budget):
# about 3,000 frames of 1024 x 576 pose maps, more than any machine renders in a day.
MAX_LOAD_BYTES = 16 * 2**30


class PoseFileError(ValueError):
    """A pose file or pose array that does not follow the format."""


@dataclass(eq=False)
class PoseSequence:
    uv: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    missing: np.ndarray
    fps: float = 30.0
    source_size: tuple[int, int] | None = None
    format_version: int = FORMAT_VERSION
    source_video: str | None = None  # absolute path of the driving video, when made from one
    source_start: float = 0.0  # seconds into it of frame 0
    extra: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.uv = np.asarray(self.uv)
        self.labels = np.asarray(self.labels)
        self.boxes = np.asarray(self.boxes)
        self.scores = np.asarray(self.scores)
        self.missing = np.asarray(self.missing)
        self.fps = float(self.fps)
        if self.source_size is None and self.uv.ndim == 4:
            self.source_size = (int(self.uv.shape[2]), int(self.uv.shape[3]))
        elif self.source_size is not None:
            self.source_size = (int(self.source_size[0]), int(self.source_size[1]))
        self.validate()

    # ------------------------------------------------------------------ building
    @classmethod
    def from_uv(
        cls,
        uv: np.ndarray,
        fps: float = 30.0,
        labels: np.ndarray | None = None,
        missing: np.ndarray | None = None,
    ) -> PoseSequence:
        """Build a sequence from UV maps alone (N, 2, H, W) in [0, 1].

        Labels default to 1 wherever U or V is non-zero, boxes to the bounding box of
        that body mask and scores to 1, so hand-made or imported poses are complete.
        """
        uv = np.asarray(uv)
        if uv.dtype != np.float16:  # float16 is kept as it is: no float32 copy of a long sequence
            uv = uv.astype(np.float32, copy=False)
        if uv.ndim != 4 or uv.shape[1] != 2:
            raise PoseFileError(f"uv must have shape (N, 2, H, W); got {tuple(uv.shape)}")
        body = (uv != 0).any(axis=1)
        if labels is None:
            labels = body.astype(np.uint8)
        n = uv.shape[0]
        boxes = np.array([_mask_box(m) for m in body], dtype=np.float32).reshape(n, 4)
        missing = np.zeros(n, dtype=bool) if missing is None else np.asarray(missing, dtype=bool)
        return cls(
            uv=uv.astype(np.float16, copy=False),
            labels=np.asarray(labels, dtype=np.uint8),
            boxes=boxes,
            scores=np.ones(n, dtype=np.float32),
            missing=missing,
            fps=fps,
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.uv.shape[0])

    @property
    def height(self) -> int:
        return int(self.uv.shape[2])

    @property
    def width(self) -> int:
        return int(self.uv.shape[3])

    def uv_float(self) -> np.ndarray:
        """UV maps as float32 (N, 2, H, W) in [0, 1]."""
        return self.uv.astype(np.float32)

    def select(self, indices) -> PoseSequence:
        """A new sequence holding only ``indices`` (a slice, list or array)."""
        idx = np.arange(len(self))[indices]
        return PoseSequence(
            uv=self.uv[idx],
            labels=self.labels[idx],
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            missing=self.missing[idx],
            fps=self.fps,
            source_size=self.source_size,
            source_video=self.source_video,
            source_start=self.source_start + float(idx[0]) / self.fps if len(idx) else self.source_start,
        )

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`PoseFileError` naming the first field that breaks the format."""
        if self.format_version != FORMAT_VERSION:
            raise PoseFileError(
                f"pose file format_version {self.format_version} is not supported; "
                f"this DreamPose reads version {FORMAT_VERSION}. Re-extract the poses."
            )
        uv = self.uv
        if uv.ndim != 4 or uv.shape[1] != 2:
            raise PoseFileError(
                f"uv must have shape (N, 2, H, W) with 2 channels (U, V); got {tuple(uv.shape)}"
            )
        n, _, h, w = uv.shape
        if n == 0:
            raise PoseFileError("the pose sequence is empty: it needs at least one frame")
        if h < 1 or w < 1:
            raise PoseFileError(f"uv frames must have a positive size; got {h} x {w}")
        if uv.dtype != np.float16:
            raise PoseFileError(f"uv must be float16; got {uv.dtype}")
        finite = np.isfinite(uv)
        if not finite.all():
            raise PoseFileError("uv holds NaN or infinite values")
        lo, hi = float(uv.min()), float(uv.max())
        if lo < 0.0 or hi > 1.0:
            raise PoseFileError(f"uv values must lie in [0, 1]; found values in [{lo:.3g}, {hi:.3g}]")
        _check(self.labels, "labels", np.uint8, (n, h, w))
        if self.labels.size and int(self.labels.max()) >= NUM_PART_LABELS:
            raise PoseFileError(
                f"labels must be DensePose part indices 0..{NUM_PART_LABELS - 1}; "
                f"found {int(self.labels.max())}"
            )
        _check(self.boxes, "boxes", np.float32, (n, 4))
        _check(self.scores, "scores", np.float32, (n,))
        _check(self.missing, "missing", np.bool_, (n,))
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise PoseFileError(f"fps must be a positive number; got {self.fps}")
        if self.missing.all():
            raise PoseFileError("no person was detected in any frame of this pose sequence")

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write the ``.npz`` atomically (temporary file, then rename)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise PoseFileError(f"pose files end in .npz; got {path.name}")
        with atomic_file(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                uv=self.uv,
                labels=self.labels,
                boxes=self.boxes,
                scores=self.scores,
                missing=self.missing,
                fps=np.float64(self.fps),
                source_size=np.asarray(self.source_size, dtype=np.int64),
                format_version=np.int64(self.format_version),
                **self._source_arrays(),
            )
        return path

    def _source_arrays(self) -> dict:
        if self.source_video is None:
            return {}
        return {"source_video": np.str_(self.source_video), "source_start": np.float64(self.source_start)}

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        max_frames: int | None = None,
        max_bytes: int = MAX_LOAD_BYTES,
        max_frame_bytes: int | None = None,
    ) -> PoseSequence:
        """Read and validate a pose file; refuse one in which no frame shows a body.

        Never unpickles. Array sizes are checked from their headers before anything is
        unpacked (:mod:`dreampose.media.npy`): at most ``max_bytes`` are read, at most
        ``max_frame_bytes`` for one frame (all its fields), and with ``max_frames`` only the
        first frames (``extra["frames_in_file"]`` keeps the count).
        """
        path = Path(path)
        if not path.is_file():
            raise PoseFileError(f"pose file not found: {path}")
        try:
            with zipfile.ZipFile(path) as archive:
                arrays, frames_in_file = _read_pose_arrays(
                    archive, path.name, max_frames, Budget(max_bytes, path.name, max_frame_bytes)
                )
        except ArrayFileError as e:
            raise PoseFileError(str(e)) from e
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as e:
            raise PoseFileError(f"{path.name} is not a readable .npz pose file ({e})") from e
        try:
            seq = cls(
                uv=arrays["uv"],
                labels=arrays["labels"],
                boxes=arrays["boxes"],
                scores=arrays["scores"],
                missing=arrays["missing"],
                fps=_scalar(arrays["fps"], "fps", float),
                source_size=tuple(arrays["source_size"]) if "source_size" in arrays else None,
                format_version=_scalar(arrays["format_version"], "format_version", int),
                source_video=str(arrays["source_video"]) if "source_video" in arrays else None,
                source_start=_scalar(arrays["source_start"], "source_start", float)
                if "source_start" in arrays
                else 0.0,
            )
            seq.check_body()
        except PoseFileError as e:
            raise PoseFileError(f"{path.name}: {e}") from e
        seq.extra["frames_in_file"] = frames_in_file
        return seq

    def check_body(self) -> None:
        """Refuse a sequence in which no frame shows any body part: it would render nothing useful.

        (``validate`` accepts it, because a crop or a placement may legitimately leave a
        frame empty; files from outside must show someone.)"""
        if not self.labels.any():
            raise PoseFileError(NO_BODY)


NO_BODY = (
    "no frame of this pose sequence shows a body (every pixel is background); "
    "extract the poses again from a video where the person is clearly visible"
)
# The fields of a pose file, and those with one entry per frame (read only up to max_frames).
# Labels come first: a file without any body is refused before its (4x larger) UV maps are unpacked.
REQUIRED_FIELDS = ("labels", "uv", "boxes", "scores", "missing", "fps", "format_version")
PER_FRAME_FIELDS = ("uv", "labels", "boxes", "scores", "missing")
OPTIONAL_FIELDS = ("source_size", "source_video", "source_start")


def is_pose_archive(names: set[str] | list[str]) -> bool:
    """Whether a zip with these member names is meant as a pose file (an ``.npz``): it holds
    any of the pose file's fields. Deciding on any field, not on all of them, lets the pose
    file's loader name what is missing (``labels``), instead of the zip being read as the
    official ``frame_N_densepose.npy`` layout and refused for having none of those."""
    return any(f"{k}.npy" in names for k in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS))


def _read_pose_arrays(
    archive: zipfile.ZipFile, name: str, max_frames: int | None, budget: Budget
) -> tuple[dict[str, np.ndarray], int]:
    """The pose file's arrays, checked from their headers against ``budget`` (in all and a
    frame) before any is unpacked."""
    members = {info.filename: info for info in archive.infolist()}
    fields = [*REQUIRED_FIELDS, *OPTIONAL_FIELDS]
    absent = [k for k in REQUIRED_FIELDS if f"{k}.npy" not in members]
    if absent:
        raise PoseFileError(
            f"{name} is not a DreamPose pose file: missing {', '.join(absent)} "
            "(make one with `dreampose extract-poses`)"
        )
    fields = [k for k in fields if f"{k}.npy" in members]
    rows = {k: max_frames if k in PER_FRAME_FIELDS else None for k in fields}
    # First pass: headers only (a few hundred bytes each), so nothing is unpacked if the total is too big.
    headers = {}
    for k in fields:
        with archive.open(members[f"{k}.npy"]) as f:
            headers[k] = read_header(f, f"{name} ({k})", members[f"{k}.npy"].file_size)
    budget.check_frame(sum(headers[k].row_bytes for k in fields if k in PER_FRAME_FIELDS))
    Budget(budget.limit, name).take(sum(headers[k].bytes_for(rows[k]) for k in fields))
    arrays = {}
    for k in fields:
        with archive.open(members[f"{k}.npy"]) as f:
            arrays[k] = read_array(f, f"{name} ({k})", members[f"{k}.npy"].file_size, budget, rows[k])
        if k == "labels" and _no_body(arrays[k], headers["uv"].rows(max_frames)):
            raise PoseFileError(f"{name}: {NO_BODY}")
    frames_in_file = headers["uv"].shape[0] if headers["uv"].shape else 0
    return arrays, frames_in_file


def _no_body(labels: np.ndarray, uv_shape: tuple[int, ...]) -> bool:
    """Well-formed labels (for the UV maps' shape) without any body part."""
    expected = (uv_shape[0], *uv_shape[2:]) if len(uv_shape) == 4 else None
    return labels.dtype == np.uint8 and labels.shape == expected and not labels.any()


def _scalar(array: np.ndarray, name: str, kind):
    if array.size != 1:
        raise PoseFileError(f"{name} must be a single number; got an array of shape {array.shape}")
    try:
        return kind(array.reshape(()))
    except (TypeError, ValueError):
        raise PoseFileError(f"{name} must be a number; got {array.dtype}") from None


def _check(array: np.ndarray, name: str, dtype, shape: tuple) -> None:
    if array.dtype != dtype:
        raise PoseFileError(f"{name} must be {np.dtype(dtype)}; got {array.dtype}")
    if tuple(array.shape) != shape:
        raise PoseFileError(f"{name} must have shape {shape}; got {tuple(array.shape)}")


def _mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
