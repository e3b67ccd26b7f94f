"""The paper's quantitative protocol (section 5.1.1) over a dataset in the training layout.

For each test video: take its input frame (frame 0 unless told otherwise), optionally
finetune the model on that frame and its pose (section 4.3), render ``frames_per_video``
consecutive frames starting ``min_gap`` frames after the input frame with the video's own
poses, and compare them with the ground-truth frames at the metric size. The paper's values:
50 frames, at least 50 frames from the input frame, 256 px. Consecutive frames (the paper
does not say how its 50 were spread) make the 16-frame clips that FVD needs.

Both the rendered and the ground-truth frames go through the same steps: the ground truth
is placed on the render canvas exactly as the pipeline places its inputs (``fit_image``), then
both are resized to ``size`` pixels high (width in the canvas's aspect, 256 x 205 for 640 x 512)
with area interpolation.

Output folder::

    OUTPUT/
      settings.json             what was run; a rerun with other settings is refused
      evaluation.json / .md     the report (``dreampose.evaluation.report``)
      videos/<name>/
        ours/frame_00050.png ...   rendered frames at the metric size (kept as they finish)
        truth/frame_00050.png ...  ground-truth frames at the metric size
        metrics.json            per-frame metrics; written last, so it marks the video done
        side_by_side.mp4        input | pose | ground truth | ours
        subject/                the finetuned model while its video is in progress

Resuming: finished videos (``metrics.json``) are skipped, rendered frames are not rendered
again, and an interrupted finetuning continues from its checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dreampose.base.files import writable_folder, write_text
from dreampose.evaluation import metrics, report
from dreampose.evaluation.settings import EvaluationSettings
from dreampose.media.frames import frame_path, read_png, save_frame
from dreampose.media.images import read_image
from dreampose.model.events import Finished, FrameDone
from dreampose.training.data import Video, find_videos, video_poses

METRICS_FILE = "metrics.json"
SETTINGS_FILE = "settings.json"
VIDEOS_DIR = "videos"
OURS_DIR = "ours"
TRUTH_DIR = "truth"
SUBJECT_DIR = "subject"


def target_frames(num_frames: int, settings: EvaluationSettings) -> list[int]:
    """The frames compared for a video of ``num_frames``: consecutive, from ``min_gap``
    after the input frame, as many as the video has up to ``frames_per_video``."""
    first = settings.input_frame + settings.min_gap
    return list(range(first, min(first + settings.frames_per_video, num_frames)))


@dataclass(frozen=True)
class EvaluationProgress:
    """What the progress callback receives after every rendered frame and every video."""

    videos_done: int
    videos_total: int
    frames_done: int
    frames_total: int
    video: str
    stage: str  # "finetune", "render", "metrics", "done", "skipped"


@dataclass
class EvaluationResult:
    output: Path
    report: dict
    cancelled: bool


ProgressCallback = Callable[[EvaluationProgress], None]


# =========================================================================== entry point
def evaluate(
    model: str,
    dataset: str | os.PathLike,
    output: str | os.PathLike,
    settings: EvaluationSettings | None = None,
    networks=None,
    videos: int | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    show_progress: bool = False,
) -> EvaluationResult:
    """Run the protocol of ``model`` on ``dataset`` into ``output`` and write the report.

    ``networks``: the metric networks (``metrics.load_networks``); loaded pretrained when
    None, before any rendering, so a missing download fails in seconds, not hours.
    ``videos``: only the first N videos (in name order). Setting ``cancel`` stops after the
    current step; finished videos are kept and reported.
    """
    settings = settings or EvaluationSettings()
    output = writable_folder(output)
    selected = find_videos(dataset)
    if videos is not None:
        if videos < 1:
            raise ValueError(f"--videos must be at least 1; got {videos}")
        selected = selected[:videos]
    _check_settings(output, _run_record(model, dataset, settings, networks))
    if networks is None:
        networks = metrics.load_networks(metric_device(device))
    cancel = cancel or threading.Event()
    runner = _VideoRunner(model, settings, networks, device, cancel, show_progress)
    totals = [len(target_frames(len(v.frames), settings)) for v in selected]
    done_frames, results, cancelled = 0, [], False
    for k, video in enumerate(selected):
        folder = output / VIDEOS_DIR / video.name

        def on_frame(stage: str, extra: int = 0, k=k, video=video, before=done_frames) -> None:
            if progress is not None:
                progress(EvaluationProgress(k, len(selected), before + extra, sum(totals), video.name, stage))

        result = runner.run(video, folder, on_frame)
        if result is None:  # cancelled
            cancelled = True
            break
        results.append(result)
        done_frames += totals[k]
        if progress is not None:
            stage = "skipped" if result.get("skipped") else "done"
            progress(EvaluationProgress(k + 1, len(selected), done_frames, sum(totals), video.name, stage))
    summary = report.summarise(results, _set_metrics(output, results, networks), settings, model, networks)
    summary["complete"] = not cancelled and len(results) == len(selected)
    report.write_report(output, summary)
    return EvaluationResult(output, summary, cancelled)


def _run_record(model, dataset, settings: EvaluationSettings, networks) -> dict:
    return {
        "model": str(model),
        "dataset": str(Path(dataset).resolve()),
        "settings": settings.to_json(),
        "metric_networks": "random" if networks is not None and not networks.pretrained else "pretrained",
    }


def _check_settings(output: Path, record: dict) -> None:
    """Keep one output folder to one set of settings, so a resumed run stays one run."""
    path = output / SETTINGS_FILE
    record = json.loads(json.dumps(record))  # tuples -> lists, as read back
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != record:
            changed = sorted(_differences(previous, record))
            raise ValueError(
                f"{output} holds an evaluation made with other settings ({', '.join(changed)}); "
                "rerun with the same settings to resume it, or choose another --output"
            )
        return
    write_text(path, json.dumps(record, indent=2))


def _differences(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if a != b else []


def metric_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# =========================================================================== one video
class _VideoRunner:
    """Finetunes (when asked), renders and scores one video at a time."""

    def __init__(self, model, settings: EvaluationSettings, networks, device, cancel, show_progress):
        self.model = model
        self.settings = settings
        self.networks = networks
        self.device = device
        self.cancel = cancel
        self.show_progress = show_progress
        self._base_pipe = None

    def run(self, video: Video, folder: Path, on_frame) -> dict | None:
        """The video's metrics (read back if it finished earlier); None when cancelled."""
        if (folder / METRICS_FILE).is_file():
            return report.loads((folder / METRICS_FILE).read_text())
        settings = self.settings
        frames = target_frames(len(video.frames), settings)
        if settings.input_frame >= len(video.frames) or not frames:
            return self._skip(
                folder,
                video,
                f"{len(video.frames)} frames; needs more than input frame {settings.input_frame} + "
                f"min-gap {settings.min_gap}",
            )
        poses = video_poses(video)
        seconds = {"finetune": 0.0, "render": 0.0}
        pending = [f for f in frames if not frame_path(folder / OURS_DIR, f).is_file()]
        if pending:
            start = time.monotonic()
            pipe = self._pipeline(video, poses, folder, on_frame)
            seconds["finetune"] = time.monotonic() - start if settings.finetune != "none" else 0.0
            if pipe is None:
                return None
            start = time.monotonic()
            if not self._render(pipe, video, poses, pending, folder, frames, on_frame):
                return None
            seconds["render"] = time.monotonic() - start
        on_frame("metrics", len(frames))
        return self._score(video, poses, frames, folder, seconds)

    # ------------------------------------------------------------------ model
    def _pipeline(self, video: Video, poses, folder: Path, on_frame):
        from dreampose.runtime.loading import load_pipeline

        if self.settings.finetune == "none":
            if self._base_pipe is None:
                self._base_pipe = load_pipeline(self.model, self.device)
                self._base_pipe.set_progress_bar_config(disable=True)
            return self._base_pipe
        on_frame("finetune")
        subject = folder / SUBJECT_DIR
        if not _finished_model(subject):
            from dreampose.training.finetune import finetune

            result = finetune(
                self.model,
                [read_image(video.frames[self.settings.input_frame])],
                subject,
                poses=poses.select([self.settings.input_frame]),
                settings=self.settings.finetune_settings,
                cancel=self.cancel,
                resume=True,
                show_progress=self.show_progress,
                device=self.device,
            )
            if result.cancelled:
                return None
        pipe = load_pipeline(str(subject), self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    # ------------------------------------------------------------------ rendering
    def _render(self, pipe, video: Video, poses, pending: list[int], folder: Path, frames, on_frame) -> bool:
        """Render ``pending`` frames, saving each at the metric size as it finishes."""
        from dreampose.rendering.frames import stream_frames

        # Only the poses the windows read: the whole sequence of a long video on the GPU
        # costs ~1 GB at 640 x 512, and a window only reaches num_pose_frames // 2 frames out.
        half = pipe.num_pose_frames // 2
        first, last = max(0, min(pending) - half), min(len(poses), max(pending) + half + 1)
        window = poses.select(slice(first, last))
        rendered = len(frames) - len(pending)  # frames kept from an earlier run
        events = stream_frames(
            pipe,
            read_image(video.frames[self.settings.input_frame]),
            window,
            self.settings.render,
            frames=[f - first for f in pending],
            cancel=self.cancel,
        )
        for event in events:
            if isinstance(event, FrameDone):
                save_frame(folder / OURS_DIR, event.index + first, to_metric_size(event.image, self.settings))
                rendered += 1
                on_frame("render", rendered)
            elif isinstance(event, Finished):
                return not event.result.cancelled
        return False

    # ------------------------------------------------------------------ scoring
    def _score(self, video: Video, poses, frames: list[int], folder: Path, seconds: dict) -> dict:
        from dreampose.evaluation.metrics import frame_metrics
        from dreampose.media.canvas import fit_image

        render = self.settings.render
        truth_dir = folder / TRUTH_DIR
        truth_dir.mkdir(parents=True, exist_ok=True)
        truth = []
        for f in frames:
            frame = to_metric_size(
                fit_image(read_image(video.frames[f]), render.height, render.width), self.settings
            )
            save_frame(truth_dir, f, frame)
            truth.append(frame)
        truth = np.stack(truth)
        ours = np.stack([read_png(frame_path(folder / OURS_DIR, f)) for f in frames])
        scores = frame_metrics(ours, truth, self.networks)
        input_image = fit_image(
            read_image(video.frames[self.settings.input_frame]), render.height, render.width
        )
        report.write_side_by_side(
            folder / report.SIDE_BY_SIDE_FILE,
            to_metric_size(input_image, self.settings),
            pose_panels(poses, frames, self.settings),
            truth,
            ours,
            poses.fps,
        )
        result = {
            "video": video.name,
            "input_frame": self.settings.input_frame,
            "frames": frames,
            "per_frame": {name: values.tolist() for name, values in scores.items()},
            "mean": {name: float(np.mean(values)) for name, values in scores.items()},
            "seconds": seconds,
        }
        write_text(folder / METRICS_FILE, report.dumps(result))
        shutil.rmtree(folder / SUBJECT_DIR, ignore_errors=True)  # GBs per video for full finetuning
        return result

    def _skip(self, folder: Path, video: Video, reason: str) -> dict:
        result = {"video": video.name, "skipped": reason, "frames": []}
        write_text(folder / METRICS_FILE, report.dumps(result))
        return result


def _finished_model(folder: Path) -> bool:
    """A finetuned subject that completed: a model in the folder and no checkpoint left."""
    from dreampose.runtime.references import resolve

    has_model = resolve(str(folder)).kind in ("pipeline", "lora")
    return has_model and not (folder / "checkpoint").exists() and not (folder / "checkpoint.old").exists()


# =========================================================================== set metrics
def _set_metrics(output: Path, results: list[dict], networks) -> dict:
    """FID over all frames and FVD over all 16-frame clips, from the saved PNGs.

    Returns {"fid": value or None, "fvd": ..., "notes": {...}}; a metric that cannot be
    computed (too few frames or clips) gets None and a note saying why.
    """
    finished = [r for r in results if not r.get("skipped")]
    folders = [output / VIDEOS_DIR / r["video"] for r in finished]
    out: dict = {"fid": None, "fvd": None, "notes": {}}

    def frames_of(sub: str):
        for folder, r in zip(folders, finished, strict=True):
            yield np.stack([read_png(frame_path(folder / sub, f)) for f in r["frames"]])

    try:
        out["fid"] = metrics.fid(frames_of(TRUTH_DIR), frames_of(OURS_DIR), networks)
    except ValueError as e:
        out["notes"]["fid"] = str(e)

    def clips_of(sub: str):
        for batch in frames_of(sub):
            clips = metrics.clips(batch)
            if len(clips):
                yield clips

    try:
        out["fvd"] = metrics.fvd(clips_of(TRUTH_DIR), clips_of(OURS_DIR), networks)
    except ValueError as e:
        out["notes"]["fvd"] = f"{e} (clips of {metrics.FVD_CLIP_LENGTH} consecutive frames)"
    return out


# =========================================================================== pictures and files
def to_metric_size(frame: np.ndarray, settings: EvaluationSettings) -> np.ndarray:
    """A canvas-sized RGB frame resized to the metric size (area interpolation)."""
    height, width = settings.metric_size
    if frame.shape[:2] == (height, width):
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def pose_panels(poses, frames: list[int], settings: EvaluationSettings) -> np.ndarray:
    """The body-part pictures of ``frames`` on the canvas, at the metric size."""
    from dreampose.media.canvas import fit_pose
    from pose_extraction.visualize import render_parts

    render = settings.render
    selected = poses.select(frames)
    _, labels, _ = fit_pose(selected.uv, selected.labels, render.height, render.width)
    height, width = settings.metric_size
    return np.stack(
        [cv2.resize(render_parts(lab), (width, height), interpolation=cv2.INTER_NEAREST) for lab in labels]
    )
