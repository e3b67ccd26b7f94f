"""The one code path from files to frames, shared by the CLI and the app.

`dreampose preview`/`render` and the Gradio app call these functions, so the two can never
disagree about defaults, device choice, canvas placement or what happens on failure.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from dreampose.files import writable_folder
from pose_extraction.pose_sequence import PoseSequence

log = logging.getLogger(__name__)

TINY_MODEL = "tiny"  # --model tiny: the random test model, built in memory


@dataclass(frozen=True)
class RenderSettings:
    """How to sample. Defaults are the paper's and the official README's."""

    image_guidance_scale: float = 8.0  # sI
    pose_guidance_scale: float = 3.0  # sP
    num_inference_steps: int = 100
    scheduler: str = "pndm"
    seed: int = 0
    height: int = 640
    width: int = 512
    frame_batch_size: int = 1
    same_noise_for_all_frames: bool = True
    turbo: int | None = None  # DeepCache interval (dreampose/turbo.py); None = the plain sampler

    def with_(self, **changes) -> RenderSettings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# 25 DPM-Solver++ steps: the fast preset for single-frame previews and guidance grids.
FAST_PREVIEW = RenderSettings(num_inference_steps=25, scheduler="dpm++")


class RenderCancelled(Exception):
    """Raised inside the sampler when the caller asked to stop."""


@dataclass
class RenderResult:
    frames: list[np.ndarray] = field(default_factory=list)  # RGB uint8 (H, W, 3)
    frame_indices: list[int] = field(default_factory=list)
    cancelled: bool = False

    @property
    def complete(self) -> bool:
        return not self.cancelled


# --------------------------------------------------------------------------- models
def pick_device(device: str | None = None) -> tuple[torch.device, torch.dtype]:
    """The local CUDA device in fp16 when there is one, else the CPU in fp32."""
    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    return device, (torch.float16 if device.type == "cuda" else torch.float32)


def load_pipeline(model: str, device: str | None = None, cpu_offload: bool = False):
    """Load a DreamPose model folder or hub id (or ``"tiny"``) onto the best device."""
    from dreampose.pipeline import DreamPosePipeline

    device, dtype = pick_device(device)
    if model == TINY_MODEL:
        from dreampose.tiny import tiny_pipeline

        pipe = tiny_pipeline()
    else:
        path = Path(model)
        if (path / "subject.json").is_file():  # a LoRA subject: base model + small weights
            from dreampose.finetune import load_finetuned

            return _place(load_finetuned(path, torch_dtype=dtype), device, dtype, cpu_offload)
        if path.exists() and not (path / "model_index.json").is_file():
            raise ValueError(
                f"{path} is not a DreamPose model folder (no model_index.json). Make one with "
                "`dreampose convert` from the official checkpoints, or `dreampose finetune`."
            )
        try:
            pipe = DreamPosePipeline.from_pretrained(model, torch_dtype=dtype)
        except OSError as e:  # not on disk and not on the hub (or offline)
            raise ValueError(
                f"could not load the model {model!r}: give a DreamPose model folder, or a hub id "
                f"reachable from here ({e.__class__.__name__}: {str(e).splitlines()[0]})"
            ) from e
    return _place(pipe, device, dtype, cpu_offload)


def _place(pipe, device: torch.device, dtype: torch.dtype, cpu_offload: bool):
    if device.type == "cpu":
        log.warning("no CUDA GPU found: running on the CPU, which is very slow for real models")
    if cpu_offload and device.type == "cuda":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device=device, dtype=dtype)
    return pipe


# --------------------------------------------------------------------------- rendering
def load_poses(poses: PoseSequence | str | os.PathLike) -> PoseSequence:
    return poses if isinstance(poses, PoseSequence) else PoseSequence.load(poses)


def align_poses(poses: PoseSequence, subject_pose: PoseSequence, height: int, width: int) -> PoseSequence:
    """Fit the driving poses onto the canvas and align them to the subject photo's body:
    one scale and shift for the whole sequence, so the first frame's body gets the
    subject's height and position, feet on the same ground line."""
    from pose_extraction.placement import place_on_canvas

    return place_on_canvas(poses, height, width, subject=subject_pose, align=True)


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
    pipe.set_scheduler(settings.scheduler)
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
            frames=selected,
            height=settings.height,
            width=settings.width,
            frame_batch_size=settings.frame_batch_size,
            generator=torch.Generator().manual_seed(settings.seed),
            same_noise_for_all_frames=settings.same_noise_for_all_frames,
            callback_on_step_end=step_callback,
            turbo=settings.turbo,
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


def render_video(
    pipe,
    image,
    poses: PoseSequence,
    output: str | os.PathLike,
    settings: RenderSettings = RenderSettings(),
    frames: list[int] | None = None,
    fps: float | None = None,
    frames_dir: str | os.PathLike | None = None,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[Path, RenderResult]:
    """Render to an H.264 mp4 with one video frame per pose frame, at the poses' fps.

    Finished frames are also written as PNGs to ``frames_dir`` when given. If the render
    is cancelled or fails after some frames, those frames are written to
    ``<output>.partial.mp4`` (and the error re-raised), so no finished work is lost.
    """
    from dreampose.video import write_mp4

    output = Path(output)
    fps = fps or poses.fps
    check_writable(output)
    save_png = _png_writer(frames_dir)
    result: RenderResult | None = None
    kept: list[np.ndarray] = []

    def on_frame(index, frame):
        kept.append(frame)
        save_png(index, frame)

    try:
        result = render_frames(pipe, image, poses, settings, frames, on_frame, on_step, cancel)
    except BaseException:
        if kept:
            write_mp4(kept, partial_path(output), fps)
        raise
    if result.cancelled:
        if kept:
            write_mp4(kept, partial_path(output), fps)
        return partial_path(output), result
    write_mp4(result.frames, output, fps)
    return output, result


def partial_path(output: Path) -> Path:
    return output.with_name(output.stem + ".partial" + output.suffix)


def check_writable(output: Path) -> None:
    """Fail before rendering, not after, when ``output`` cannot be written."""
    writable_folder(output.parent if str(output.parent) else ".")


def _png_writer(frames_dir):
    if frames_dir is None:
        return lambda index, frame: None
    folder = Path(frames_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return lambda index, frame: save_pngs(folder, [index], [frame])


def save_pngs(frames_dir, indices, frames) -> None:
    """Write frames as ``frame_00012.png`` (numbered by pose frame) into ``frames_dir``."""
    if frames_dir is None:
        return
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
        _grid_mosaic(rows, image_scales, pose_scales), rows, list(image_scales), list(pose_scales)
    )


def _grid_mosaic(rows: list[list[np.ndarray]], image_scales, pose_scales) -> np.ndarray:
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
