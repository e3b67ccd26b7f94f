"""The one code path from a photo and poses to frames and videos, shared by the CLI and the app.

`dreampose preview`/`render` and the Gradio app call these functions, so the two can never
disagree about defaults, canvas placement, progress, cancelling or what happens on failure:
every finished frame is handed out as soon as it exists, and a render that stops early
(cancelled, failed, out of disk) keeps what it finished.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dreampose.base import paper
from dreampose.base.files import writable_file, writable_folder
from dreampose.model.checks import check_guidance, check_interval, check_seed, check_size, check_steps
from dreampose.model.schedulers import SAMPLERS, describe_samplers
from pose_extraction.pose_sequence import PoseSequence


@dataclass(frozen=True)
class RenderSettings:
    """How to sample. Defaults are the paper's and the official README's; the ``help``
    metadata makes the command-line options (``dreampose.cli.options``)."""

    image_guidance_scale: float = field(
        default=paper.IMAGE_GUIDANCE,
        metadata={"flag": "--image-guidance", "help": "sI, image guidance (eq. 4)"},
    )
    pose_guidance_scale: float = field(
        default=paper.POSE_GUIDANCE, metadata={"flag": "--pose-guidance", "help": "sP, pose guidance (eq. 4)"}
    )
    num_inference_steps: int = field(
        default=paper.INFERENCE_STEPS, metadata={"flag": "--steps", "help": "denoising steps"}
    )
    scheduler: str = field(
        default=paper.SAMPLER,
        metadata={"help": f"sampler ({describe_samplers()})", "choices": tuple(SAMPLERS)},
    )
    seed: int = field(default=0, metadata={"help": "random seed (0 to 2**63 - 1)"})
    height: int = field(default=paper.HEIGHT, metadata={"help": "output height, a multiple of 64"})
    width: int = field(default=paper.WIDTH, metadata={"help": "output width, a multiple of 64"})
    frame_batch_size: int | None = field(
        default=None,
        metadata={
            "flag": "--batch-frames",
            "help": "frames sampled together in one UNet batch (default: 1 on the CPU, "
            "as many as fit in the free memory of a GPU)",
        },
    )
    turbo: int | None = field(
        default=None,
        metadata={
            "metavar": "N",
            "help": "run the whole UNet only every N-th step and reuse its deep features in between "
            "(DeepCache: about 2x faster at N=3, slightly different frames; README). Default: off",
        },
    )
    noise_per_frame: bool = field(
        default=False,
        metadata={
            "help": "draw new initial noise for every frame (default: all frames share it, for consistency)"
        },
    )
    contrast_stretch: bool = field(
        default=True,
        metadata={
            "flag": "--no-contrast-stretch",
            "help": "models with official numerics: save frames as decoded, without the official code's "
            "per-frame min-max contrast stretch (done by default, as the official test.py does)",
        },
    )

    def __post_init__(self) -> None:
        check_guidance("image_guidance_scale", self.image_guidance_scale)
        check_guidance("pose_guidance_scale", self.pose_guidance_scale)
        check_steps(self.num_inference_steps)
        check_size(self.height, self.width)
        if self.frame_batch_size is not None and (
            not isinstance(self.frame_batch_size, int) or self.frame_batch_size < 1
        ):
            raise ValueError(f"frame_batch_size must be at least 1; got {self.frame_batch_size}")
        check_seed(self.seed)
        if self.turbo is not None:
            check_interval(self.turbo)
        if self.scheduler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.scheduler!r}; choose one of {', '.join(SAMPLERS)}")


# 25 DPM-Solver++ steps: the fast preset for previews and guidance grids.
FAST_PREVIEW = RenderSettings(num_inference_steps=25, scheduler="dpm++")


class RenderCancelled(Exception):
    """Raised inside the sampler when the caller asked to stop."""


@dataclass
class RenderResult:
    frames: list[np.ndarray] = field(default_factory=list)  # RGB uint8 (H, W, 3)
    frame_indices: list[int] = field(default_factory=list)
    cancelled: bool = False
    sound: bool = False  # the video carries the driving video's sound
    sound_note: str = ""  # why it does not, when a soundtrack was given


@dataclass(frozen=True)
class Soundtrack:
    """The driving video whose sound goes with the poses: pose frame ``i`` shows its instant
    ``start + i / poses.fps`` (``start``: where the poses begin in it, in seconds)."""

    video: Path
    start: float = 0.0


def steps_per_frame(pipe, settings: RenderSettings) -> int:
    """Denoising steps one frame really takes: PNDM, for one, runs one more than asked."""
    make = getattr(pipe, "make_scheduler", None)
    if make is None:
        return settings.num_inference_steps
    scheduler = make(settings.scheduler)
    scheduler.set_timesteps(settings.num_inference_steps)
    return len(scheduler.timesteps)


# --------------------------------------------------------------------------- frames
def render_frames(
    pipe,
    image,
    poses: PoseSequence,
    settings: RenderSettings = RenderSettings(),
    frames: list[int] | None = None,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """Render ``frames`` of ``poses``; keep every finished frame even if a later one fails.

    ``on_frame(index, frame)`` runs as each frame finishes; ``on_step(done, total)`` counts
    denoising steps over the whole job; setting ``cancel`` stops within one step and
    returns what finished (``cancelled=True``). Other errors propagate, but frames handed
    to ``on_frame`` before them are the caller's to keep.
    """
    import torch

    from dreampose.runtime.speed import auto_frame_batch

    selected = list(range(len(poses))) if frames is None else list(frames)
    per_frame = steps_per_frame(pipe, settings)
    total_steps = len(selected) * per_frame
    result = RenderResult()

    def step_callback(_pipe, step, _t, kwargs):
        if cancel is not None and cancel.is_set():
            raise RenderCancelled
        if on_step is not None:
            done = len(result.frames) * per_frame
            on_step(min(done + (step + 1) * len(kwargs["frame_indices"]), total_steps), total_steps)
        return None

    try:
        for batch_indices, batch in pipe.iter_frames(
            image,
            poses,
            image_guidance_scale=settings.image_guidance_scale,
            pose_guidance_scale=settings.pose_guidance_scale,
            num_inference_steps=settings.num_inference_steps,
            scheduler=settings.scheduler,
            frames=selected,
            height=settings.height,
            width=settings.width,
            frame_batch_size=settings.frame_batch_size
            or auto_frame_batch(pipe, settings.height, settings.width),
            generator=torch.Generator().manual_seed(settings.seed),
            same_noise_for_all_frames=not settings.noise_per_frame,
            callback_on_step_end=step_callback,
            turbo=settings.turbo,
            contrast_stretch=settings.contrast_stretch,
        ):
            for index, frame in zip(batch_indices, batch, strict=True):
                result.frames.append(frame)
                result.frame_indices.append(index)
                if on_frame is not None:
                    on_frame(index, frame)
    except RenderCancelled:
        result.cancelled = True
    return result


def preview_frame(
    pipe,
    image,
    poses: PoseSequence,
    frame: int,
    settings: RenderSettings = FAST_PREVIEW,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
):
    """One frame as an RGB uint8 array (the fast preset by default). Raises ``RenderCancelled``
    when ``cancel`` is set before it finished."""
    single = replace(settings, frame_batch_size=1)
    result = render_frames(pipe, image, poses, single, frames=[frame], on_step=on_step, cancel=cancel)
    if result.cancelled:
        raise RenderCancelled
    return result.frames[0]


# --------------------------------------------------------------------------- videos
def render_video(
    pipe,
    image,
    poses: PoseSequence,
    output: str | os.PathLike,
    settings: RenderSettings = RenderSettings(),
    frames: list[int] | None = None,
    fps: float | None = None,
    frames_dir: str | os.PathLike | None = None,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    sound: Soundtrack | None = None,
) -> tuple[Path, RenderResult]:
    """Render to an H.264 mp4 with one video frame per pose frame, at the poses' fps.

    The output location is checked before any frame is rendered. Finished frames are also
    written as PNGs to ``frames_dir`` when given. If the render is cancelled or fails after
    some frames, those frames are written to ``<output>.partial.mp4`` (and the error
    re-raised); if the video itself cannot be written, the frames are saved as PNGs and
    the error says where. No finished frame is lost. With ``sound``, the video (complete or
    cancelled) gets the driving video's sound for the frames it shows (:func:`add_sound`).
    """
    output = writable_file(output, suffixes=(".mp4",))
    fps = fps or poses.fps
    save_png = _png_writer(frames_dir)
    kept = RenderResult()

    def keep(index, frame):
        kept.frame_indices.append(index)
        kept.frames.append(frame)
        save_png(index, frame)
        if on_frame is not None:
            on_frame(index, frame)

    try:
        result = render_frames(pipe, image, poses, settings, frames, keep, on_step, cancel)
    except BaseException:
        if kept.frames:
            _write_or_rescue(kept, partial_path(output), fps, frames_dir)
        raise
    if result.cancelled:
        if kept.frames:
            _write_or_rescue(kept, partial_path(output), fps, frames_dir)
            add_sound(partial_path(output), result, sound, poses.fps, fps)
        return partial_path(output), result
    _write_or_rescue(result, output, fps, frames_dir)
    add_sound(output, result, sound, poses.fps, fps)
    return output, result


def add_sound(
    video: Path, result: RenderResult, sound: Soundtrack | None, pose_fps: float, fps: float
) -> None:
    """Give ``video`` the part of the soundtrack its frames show; say why not in ``result.sound_note``.

    The sound stays in sync only when the video plays at the poses' own rate and its frames
    are consecutive pose frames; otherwise the video stays silent. A failure to add the
    sound never costs the video: it is kept silent, and the note says why.
    """
    import logging

    from dreampose.media.video_writer import add_audio

    if sound is None or not result.frame_indices:
        return
    first = result.frame_indices[0]
    if result.frame_indices != list(range(first, first + len(result.frame_indices))):
        result.sound_note = "the frames are not consecutive, so no sound could follow them"
        return
    if abs(fps - pose_fps) > 1e-6:
        result.sound_note = f"the video plays at {fps:g} fps, not at the poses' {pose_fps:g} fps, so the sound would not match"
        return
    try:
        result.sound = add_audio(
            video, sound.video, sound.start + first / pose_fps, len(result.frame_indices) / pose_fps
        )
        if not result.sound:
            result.sound_note = f"{Path(sound.video).name} has no sound"
    except (OSError, ValueError) as e:
        logging.getLogger(__name__).warning("no sound: %s", e)
        result.sound_note = f"the sound of {Path(sound.video).name} could not be added ({e})"


def partial_path(output: Path) -> Path:
    return output.with_name(output.stem + ".partial" + output.suffix)


class VideoWriteError(OSError):
    """The video could not be written; the message says where the frames were saved."""


def _write_or_rescue(result: RenderResult, output: Path, fps: float, frames_dir) -> None:
    """Write the mp4; if that fails (disk full, output removed), keep the frames as PNGs."""
    from dreampose.media.video_writer import write_mp4

    try:
        write_mp4(result.frames, output, fps)
    except OSError as e:
        saved = frames_dir if frames_dir is not None else _rescue_pngs(result, output)
        raise VideoWriteError(
            f"could not write {output.name} ({e.strerror or e}); the {len(result.frames)} rendered "
            f"frames are saved as PNGs in {saved}"
        ) from e


def _rescue_pngs(result: RenderResult, output: Path) -> Path:
    """PNGs beside the output, else in the temporary folder (the output's disk may be full)."""
    import tempfile

    for folder in (
        output.with_name(output.stem + "_frames"),
        Path(tempfile.mkdtemp(prefix="dreampose-frames-")),
    ):
        try:
            save_pngs(folder, result.frame_indices, result.frames)
            return folder
        except OSError:
            continue
    raise OSError("no folder could take the rendered frames")


def _png_writer(frames_dir):
    if frames_dir is None:
        return lambda index, frame: None
    folder = writable_folder(frames_dir)  # read-only or full: refused before the first frame
    return lambda index, frame: save_pngs(folder, [index], [frame])


def save_pngs(frames_dir, indices, frames) -> None:
    """Write frames as ``frame_00012.png`` (numbered by pose frame) into ``frames_dir``."""
    from PIL import Image

    folder = Path(frames_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in zip(indices, frames, strict=True):
        Image.fromarray(frame).save(folder / f"frame_{index:05d}.png")


# --------------------------------------------------------------------------- guidance grid
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
    if not values or any(not 0 <= v <= 30 for v in values):
        raise ValueError(f"{what} must be one or more numbers from 0 to 30, like 4, 8, 12")
    return values


def guidance_grid(
    pipe,
    image,
    poses: PoseSequence,
    frame: int,
    image_scales: list[float],
    pose_scales: list[float],
    settings: RenderSettings = FAST_PREVIEW,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> GuidanceGrid:
    """Render ``frame`` over an sI x sP grid (same seed everywhere) so weights can be picked by eye.

    Rows are image guidance (sI), columns pose guidance (sP). Raises ``RenderCancelled``
    when ``cancel`` is set, since a partial grid is of no use.
    """
    if not image_scales or not pose_scales:
        raise ValueError("the guidance grid needs at least one image and one pose guidance value")
    per_cell = steps_per_frame(pipe, settings)
    total = len(image_scales) * len(pose_scales) * per_cell
    rows: list[list[np.ndarray]] = []
    for i, s_i in enumerate(image_scales):
        row = []
        for j, s_p in enumerate(pose_scales):
            offset = (i * len(pose_scales) + j) * per_cell

            def cell_step(done, _total, offset=offset):
                if on_step is not None:
                    on_step(offset + done, total)

            cell = replace(settings, image_guidance_scale=s_i, pose_guidance_scale=s_p, frame_batch_size=1)
            result = render_frames(pipe, image, poses, cell, [frame], on_step=cell_step, cancel=cancel)
            if result.cancelled:
                raise RenderCancelled
            row.append(result.frames[0])
        rows.append(row)
    mosaic, layout = grid_mosaic(rows, image_scales, pose_scales)
    return GuidanceGrid(mosaic, rows, list(image_scales), list(pose_scales), layout)


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
