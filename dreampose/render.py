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

from dreampose import paper
from dreampose.files import writable_file
from dreampose.model.checks import check_guidance, check_size, check_steps
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
    frame_batch_size: int = field(
        default=1, metadata={"flag": "--batch-frames", "help": "frames sampled together in one UNet batch"}
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
        if not isinstance(self.frame_batch_size, int) or self.frame_batch_size < 1:
            raise ValueError(f"frame_batch_size must be at least 1; got {self.frame_batch_size}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"the seed must be a whole number from 0 to 2**63 - 1; got {self.seed}")
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

    selected = list(range(len(poses))) if frames is None else list(frames)
    total_steps = len(selected) * settings.num_inference_steps
    result = RenderResult()

    def step_callback(_pipe, step, _t, kwargs):
        if cancel is not None and cancel.is_set():
            raise RenderCancelled
        if on_step is not None:
            done = len(result.frames) * settings.num_inference_steps
            on_step(done + (step + 1) * len(kwargs["frame_indices"]), total_steps)
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
            frame_batch_size=settings.frame_batch_size,
            generator=torch.Generator().manual_seed(settings.seed),
            same_noise_for_all_frames=not settings.noise_per_frame,
            callback_on_step_end=step_callback,
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


def preview_frame(pipe, image, poses: PoseSequence, frame: int, settings: RenderSettings = FAST_PREVIEW):
    """One frame as an RGB uint8 array (the fast preset by default)."""
    result = render_frames(pipe, image, poses, replace(settings, frame_batch_size=1), frames=[frame])
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
) -> tuple[Path, RenderResult]:
    """Render to an H.264 mp4 with one video frame per pose frame, at the poses' fps.

    The output location is checked before any frame is rendered. Finished frames are also
    written as PNGs to ``frames_dir`` when given. If the render is cancelled or fails after
    some frames, those frames are written to ``<output>.partial.mp4`` (and the error
    re-raised); if the video itself cannot be written, the frames are saved as PNGs and
    the error says where. No finished frame is lost.
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
        return partial_path(output), result
    _write_or_rescue(result, output, fps, frames_dir)
    return output, result


def partial_path(output: Path) -> Path:
    return output.with_name(output.stem + ".partial" + output.suffix)


class VideoWriteError(OSError):
    """The video could not be written; the message says where the frames were saved."""


def _write_or_rescue(result: RenderResult, output: Path, fps: float, frames_dir) -> None:
    """Write the mp4; if that fails (disk full, output removed), keep the frames as PNGs."""
    from pose_extraction.video_writer import write_mp4

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
    folder = Path(frames_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return lambda index, frame: save_pngs(folder, [index], [frame])


def save_pngs(frames_dir, indices, frames) -> None:
    """Write frames as ``frame_00012.png`` (numbered by pose frame) into ``frames_dir``."""
    from PIL import Image

    folder = Path(frames_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in zip(indices, frames, strict=True):
        Image.fromarray(frame).save(folder / f"frame_{index:05d}.png")


# --------------------------------------------------------------------------- guidance grid
@dataclass
class GuidanceGrid:
    """One frame rendered for every (sI, sP) pair: ``frames[i][j]`` has
    ``image_scales[i]`` and ``pose_scales[j]``; ``image`` is the labelled mosaic."""

    image: np.ndarray
    frames: list[list[np.ndarray]]
    image_scales: list[float]
    pose_scales: list[float]


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
    cells = len(image_scales) * len(pose_scales)
    rows: list[list[np.ndarray]] = []
    for i, s_i in enumerate(image_scales):
        row = []
        for j, s_p in enumerate(pose_scales):
            offset = (i * len(pose_scales) + j) * settings.num_inference_steps

            def cell_step(done, _total, offset=offset):
                if on_step is not None:
                    on_step(offset + done, cells * settings.num_inference_steps)

            cell = replace(settings, image_guidance_scale=s_i, pose_guidance_scale=s_p, frame_batch_size=1)
            result = render_frames(pipe, image, poses, cell, [frame], on_step=cell_step, cancel=cancel)
            if result.cancelled:
                raise RenderCancelled
            row.append(result.frames[0])
        rows.append(row)
    return GuidanceGrid(
        grid_mosaic(rows, image_scales, pose_scales), rows, list(image_scales), list(pose_scales)
    )


def grid_mosaic(rows: list[list[np.ndarray]], image_scales, pose_scales) -> np.ndarray:
    """Tile the frames with a label "sI=.. sP=.." in each cell's corner."""
    import cv2

    h, w = rows[0][0].shape[:2]
    gap = 4
    mosaic = np.full((len(rows) * (h + gap) - gap, len(rows[0]) * (w + gap) - gap, 3), 32, np.uint8)
    scale = max(0.35, w / 400)
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            cell = np.ascontiguousarray(frame).copy()
            text = f"sI={image_scales[i]:g} sP={pose_scales[j]:g}"
            org = (3, int(12 * scale / 0.35))
            cv2.putText(cell, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(cell, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
            mosaic[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = cell
    return mosaic
