"""What a render reports, as one stream of typed events from the pipeline's frame loop up to
the CLI and the app.

``DreamPosePipeline.stream`` yields :class:`Progress` after every denoising step and
:class:`FrameDone` as each frame is decoded; the rendering functions
(``dreampose.rendering``) pass them on and end their streams with :class:`Finished`, which
carries their result. A consumer that stops iterating (or closes the stream) stops the
render within one step; the frames handed out before are the consumer's to keep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of work (denoising steps, over the whole job); ``text``
    says what is happening, for people (the app's steps fill it in)."""

    done: int
    total: int
    text: str = ""


@dataclass(frozen=True)
class FrameDone:
    """Pose frame ``index`` is rendered: ``image`` is RGB uint8 (H, W, 3)."""

    index: int
    image: np.ndarray


@dataclass(frozen=True)
class Finished(Generic[T]):
    """The last event of a stream: what the function made (a result, a picture, a path)."""

    result: T


Event = Progress | FrameDone | Finished


def result_of(events: Iterable[Event], on_event: Callable[[Event], None] | None = None):
    """Run a stream to its end and return what its :class:`Finished` carries; ``on_event``
    sees every event before (progress bars, frames to keep)."""
    finished = None
    for event in events:
        if on_event is not None:
            on_event(event)
        if isinstance(event, Finished):
            finished = event
    if finished is None:
        raise RuntimeError("the stream ended without a result")
    return finished.result
