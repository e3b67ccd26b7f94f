"""What `dreampose evaluate` writes: the JSON report, the Markdown table next to the paper's
Table 1, and a side-by-side video per test video."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from dreampose.base.files import write_text
from dreampose.evaluation.metrics import FRAME_METRICS, FVD_CLIP_LENGTH

REPORT_JSON = "evaluation.json"
REPORT_MD = "evaluation.md"
SIDE_BY_SIDE_FILE = "side_by_side.mp4"

# DreamPose (Karras et al. 2023), Table 1: UBC Fashion test set, 100 videos, 256 px.
PAPER_TABLE_1 = {
    "l1": 0.0256,
    "ssim": 0.885,
    "vgg": 0.235,
    "lpips": 0.068,
    "fid": 13.04,
    "fvd": 238.75,
    "aed": 0.0110,
}
COLUMNS = (
    ("l1", "L1 ↓", "{:.4f}"),
    ("psnr", "PSNR ↑", "{:.2f}"),
    ("ssim", "SSIM ↑", "{:.3f}"),
    ("vgg", "VGG ↓", "{:.3f}"),
    ("lpips", "LPIPS ↓", "{:.3f}"),
    ("fid", "FID ↓", "{:.2f}"),
    ("fvd", f"FVD ({FVD_CLIP_LENGTH}f) ↓", "{:.2f}"),
    ("aed", "AED ↓", "{:.4f}"),
)
LEARNED = ("vgg", "lpips", "fid", "fvd")  # the metrics that need pretrained networks


# =========================================================================== JSON
def dumps(data) -> str:
    """Standard JSON: infinite values (PSNR of identical frames) become "inf" strings."""
    return json.dumps(_encode(data), indent=2, allow_nan=False)


def loads(text: str):
    return _decode(json.loads(text))


def _encode(value):
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan"
    return value


def _decode(value):
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


# =========================================================================== summary
def summarise(results: list[dict], set_metrics: dict, settings, model: str, networks) -> dict:
    """Every metric per video and overall. Overall frame metrics are means over all
    frames of all videos (each frame counts once, as the paper averages test frames)."""
    finished = [r for r in results if not r.get("skipped")]
    overall: dict = {}
    for name in FRAME_METRICS:
        values = [v for r in finished for v in r["per_frame"][name]]
        overall[name] = float(np.mean(values)) if values else None
    overall["fid"], overall["fvd"], overall["aed"] = set_metrics["fid"], set_metrics["fvd"], None
    notes = dict(set_metrics.get("notes", {}))
    notes["aed"] = "not computed: AED needs a person re-identification network the paper does not name"
    return {
        "model": str(model),
        "settings": settings.to_json(),
        "metric_size": list(settings.metric_size),
        "metric_networks": "pretrained" if networks.pretrained else "random",
        "videos": len(finished),
        "frames": sum(len(r["frames"]) for r in finished),
        "skipped": {r["video"]: r["skipped"] for r in results if r.get("skipped")},
        "overall": overall,
        "notes": notes,
        "per_video": finished,
        "paper_table_1": PAPER_TABLE_1,
    }


def write_report(output: Path, summary: dict) -> None:
    write_text(output / REPORT_JSON, dumps(summary))
    write_text(output / REPORT_MD, markdown(summary))


def markdown(summary: dict) -> str:
    """The report as Markdown: our row under the paper's Table 1 row, then one row per video."""
    random_nets = summary["metric_networks"] == "random"
    settings = summary["settings"]
    render = settings["render"]
    height, width = summary["metric_size"]
    lines = [
        "# DreamPose evaluation",
        "",
        f"Model `{summary['model']}`: {summary['videos']} videos, {summary['frames']} frames"
        + (f" ({len(summary['skipped'])} videos skipped)" if summary["skipped"] else "")
        + ("" if summary.get("complete", True) else "; **incomplete run**")
        + f". Metrics at {height} x {width} px; rendered at {render['height']} x {render['width']}, "
        f"{render['num_inference_steps']} {render['scheduler']} steps, sI {render['image_guidance_scale']:g}, "
        f"sP {render['pose_guidance_scale']:g}, seed {render['seed']}; finetuning: {settings['finetune']}; "
        f"{settings['frames_per_video']} frames per video from {settings['min_gap']} frames after input frame "
        f"{settings['input_frame']}.",
        "",
        "| | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
        "| DreamPose paper, Table 1 (UBC Fashion test, 100 videos, 256 px) | "
        + " | ".join(_cell(PAPER_TABLE_1.get(key), fmt) for key, _, fmt in COLUMNS)
        + " |",
        "| this run | "
        + " | ".join(
            _cell(summary["overall"].get(key), fmt, mark=random_nets and key in LEARNED)
            for key, _, fmt in COLUMNS
        )
        + " |",
        "",
        "– : not reported / not computed.",
    ]
    if random_nets:
        lines.append(
            "† randomly initialised metric networks (`--random-metric-networks`): a plumbing check, "
            "not comparable with any published number."
        )
    for key, note in summary["notes"].items():
        lines.append(f"- {key.upper()}: {note}")
    lines += ["", "## Per video", "", "| video | frames | " + " | ".join(t for k, t, _ in COLUMNS[:5]) + " |"]
    lines.append("|---|---|" + "---|" * 5)
    for r in summary["per_video"]:
        cells = " | ".join(_cell(r["mean"][key], fmt) for key, _, fmt in COLUMNS[:5])
        lines.append(f"| {r['video']} | {len(r['frames'])} | {cells} |")
    for name, reason in summary["skipped"].items():
        lines.append(f"| {name} | skipped: {reason} |" + " |" * 5)
    return "\n".join(lines) + "\n"


def _cell(value, fmt: str, mark: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return fmt.format(value) + ("†" if mark else "")


# =========================================================================== side by side
def side_by_side(
    input_panel: np.ndarray, poses: np.ndarray, truth: np.ndarray, ours: np.ndarray
) -> list[np.ndarray]:
    """Frames of input | pose | ground truth | ours, captioned, all panels one size."""
    height, width = input_panel.shape[:2]
    gap = 2
    strip = max(12, height // 12)
    frames = []
    for pose, real, fake in zip(poses, truth, ours, strict=True):
        canvas = np.full((strip + height, 4 * width + 3 * gap, 3), 24, np.uint8)
        for i, (panel, label) in enumerate(
            ((input_panel, "input"), (pose, "pose"), (real, "ground truth"), (fake, "ours"))
        ):
            x = i * (width + gap)
            canvas[strip:, x : x + width] = panel
            scale = strip / 30
            while (
                scale > 0.2 and cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width - 6
            ):
                scale *= 0.9  # small panels: shrink the caption to its panel
            cv2.putText(
                canvas,
                label,
                (x + 3, strip - 4),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (235, 235, 235),
                1,
                cv2.LINE_AA,
            )
        frames.append(canvas)
    return frames


def write_side_by_side(
    path: Path, input_panel: np.ndarray, poses: np.ndarray, truth: np.ndarray, ours: np.ndarray, fps: float
) -> Path:
    from dreampose.media.video_writer import write_mp4

    return write_mp4(side_by_side(input_panel, poses, truth, ours), path, fps)
