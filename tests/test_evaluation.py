"""`dreampose evaluate`: metrics, the protocol on a synthetic dataset, resume, report, offline errors.

The dataset is made here: textured figures sliding across a grey canvas with exact pose maps
(``benchmarks/synthetic_learning.py``). The model is the tiny random one. Pretrained metric
networks cannot be downloaded here, so the learned metrics run on the libraries' networks
with random weights, or on small stand-ins with the same interface where speed matters.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchmetrics")
pytest.importorskip("lpips")
pytest.importorskip("cdfvd")

from dreampose.evaluation import metrics, protocol, report  # noqa: E402
from dreampose.evaluation.protocol import EvaluationSettings, evaluate, target_frames  # noqa: E402
from dreampose.media.frames import read_png, save_frame  # noqa: E402
from dreampose.rendering.settings import RenderSettings  # noqa: E402
from dreampose.training.settings import DEFAULT_LORA_RANK  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.synthetic_learning import make_video, write_dataset  # noqa: E402

SIZE = 64
FAST = RenderSettings(num_inference_steps=2, height=SIZE, width=SIZE)


class PooledFeatures(torch.nn.Module):
    """A small stand-in for Inception (uint8 images (N, 3, H, W)) or I3D (uint8 clips
    (B, T, H, W, 3)): a fixed random projection of 4 x 4 average-pooled pixels."""

    num_features = 12

    def __init__(self, clips: bool):
        super().__init__()
        self.clips = clips
        self.project = torch.nn.Linear(3 * 16, self.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.clips:  # (B, T, H, W, 3) -> mean over time, as (B, 3, H, W)
            x = x.float().mean(dim=1).permute(0, 3, 1, 2)
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 4)
        return self.project(pooled.flatten(1))


@pytest.fixture(scope="module")
def random_nets():
    """The real architectures with random weights (LPIPS trunks, Inception stand-in, I3D)."""
    return metrics.load_networks("cpu", pretrained=False)


@pytest.fixture(scope="module")
def fast_nets(random_nets):
    """Random LPIPS networks and small Fréchet feature stand-ins, for end-to-end runs."""
    torch.manual_seed(0)
    return metrics.MetricNetworks(
        random_nets.lpips, random_nets.vgg, PooledFeatures(False), PooledFeatures(True), pretrained=False
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(0)
    return write_dataset(tmp_path_factory.mktemp("synthetic"), [make_video(rng, 8) for _ in range(2)])


def small_settings(**changes) -> EvaluationSettings:
    values = dict(frames_per_video=4, min_gap=2, size=SIZE, render=FAST)
    values.update(changes)
    return EvaluationSettings(**values)


def synthetic_frames(n: int = 4) -> np.ndarray:
    images, _ = make_video(np.random.default_rng(1), n)
    return images


# =========================================================================== metrics
def test_identical_predictions_score_perfectly(random_nets):
    truth = synthetic_frames()
    scores = metrics.frame_metrics(truth, truth.copy(), random_nets)
    assert np.all(scores["l1"] == 0)
    np.testing.assert_allclose(scores["ssim"], 1.0, atol=1e-6)
    np.testing.assert_allclose(scores["lpips"], 0.0, atol=1e-7)
    np.testing.assert_allclose(scores["vgg"], 0.0, atol=1e-7)
    assert np.all(np.isinf(scores["psnr"]))


def test_shifted_prediction_scores_worse(random_nets):
    truth = synthetic_frames()
    shifted = np.roll(truth, 3, axis=2)  # the figure 3 px to the right
    scores = metrics.frame_metrics(shifted, truth, random_nets)
    assert np.all(scores["l1"] > 0.005)
    assert np.all(scores["ssim"] < 0.95)
    assert np.all(scores["lpips"] > 1e-3) and np.all(scores["vgg"] > 1e-3)
    assert np.all(np.isfinite(scores["psnr"])) and np.all(scores["psnr"] < 40)
    further = metrics.frame_metrics(np.roll(truth, 9, axis=2), truth, random_nets)
    assert np.mean(further["l1"]) > np.mean(scores["l1"])


def test_l1_is_mean_absolute_pixel_error_in_unit_range(random_nets):
    truth = np.full((2, SIZE, SIZE, 3), 100, np.uint8)
    ours = truth.copy()
    ours[:, :, :, 0] = 151  # one channel off by 51 = 0.2 of the range: mean 0.2 / 3
    scores = metrics.frame_metrics(ours, truth, random_nets)
    np.testing.assert_allclose(scores["l1"], 0.2 / 3, rtol=1e-5)


def test_frechet_distances_zero_for_identical_sets(fast_nets):
    frames = synthetic_frames(6)
    assert abs(metrics.fid([frames], [frames], fast_nets)) < 1e-6
    assert metrics.fid([frames], [255 - frames], fast_nets) > 1e-3
    video, _ = make_video(np.random.default_rng(2), 32)
    real = metrics.clips(video)
    assert real.shape == (2, 16, SIZE, SIZE, 3)  # two clips of 16 consecutive frames
    assert abs(metrics.fvd([real], [real], fast_nets)) < 1e-6
    assert metrics.fvd([real], [255 - real], fast_nets) > 1e-3


@pytest.mark.slow
def test_real_architectures_plug_into_the_frechet_distance(random_nets):
    """FID on the Inception v3 stand-in and FVD on cd-fvd's I3D (random weights): the
    interfaces torchmetrics calls, and features that tell different sets apart."""
    frames = synthetic_frames(4)
    assert metrics.fid([frames], [255 - frames], random_nets) > 0.05
    video, _ = make_video(np.random.default_rng(2), 32)
    real = metrics.clips(video)
    assert metrics.fvd([real], [255 - real], random_nets) > 0.05


def test_frechet_distance_needs_two_items(fast_nets):
    with pytest.raises(ValueError, match="at least 2"):
        metrics.fid([synthetic_frames(1)], [synthetic_frames(1)], fast_nets)


def test_missing_library_names_the_install_command(monkeypatch):
    real = metrics.importlib.util.find_spec
    monkeypatch.setattr(
        metrics.importlib.util, "find_spec", lambda name: None if name == "lpips" else real(name)
    )
    with pytest.raises(ValueError, match=r"missing: lpips.*pip install -r requirements-eval.txt"):
        metrics.require_libraries()


# =========================================================================== offline downloads
@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty weights cache and every HTTP(S) request sent to a closed local port."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(urllib.request, "_opener", None)  # re-read the proxy settings
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.mark.parametrize(
    "load, what",
    [
        (lambda: metrics.pretrained_lpips("alex"), "LPIPS AlexNet trunk"),
        (metrics.pretrained_inception, "FID Inception v3"),
        (metrics.pretrained_i3d, "FVD I3D"),
    ],
)
def test_offline_download_says_what_failed_and_what_to_do(offline, load, what):
    with pytest.raises(metrics.MetricWeightsUnavailable) as raised:
        load()
    message = str(raised.value)
    assert f"could not download the {what}" in message
    assert "Connection refused" in message or "connect" in message.lower()
    assert str(offline) in message  # where the file goes
    assert "internet access" in message and "--random-metric-networks" in message
    assert not (offline / metrics.I3D_FILE).exists()


def test_truncated_i3d_file_is_removed_and_reported(offline):
    offline.mkdir(parents=True)
    (offline / metrics.I3D_FILE).write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(metrics.MetricWeightsUnavailable, match="could not download the FVD I3D"):
        metrics.pretrained_i3d()
    assert not (offline / metrics.I3D_FILE).exists()  # the next run downloads it again


# =========================================================================== protocol
def test_target_frames_follow_the_paper_protocol():
    paper = EvaluationSettings()
    assert target_frames(400, paper) == list(range(50, 100))  # 50 frames, >= 50 after frame 0
    assert target_frames(70, paper) == list(range(50, 70))  # a short video gives what it has
    assert target_frames(50, paper) == []
    assert EvaluationSettings().metric_size == (256, 205)  # 640 x 512 canvas at 256 px high
    with pytest.raises(ValueError, match="--finetune must be one of"):
        EvaluationSettings(finetune="partial")


def test_evaluate_writes_metrics_report_and_videos(dataset, fast_nets, tmp_path, one_thread):
    seen = []
    result = evaluate(
        "tiny", dataset, tmp_path / "eval", small_settings(), networks=fast_nets, progress=seen.append
    )
    summary = json.loads((tmp_path / "eval" / report.REPORT_JSON).read_text())
    assert summary["videos"] == 2 and summary["frames"] == 8 and summary["complete"]
    for name in metrics.FRAME_METRICS:
        value = summary["overall"][name]
        assert isinstance(value, float) and np.isfinite(value)
    assert 0 < summary["overall"]["l1"] < 1 and -1 <= summary["overall"]["ssim"] < 1
    assert summary["overall"]["fid"] is not None  # 8 frames per side
    assert summary["overall"]["fvd"] is None and "16" in summary["notes"]["fvd"]  # 4-frame videos
    video = summary["per_video"][0]
    assert video["frames"] == [2, 3, 4, 5] and len(video["per_frame"]["lpips"]) == 4
    table = (tmp_path / "eval" / report.REPORT_MD).read_text()
    assert "| DreamPose paper, Table 1" in table and "| 0.0256 |" in table and "†" in table
    for name in ("video000", "video001"):
        folder = tmp_path / "eval" / "videos" / name
        assert sorted(p.name for p in (folder / "ours").iterdir()) == [
            f"frame_{f:05d}.png" for f in range(2, 6)
        ]
        assert read_png(folder / "truth" / "frame_00002.png").shape == (SIZE, SIZE, 3)
        import imageio_ffmpeg

        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(folder / "side_by_side.mp4"))
        assert frames == 4
    assert seen[-1].frames_done == seen[-1].frames_total == 8 and seen[-1].videos_done == 2
    assert result.report["overall"] == summary["overall"]


def test_ground_truth_as_prediction_scores_perfectly(dataset, fast_nets, tmp_path, monkeypatch, one_thread):
    """End to end through the protocol: a "model" that returns the true frames gets L1 0,
    SSIM 1, LPIPS 0: the ground truth and the predictions are aligned frame by frame."""
    from dreampose.media.canvas import fit_image
    from dreampose.media.images import read_image as load_rgb
    from dreampose.model.events import Finished, FrameDone
    from dreampose.rendering import frames as rendering
    from pose_extraction.pose_sequence import PoseSequence

    videos = list(protocol.find_videos(dataset))

    def oracle(pipe, image, poses, settings, frames, cancel):
        """Hand back the true frames: find the video by its input frame and where the
        (possibly shortened) pose sequence starts in it by matching the pose maps."""
        video = next(v for v in videos if np.array_equal(load_rgb(v.frames[0]), image))
        full = PoseSequence.load(video.folder / "poses.npz").uv
        offset = next(
            o for o in range(len(full) - len(poses) + 1) if np.array_equal(full[o : o + len(poses)], poses.uv)
        )
        for f in frames:
            yield FrameDone(f, fit_image(load_rgb(video.frames[f + offset]), SIZE, SIZE))
        yield Finished(rendering.RenderResult())

    monkeypatch.setattr(rendering, "stream_frames", oracle)
    summary = evaluate("tiny", dataset, tmp_path / "oracle", small_settings(), networks=fast_nets).report
    assert summary["overall"]["l1"] == 0
    assert summary["overall"]["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert summary["overall"]["lpips"] == pytest.approx(0.0, abs=1e-7)
    assert summary["overall"]["fid"] == pytest.approx(0.0, abs=1e-3)


def test_resume_skips_finished_videos_and_frames(dataset, fast_nets, tmp_path, monkeypatch, one_thread):
    from dreampose.rendering import frames as rendering

    rendered = []
    real_render = rendering.stream_frames

    def spy(pipe, image, poses, settings, frames, cancel):
        rendered.append(list(frames))
        return real_render(pipe, image, poses, settings, frames=frames, cancel=cancel)

    monkeypatch.setattr(rendering, "stream_frames", spy)
    out = tmp_path / "resume"
    evaluate("tiny", dataset, out, small_settings(), networks=fast_nets, videos=1)
    assert len(rendered) == 1
    first = json.loads((out / "videos" / "video000" / protocol.METRICS_FILE).read_text())

    # video001 was interrupted after two frames: only its other two are rendered
    partial = out / "videos" / "video001" / "ours"
    partial.mkdir(parents=True)
    for f in (2, 3):
        save_frame(partial, f, np.zeros((SIZE, SIZE, 3), np.uint8))
    rendered.clear()
    summary = evaluate("tiny", dataset, out, small_settings(), networks=fast_nets).report
    assert len(rendered) == 1 and len(rendered[0]) == 2  # video000 skipped, video001 frames 4, 5
    assert summary["videos"] == 2
    again = json.loads((out / "videos" / "video000" / protocol.METRICS_FILE).read_text())
    assert again == first  # kept, not recomputed

    rendered.clear()
    evaluate("tiny", dataset, out, small_settings(), networks=fast_nets)
    assert rendered == []  # everything finished: only the report is rebuilt

    with pytest.raises(ValueError, match=r"other settings \(settings\.size\)"):
        evaluate("tiny", dataset, out, small_settings(size=32), networks=fast_nets)


def test_too_short_video_is_skipped_with_the_reason(dataset, fast_nets, tmp_path, one_thread):
    summary = evaluate(
        "tiny", dataset, tmp_path / "short", small_settings(min_gap=8), networks=fast_nets
    ).report
    assert summary["videos"] == 0 and set(summary["skipped"]) == {"video000", "video001"}
    assert "min-gap 8" in summary["skipped"]["video000"]
    assert summary["overall"]["l1"] is None and summary["overall"]["fid"] is None


def test_finetune_mode_finetunes_on_the_input_frame(dataset, fast_nets, tmp_path, monkeypatch, one_thread):
    from dreampose.training import finetune as finetune_module
    from dreampose.training.settings import FinetuneSettings

    calls = []
    real_finetune = finetune_module.finetune

    def spy(model, images, output, **kwargs):
        calls.append((model, images[0].copy(), kwargs["poses"]))
        return real_finetune(model, images, output, **kwargs)

    monkeypatch.setattr(finetune_module, "finetune", spy)
    settings = small_settings(
        finetune="lora",
        finetune_settings=FinetuneSettings(unet_steps=1, vae_steps=1, gradient_checkpointing=False),
    )
    assert settings.finetune_settings.lora_rank == DEFAULT_LORA_RANK
    assert (settings.finetune_settings.height, settings.finetune_settings.width) == (SIZE, SIZE)
    out = tmp_path / "ft"
    summary = evaluate("tiny", dataset, out, settings, networks=fast_nets, videos=1).report
    assert summary["videos"] == 1 and np.isfinite(summary["overall"]["l1"])
    ((model, image, poses),) = calls
    assert model == "tiny"  # finetuning loads the tiny model by name, like every command
    frame0 = read_png(dataset / "video000" / "frames" / "000000.png")
    np.testing.assert_array_equal(image, frame0)  # the input frame, not a target
    assert len(poses) == 1
    assert not (out / "videos" / "video000" / protocol.SUBJECT_DIR).exists()  # removed once scored


# =========================================================================== CLI
def test_cli_evaluate_runs_and_resumes(dataset, tmp_path, capsys, one_thread):
    from dreampose.cli import main

    def argv(steps: str) -> list[str]:
        return [
            "evaluate", "--model", "tiny", "--dataset", str(dataset), "--output", str(tmp_path / "cli"),
            "--frames-per-video", "3", "--min-gap", "2", "--size", "64", "--height", "64", "--width", "64",
            "--steps", steps, "--videos", "1", "--device", "cpu", "--random-metric-networks",
        ]  # fmt: skip

    assert main(argv("2")) == 0
    out = capsys.readouterr().out
    assert "| DreamPose paper, Table 1" in out and "| this run |" in out
    assert (tmp_path / "cli" / "videos" / "video000" / "side_by_side.mp4").is_file()
    assert main(argv("3")) == 2  # other settings: refused with one clear line
    assert "holds an evaluation made with other settings" in capsys.readouterr().err


def test_presets_are_the_paper_the_fast_preset_and_turbo():
    from dreampose.evaluation.settings import TURBO_INTERVAL, preset
    from dreampose.rendering.settings import FAST_PREVIEW

    assert preset("paper") == RenderSettings()
    assert preset("fast") == FAST_PREVIEW
    assert preset("turbo").turbo == TURBO_INTERVAL and preset("turbo").num_inference_steps == 100
    with pytest.raises(ValueError, match="unknown preset"):
        preset("fastest")
