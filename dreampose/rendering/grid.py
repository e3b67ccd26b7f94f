"""The guidance grid: one frame rendered over an sI x sP grid of eq. 4's weights, labelled, so
weights can be picked by eye (and a click on a cell mapped back to its weights)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from dreampose.model.checks import MAX_GUIDANCE
from dreampose.model.events import Event, Finished, Progress, result_of
from dreampose.rendering.frames import stream_preview
from dreampose.rendering.settings import FAST_PREVIEW, RenderSettings
from pose_extraction.pose_sequence import PoseSequence

# The grid the app starts with: rows sI, columns sP, around the paper's sI 8 and sP 3.
GRID_IMAGE_SCALES = (4.0, 8.0, 12.0)
GRID_POSE_SCALES = (1.0, 3.0, 5.0)


def scales_text(scales) -> str:
    """(4.0, 8.0, 12.0) -> '4, 8, 12': how the page shows and takes grid values."""
    return ", ".join(f"{v:g}" for v in scales)


@dataclass(frozen=True)
class GridLayout:
    """Where the cells of a guidance-grid mosaic are: a header row of sP labels on top, a
    column of sI labels on the left, then ``rows`` x ``cols`` cells ``gap`` pixels apart."""

    rows: int
    cols: int
    cell_height: int
    cell_width: int
    top: int  # height of the sP header
    left: int  # width of the sI label column
    gap: int = 4

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the mosaic."""
        return (
            self.top + self.rows * (self.cell_height + self.gap),
            self.left + self.cols * (self.cell_width + self.gap),
        )

    def origin(self, i: int, j: int) -> tuple[int, int]:
        """(y, x) of the top-left pixel of cell (row ``i``, column ``j``)."""
        return self.top + self.gap + i * (self.cell_height + self.gap), self.left + self.gap + j * (
            self.cell_width + self.gap
        )

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, column) of the cell under pixel (x, y), or None for labels and gaps."""
        i = int((y - self.top - self.gap) // (self.cell_height + self.gap))
        j = int((x - self.left - self.gap) // (self.cell_width + self.gap))
        if not (0 <= i < self.rows and 0 <= j < self.cols):
            return None
        y0, x0 = self.origin(i, j)
        inside = y0 <= y < y0 + self.cell_height and x0 <= x < x0 + self.cell_width
        return (i, j) if inside else None


@dataclass
class GuidanceGrid:
    """One frame rendered for every (sI, sP) pair: ``frames[i][j]`` has
    ``image_scales[i]`` and ``pose_scales[j]``; ``image`` is the labelled mosaic."""

    image: np.ndarray
    frames: list[list[np.ndarray]]
    image_scales: list[float]
    pose_scales: list[float]
    layout: GridLayout | None = None

    def scales_at(self, x: float, y: float) -> tuple[float, float] | None:
        """(sI, sP) of the cell under pixel (x, y) of ``image``, or None off the cells."""
        cell = self.layout.cell_at(x, y) if self.layout is not None else None
        return None if cell is None else (self.image_scales[cell[0]], self.pose_scales[cell[1]])


def parse_scales(text: str, what: str) -> list[float]:
    """'4, 8, 12' -> [4.0, 8.0, 12.0]; a ValueError naming ``what`` otherwise."""
    try:
        values = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas, like 4, 8, 12") from None
    if not values or any(not 0 <= v <= MAX_GUIDANCE for v in values):
        raise ValueError(f"{what} must be one or more numbers from 0 to {MAX_GUIDANCE:g}, like 4, 8, 12")
    return values


def stream_grid(
    pipe,
    image,
    poses: PoseSequence,
    frame: int,
    image_scales: list[float],
    pose_scales: list[float],
    settings: RenderSettings = FAST_PREVIEW,
    cancel: threading.Event | None = None,
    prepared=None,
) -> Iterator[Event]:
    """Render ``frame`` over an sI x sP grid (same seed everywhere) so weights can be picked by
    eye: :class:`Progress` over all cells, then :class:`Finished` with the :class:`GuidanceGrid`.

    Rows are image guidance (sI), columns pose guidance (sP). Raises ``RenderCancelled``
    when ``cancel`` is set, since a partial grid is of no use. The photo is encoded once for
    all cells (or not at all, given ``prepared``: ``pipe.prepare``'s inputs for ``frame``).
    """
    if not image_scales or not pose_scales:
        raise ValueError("the guidance grid needs at least one image and one pose guidance value")
    if prepared is None:
        prepared = pipe.prepare(image, poses, [frame], settings.height, settings.width)
    cells = len(image_scales) * len(pose_scales)
    rows: list[list[np.ndarray]] = []
    for i, s_i in enumerate(image_scales):
        row = []
        for j, s_p in enumerate(pose_scales):
            cell = replace(settings, image_guidance_scale=s_i, pose_guidance_scale=s_p)
            before = i * len(pose_scales) + j  # cells finished
            for event in stream_preview(pipe, image, poses, frame, cell, cancel, prepared):
                if isinstance(event, Progress):  # one cell's steps, as a share of the whole grid
                    yield Progress(before * event.total + event.done, cells * event.total)
                else:
                    row.append(event.result)
        rows.append(row)
    mosaic, layout = grid_mosaic(rows, image_scales, pose_scales)
    yield Finished(GuidanceGrid(mosaic, rows, list(image_scales), list(pose_scales), layout))


def guidance_grid(
    pipe,
    image,
    poses: PoseSequence,
    frame: int,
    image_scales,
    pose_scales,
    settings=FAST_PREVIEW,
    cancel=None,
    prepared=None,
):
    """:func:`stream_grid` run to its end: the :class:`GuidanceGrid`."""
    return result_of(
        stream_grid(pipe, image, poses, frame, image_scales, pose_scales, settings, cancel, prepared)
    )


def grid_mosaic(rows: list[list[np.ndarray]], image_scales, pose_scales) -> tuple[np.ndarray, GridLayout]:
    """Tile the frames under a header of sP values, beside a column of sI values.

    The labels sit outside the cells, in white on dark grey, sized from the cell so they stay
    readable from the 64-pixel cells of the tiny model to the paper's 512 x 640.
    """
    import cv2

    h, w = rows[0][0].shape[:2]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, float(np.clip(w / 200, 0.55, 1.6))
    thickness = 1 if scale < 0.9 else 2
    texts_i = [f"sI {v:g}" for v in image_scales]
    texts_p = [f"sP {v:g}" for v in pose_scales]
    (_, text_h), baseline = cv2.getTextSize("sP 0", font, scale, thickness)
    widest = max(cv2.getTextSize(t, font, scale, thickness)[0][0] for t in texts_i)
    layout = GridLayout(len(rows), len(rows[0]), h, w, top=text_h + baseline + 10, left=widest + 12, gap=4)
    mosaic = np.full((*layout.size, 3), 32, np.uint8)
    white = (255, 255, 255)
    for j, text in enumerate(texts_p):
        x0 = layout.origin(0, j)[1]
        text_w = cv2.getTextSize(text, font, scale, thickness)[0][0]
        org = (x0 + max(0, (w - text_w) // 2), layout.top - baseline - 3)
        cv2.putText(mosaic, text, org, font, scale, white, thickness, cv2.LINE_AA)
    for i, (text, row) in enumerate(zip(texts_i, rows, strict=True)):
        y0 = layout.origin(i, 0)[0]
        cv2.putText(mosaic, text, (6, y0 + (h + text_h) // 2), font, scale, white, thickness, cv2.LINE_AA)
        for j, frame in enumerate(row):
            y, x = layout.origin(i, j)
            mosaic[y : y + h, x : x + w] = frame
    return mosaic, layout
