"""Rendering one video on several GPUs (or processes): split the frames, stitch the result.

Every frame of a DreamPose render is sampled independently, and its initial noise depends
only on the seed (and, with per-frame noise, its own index), never on which frames share
its call. So N processes can each render a contiguous chunk of the frame list and the
stitched video is identical to a one-process render.

Launch (one process per GPU; each sees ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``)::

    accelerate launch --multi_gpu --num_processes 4 -m dreampose render ...
    torchrun --nproc_per_node 4 -m dreampose render ...      # same thing, also on CPUs

(``accelerate launch --cpu --num_processes 2`` starts a single process unless given an MPI
hostfile; use torchrun for several CPU processes.)

Process 0 receives every frame in order (``gather_frames``) and writes the outputs; the
others return ``None``. A failure in one process does not hang the others: every process
always reaches the gather, and process 0 learns which frames are missing and why.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "Shard",
    "StitchedFrames",
    "split_frames",
    "world",
    "is_distributed",
    "init_distributed",
    "local_device",
    "gather_frames",
    "render_sharded",
    "chunk_renderer",
]

# Given this process's frame indices, yields (frame index, RGB uint8 frame) as each finishes.
RenderChunk = Callable[[list[int]], Iterable[tuple[int, np.ndarray]]]


def split_frames(frames: Sequence[int], rank: int, world_size: int) -> list[int]:
    """The contiguous chunk of ``frames`` that process ``rank`` of ``world_size`` renders.

    Chunks differ in size by at most one frame, the first ``len(frames) % world_size``
    processes taking the extra one; with more processes than frames the last ones get none.
    Contiguous (not strided) chunks keep each process's frames in one run, so its partial
    output is a playable stretch of video.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1; got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}; got {rank}")
    base, extra = divmod(len(frames), world_size)
    start = rank * base + min(rank, extra)
    size = base + (1 if rank < extra else 0)
    return list(frames[start : start + size])


def world() -> tuple[int, int]:
    """(rank, world size) of this process, from the launcher's environment; (0, 1) alone."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_distributed() -> bool:
    """True when launched as one of several processes (accelerate launch, torchrun)."""
    return world()[1] > 1


def init_distributed() -> tuple[int, int]:
    """Join the launcher's process group (NCCL on GPUs, gloo on CPUs); return (rank, world).

    Reads the environment that ``accelerate launch`` and ``torchrun`` both set (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``) and binds each process to its
    own GPU. An existing process group (e.g. made by accelerate) is reused; a lone process
    is left alone. (accelerate's PartialState is not used: on a CPU-only machine launched
    without ``ACCELERATE_USE_CPU`` it reports every process as process 0 of 1.)
    """
    if not is_distributed():
        return 0, 1
    if not torch.distributed.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_device())
            torch.distributed.init_process_group("nccl", device_id=local_device())
        else:
            torch.distributed.init_process_group("gloo")
    return world()


def local_device() -> torch.device:
    """This process's GPU (``cuda:LOCAL_RANK``), or the CPU when there is no GPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


@dataclass
class Shard:
    """What one process rendered: frame indices, RGB uint8 frames, and its error if any."""

    rank: int
    frame_indices: list[int]
    frames: list[np.ndarray]
    error: str | None = None


@dataclass
class StitchedFrames:
    """Every process's frames in frame-list order, and the errors of processes that failed."""

    frame_indices: list[int] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)  # rank -> message

    @property
    def complete(self) -> bool:
        return not self.errors


def stitch(shards: Sequence[Shard], frames: Sequence[int]) -> StitchedFrames:
    """Order the shards' frames as in ``frames`` (the full frame list) and collect errors."""
    by_index = {}
    errors = {}
    for shard in shards:
        if shard.error is not None:
            errors[shard.rank] = shard.error
        by_index.update(zip(shard.frame_indices, shard.frames, strict=True))
    unknown = set(by_index) - set(frames)
    if unknown:
        raise ValueError(f"processes returned frames that were not asked for: {sorted(unknown)[:5]}")
    present = [i for i in frames if i in by_index]
    return StitchedFrames(present, [by_index[i] for i in present], errors)


def gather_frames(shard: Shard, frames: Sequence[int]) -> StitchedFrames | None:
    """Send every process's shard to process 0 and stitch them there; others get None.

    Only process 0 receives the frames (``gather_object``, not all-gather), so memory on
    the other processes stays at their own chunk.
    """
    rank, world_size = world()
    if world_size == 1:
        return stitch([shard], frames)
    received: list[Shard] | None = [None] * world_size if rank == 0 else None  # type: ignore[list-item]
    torch.distributed.gather_object(shard, received, dst=0)
    return stitch(received, frames) if rank == 0 else None


def render_sharded(frames: Sequence[int], render_chunk: RenderChunk) -> StitchedFrames | None:
    """Render this process's chunk of ``frames`` with ``render_chunk`` and gather on process 0.

    ``render_chunk(chunk)`` yields (frame index, frame) as each frame finishes (as
    :func:`chunk_renderer` does), so frames finished before an error are kept. An exception is reported to process 0 (in
    ``.errors``) instead of leaving the other processes waiting forever at the gather; a
    lone process re-raises it. Returns the stitched frames on process 0, ``None`` elsewhere.
    """
    rank, world_size = init_distributed()
    shard = Shard(rank, [], [])
    try:
        for index, frame in render_chunk(split_frames(frames, rank, world_size)):
            shard.frame_indices.append(int(index))
            shard.frames.append(frame)
    except Exception as e:  # reported, not swallowed: process 0 sees it in .errors
        if world_size == 1:
            raise
        shard.error = f"{type(e).__name__}: {e}"
    return gather_frames(shard, frames)


def chunk_renderer(pipe, image, poses, settings) -> RenderChunk:
    """The ``render_chunk`` of `dreampose render`: the finished frames of a process's chunk
    (none for an empty one), an error after the frames finished before it."""
    from dreampose.rendering.frames import finished_frames, stream_frames

    def render_chunk(chunk: list[int]) -> Iterable[tuple[int, np.ndarray]]:
        if chunk:
            yield from finished_frames(stream_frames(pipe, image, poses, settings, frames=chunk))

    return render_chunk
