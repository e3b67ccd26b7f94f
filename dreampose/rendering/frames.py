"""The render loop: a photo and poses to frames, as a stream of events, shared by every caller.

`dreampose preview`/`render`, the app, evaluation and multi-GPU rendering iterate
:func:`stream_frames` (or :func:`stream_preview`), so they cannot disagree about defaults,
canvas placement, progress, cancelling or what happens on failure: every finished frame is
handed out (:class:`~dreampose.model.events.FrameDone`) as soon as it exists, progress comes
after every denoising step, and a render that stops early (cancelled, failed) keeps what it
finished. :func:`render_frames` and :func:`preview_frame` run a stream to its result.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from dreampose.model.events import Event, Finished, FrameDone, Progress, result_of
from dreampose.rendering.settings import FAST_PREVIEW, RenderSettings
from pose_extraction.pose_sequence import PoseSequence


class RenderCancelled(Exception):
    """A preview or grid was cancelled: a partial one is of no use."""


@dataclass
class RenderResult:
    """The frames a render finished, in order, and how it ended."""

    frames: list[np.ndarray] = field(default_factory=list)  # RGB uint8 (H, W, 3)
    frame_indices: list[int] = field(default_factory=list)
    cancelled: bool = False
    sound: bool = False  # the video carries the driving video's sound
    sound_note: str = ""  # why it does not, when a soundtrack was given

    def keep(self, frame: FrameDone) -> None:
        self.frame_indices.append(frame.index)
        self.frames.append(frame.image)


def stream_frames(
    pipe,
    image,
    poses: PoseSequence,
    settings: RenderSettings = RenderSettings(),
    frames: list[int] | None = None,
    cancel: threading.Event | None = None,
    prepared=None,
) -> Iterator[Event]:
    """Render ``frames`` of ``poses`` (default: all): :class:`Progress` after every denoising
    step, :class:`FrameDone` for each finished frame, then :class:`Finished` with the
    :class:`RenderResult`.

    Setting ``cancel`` stops within one step, and the result says ``cancelled``. Other
    errors propagate, after every frame finished before them was handed out. ``prepared``
    (``pipe.prepare(image, poses, frames, height, width)``) is used instead of encoding
    ``image`` and placing ``poses`` again.
    """
    import torch

    from dreampose.runtime.speed import auto_frame_batch

    result = RenderResult()
    num_frames = len(poses) if prepared is None else prepared.num_frames
    selected = list(range(num_frames)) if frames is None else list(frames)
    events = pipe.stream(
        image,
        poses,
        image_guidance_scale=settings.image_guidance_scale,
        pose_guidance_scale=settings.pose_guidance_scale,
        num_inference_steps=settings.num_inference_steps,
        scheduler=settings.scheduler,
        frames=selected,
        height=settings.height,
        width=settings.width,
        frame_batch_size=settings.frame_batch_size or auto_frame_batch(pipe, settings.height, settings.width),
        generator=torch.Generator().manual_seed(settings.seed),
        same_noise_for_all_frames=not settings.noise_per_frame,
        turbo=settings.turbo,
        contrast_stretch=settings.contrast_stretch,
        prepared=prepared,
    )
    try:
        for event in events:
            if isinstance(event, FrameDone):
                result.keep(event)
            yield event
            if cancel is not None and cancel.is_set() and len(result.frames) < len(selected):
                result.cancelled = True
                break
    finally:
        events.close()  # a consumer that stopped listening stops the pipeline too
    yield Finished(result)


def render_frames(
    pipe, image, poses: PoseSequence, settings=RenderSettings(), frames=None, cancel=None, prepared=None
):
    """:func:`stream_frames` run to its end: the :class:`RenderResult`."""
    return result_of(stream_frames(pipe, image, poses, settings, frames, cancel, prepared))


def stream_preview(
    pipe,
    image,
    poses: PoseSequence,
    frame: int,
    settings: RenderSettings = FAST_PREVIEW,
    cancel: threading.Event | None = None,
    prepared=None,
) -> Iterator[Event]:
    """One frame (the fast preset by default): :class:`Progress`, then :class:`Finished` with
    the RGB uint8 frame. Raises :class:`RenderCancelled` when ``cancel`` is set first.
    ``prepared``: as for :func:`stream_frames`."""
    single = replace(settings, frame_batch_size=1)
    for event in stream_frames(pipe, image, poses, single, frames=[frame], cancel=cancel, prepared=prepared):
        if isinstance(event, Finished):
            if event.result.cancelled:
                raise RenderCancelled
            yield Finished(event.result.frames[0])
        elif isinstance(event, Progress):
            yield event


def preview_frame(
    pipe, image, poses: PoseSequence, frame: int, settings=FAST_PREVIEW, cancel=None, prepared=None
):
    """:func:`stream_preview` run to its end: the frame."""
    return result_of(stream_preview(pipe, image, poses, frame, settings, cancel, prepared))


def finished_frames(events: Iterable[Event]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) of each finished frame of a stream, for callers that only keep frames
    (multi-GPU chunks); an error after some frames comes after those frames."""
    for event in events:
        if isinstance(event, FrameDone):
            yield event.index, event.image
