"""The base-training dataset (paper section 4.5): frame pairs sampled across each video.

Layout (the UBC Fashion layout; ``dreampose prepare-dataset`` builds it from videos)::

    DATASET/
      <video name>/
        frames/        frame_00000.png, frame_00001.png, ...  (PNG or JPEG, any names, in name order)
        poses.npz      the video's pose file (PoseSequence): one pose frame per image,
                       in the same order, at the frames' size or a uniformly shrunk one

Each item takes one target frame j of one video, draws a subject frame i of the same video
(i != j when the video has two frames or more), and gives the subject image, the target
image and the target's 5-pose window (frames j-2 .. j+2, ``pose_window``) at latent size,
all on the height x width canvas through the same functions as inference. Optionally the
target and its window share one random crop (``dreampose.training.augment``).

Poses are read through a per-video cache at a quarter of the canvas resolution
(``.dreampose-cache/<video>-<H>x<W>.npy``, memory-mapped), which keeps random access cheap:
a decompressed UBC pose file is ~0.5 GB. A quarter of the canvas is twice the latent grid,
so the nearest-neighbour resize to the latents picks the same pixels it would at full size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from dreampose.base.files import atomic_file
from dreampose.media.canvas import fit_image, fit_pose
from dreampose.media.images import read_image
from dreampose.model.numerics import DREAMPOSE, Numerics
from dreampose.training.augment import crop_image, crop_pose
from dreampose.training.settings import CropScale
from pose_extraction.pose_sequence import PoseFileError, PoseSequence

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
POSE_FILE = "poses.npz"
FRAMES_DIR = "frames"
CACHE_DIR = ".dreampose-cache"
POSE_CACHE_STRIDE = 4  # cached poses at 1/4 of the canvas: twice the latent grid

LAYOUT_HELP = (
    "expected one folder per video, each with frames/ (frame_00000.png, frame_00001.png, ...) and "
    "poses.npz holding one pose frame per image (make it with `dreampose prepare-dataset`)"
)


@dataclass(frozen=True)
class Video:
    name: str
    folder: Path
    frames: tuple[Path, ...]


def find_videos(root: str | os.PathLike) -> list[Video]:
    """The usable videos under ``root``; a ValueError naming what was wrong if there are none."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset folder not found: {root}; {LAYOUT_HELP}")
    videos, problems = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        frames = tuple(
            sorted(p for p in (folder / FRAMES_DIR).glob("*") if p.suffix.lower() in FRAME_SUFFIXES)
        )
        if not frames:
            problems.append(f"{folder.name}: no frames in {FRAMES_DIR}/")
        elif not (folder / POSE_FILE).is_file():
            problems.append(f"{folder.name}: no {POSE_FILE}")
        elif len(frames) < 2:
            problems.append(f"{folder.name}: only one frame (pairs need two)")
        else:
            videos.append(Video(folder.name, folder, frames))
    if not videos:
        found = "; ".join(problems[:5]) if problems else "no sub-folders"
        raise ValueError(f"no usable videos in {root} ({found}); {LAYOUT_HELP}")
    return videos


class PairDataset(torch.utils.data.Dataset):
    """(subject image, target image, target pose window) triples; one item per frame."""

    def __init__(
        self,
        root: str | os.PathLike,
        height: int = 640,
        width: int = 512,
        num_pose_frames: int = 5,
        numerics: Numerics = DREAMPOSE,
        crop: CropScale | None = None,
        seed: int = 0,
        vae_scale_factor: int = 8,
    ):
        self.root = Path(root)
        self.videos = find_videos(self.root)
        self.height, self.width = height, width
        self.num_pose_frames = num_pose_frames
        self.numerics = numerics
        self.crop = crop
        self.seed = seed
        self.epoch = 0
        self.latent_size = (height // vae_scale_factor, width // vae_scale_factor)
        self.index = [(v, j) for v, video in enumerate(self.videos) for j in range(len(video.frames))]
        self._poses: dict[int, np.ndarray] = {}

    def set_epoch(self, epoch: int) -> None:
        """Draw other subject frames and crops in another epoch (same ones when resumed)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        v, j = self.index[k]
        video = self.videos[v]
        n = len(video.frames)
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, k)) % 2**63)
        i = int(torch.randint(0, n - 1, (1,), generator=generator))
        i += i >= j  # any frame but the target
        poses = self.pose_cache(v)
        window = np.asarray(poses[self.numerics.pose_window(j, n, self.num_pose_frames)], np.float32)
        target = self.frame(video, j)
        if self.crop is not None:
            box = self.crop.sample(generator)
            target, window = crop_image(target, box), crop_pose(window, box)
        centre = self.num_pose_frames // 2  # the window's own window is itself
        pose = self.numerics.pose_condition(
            torch.from_numpy(window), [centre], self.latent_size, self.num_pose_frames
        )
        return {
            "subject": torch.from_numpy(self.frame(video, i)),
            "target": torch.from_numpy(target),
            "pose": pose[0],
        }

    def frame(self, video: Video, index: int) -> np.ndarray:
        return fit_image(read_image(video.frames[index]), self.height, self.width)

    def pose_cache(self, v: int) -> np.ndarray:
        """Canvas-fitted poses of video ``v`` at 1/4 resolution (N, 2, H/4, W/4), memory-mapped."""
        if v not in self._poses:
            self._poses[v] = _load_pose_cache(self.videos[v], self.root / CACHE_DIR, self.height, self.width)
        return self._poses[v]


def _load_pose_cache(video: Video, cache_dir: Path, height: int, width: int) -> np.ndarray:
    path = cache_dir / f"{video.name}-{height}x{width}.npy"
    source = video.folder / POSE_FILE
    if not path.is_file() or path.stat().st_mtime < source.stat().st_mtime:
        poses = _fitted_poses(video, height, width)
        try:
            with atomic_file(path) as tmp:
                np.save(tmp, poses)
        except OSError:  # a read-only dataset: keep them in memory instead
            return poses
    return np.load(path, mmap_mode="r")


def video_poses(video: Video) -> PoseSequence:
    """A dataset video's pose file, checked to hold one pose frame per image."""
    try:
        sequence = PoseSequence.load(video.folder / POSE_FILE)
    except PoseFileError as e:
        raise ValueError(f"{video.folder}: {e}") from e
    if len(sequence) != len(video.frames):
        raise ValueError(
            f"{video.folder}: {POSE_FILE} has {len(sequence)} pose frames for {len(video.frames)} images; "
            "they must match one to one (re-run `dreampose prepare-dataset`)"
        )
    return sequence


def _fitted_poses(video: Video, height: int, width: int) -> np.ndarray:
    sequence = video_poses(video)
    first = cv2.imread(str(video.frames[0]), cv2.IMREAD_UNCHANGED)
    if (
        first is not None
        and abs((first.shape[1] / first.shape[0]) / (sequence.width / sequence.height) - 1) > 0.02
    ):
        raise ValueError(
            f"{video.folder}: frames are {first.shape[1]} x {first.shape[0]} but poses are "
            f"{sequence.width} x {sequence.height}; the poses were not made from these frames"
        )
    small_h, small_w = height // POSE_CACHE_STRIDE, width // POSE_CACHE_STRIDE
    uv, _, _ = fit_pose(sequence.uv, None, height, width)
    # every 4th pixel: exactly what nearest-neighbour resizing to 1/4 picks
    return np.ascontiguousarray(uv[:, :, ::POSE_CACHE_STRIDE, ::POSE_CACHE_STRIDE][:, :, :small_h, :small_w])


def collate(items: list[dict]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}
