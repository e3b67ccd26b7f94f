"""Subject finetuning (phase 2) on the tiny model, CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dreampose.cli import main as cli_main
from dreampose.model.conditioning import vae_pixels
from dreampose.model.numerics import DREAMPOSE
from dreampose.model.pipeline import DreamPosePipeline
from dreampose.model.tiny import tiny_pipeline
from dreampose.runtime.loading import load_pipeline
from dreampose.training.finetune import (
    finetune,
    prepare_subject,
    unet_batch,
)
from dreampose.training.settings import CropScale, FinetuneSettings
from pose_extraction.pose_sequence import PoseSequence
from tests.helpers.training import subject

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"height": 64, "width": 64, "gradient_checkpointing": False, "checkpoint_every": 100}


def render_l1(pipe, image, poses) -> float:
    frame = pipe(
        image,
        poses,
        image_guidance_scale=1.0,
        pose_guidance_scale=1.0,
        num_inference_steps=10,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).frames[0]
    return float(np.abs(frame.astype(np.float64) - image.astype(np.float64)).mean())


def test_finetuning_lowers_the_loss_and_reproduces_the_subject(tmp_path):
    images, poses = subject(1)
    pipe = tiny_pipeline(0)
    before = render_l1(pipe, images[0], poses)
    settings = FinetuneSettings(
        unet_steps=30, vae_steps=30, unet_lr=2e-3, vae_lr=2e-3, crop_min_scale=0.9, **FAST
    )
    result = finetune(pipe, images, tmp_path / "subject", poses=poses, settings=settings)
    assert not result.cancelled and result.steps_done == {"unet": 30, "vae": 30}
    unet_losses = result.losses["unet"]
    assert np.mean(unet_losses[-10:]) < 0.7 * np.mean(unet_losses[:10])
    after = render_l1(pipe, images[0], poses)
    assert after < 0.7 * before, (before, after)
    # The folder is an ordinary pipeline that renders what the trained model renders.
    loaded = DreamPosePipeline.from_pretrained(tmp_path / "subject")
    loaded.set_progress_bar_config(disable=True)
    assert render_l1(loaded, images[0], poses) == pytest.approx(after, abs=0.5)
    assert not (tmp_path / "subject" / "checkpoint").exists(), "a finished run removes its checkpoint"


def test_decoder_stage_lowers_reconstruction_error_and_touches_only_the_decoder(tmp_path):
    images, poses = subject(1)
    pipe = tiny_pipeline(0)
    unet_before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in pipe.vae.encoder.state_dict().items()}

    def reconstruction_l1() -> float:
        with torch.no_grad():
            pixels = vae_pixels(images[0][None])
            decoded = pipe.vae.decode(pipe.vae.encode(pixels).latent_dist.mode()).sample
        return float((decoded - pixels).abs().mean())

    before = reconstruction_l1()
    settings = FinetuneSettings(unet_steps=0, vae_steps=20, vae_lr=2e-3, **FAST)
    finetune(pipe, images, tmp_path / "out", poses=poses, settings=settings)
    assert reconstruction_l1() < 0.8 * before
    assert all(torch.equal(unet_before[k], v) for k, v in pipe.unet.state_dict().items())
    assert all(torch.equal(encoder_before[k], v) for k, v in pipe.vae.encoder.state_dict().items())


def test_each_target_comes_with_its_own_pose():
    images, poses = subject(2)  # the figure sits at a different place in each photo
    photos = prepare_subject(images, poses, 64, 64)
    generator = torch.Generator().manual_seed(0)
    pairs = set()
    for _ in range(12):
        conditions, targets, pose = unet_batch(photos, 1, CropScale(1, 1), (8, 8), 5, DREAMPOSE, generator)
        i = next(k for k in range(2) if np.array_equal(conditions[0], images[k]))
        j = next(k for k in range(2) if np.array_equal(targets[0], images[k]))
        # A photo's pose window is its own pose five times, at latent size (every 8th pixel).
        expected = np.tile(poses.uv_float()[j][:, ::8, ::8], (5, 1, 1))[None]
        assert np.array_equal(pose.numpy(), expected), "target j must be paired with pose j"
        pairs.add((i, j))
    assert {(0, 1), (1, 0)} <= pairs, "photos should also condition each other, not only themselves"


def test_cancel_stops_within_a_step_and_resume_matches_an_uninterrupted_run(tmp_path, base_dir):
    images, poses = subject(2)
    settings = FinetuneSettings(unet_steps=4, vae_steps=2, unet_lr=1e-3, vae_lr=1e-3, seed=3, **FAST)
    whole = finetune(base_dir, images, tmp_path / "whole", poses=poses, settings=settings)

    import threading

    cancel = threading.Event()
    seen = []

    def on_progress(p):
        seen.append((p.stage, p.step, p.total))
        assert p.elapsed >= 0 and p.eta >= 0 and np.isfinite(p.loss)
        if p.step == 2:
            cancel.set()

    out = tmp_path / "interrupted"
    stopped = finetune(
        base_dir, images, out, poses=poses, settings=settings, progress=on_progress, cancel=cancel
    )
    assert stopped.cancelled and stopped.steps_done == {"unet": 2, "vae": 0}
    assert seen == [("unet", 1, 4), ("unet", 2, 4)]
    assert (out / "checkpoint" / "state.json").is_file()
    assert isinstance(load_pipeline(str(out), device="cpu"), DreamPosePipeline), (
        "what finished is a loadable model"
    )

    with pytest.raises(ValueError, match="resume"):
        finetune(base_dir, images, out, poses=poses, settings=settings)
    resumed = finetune(base_dir, images, out, poses=poses, settings=settings, resume=True)
    assert resumed.steps_done == {"unet": 4, "vae": 2}
    for stage in ("unet", "vae"):
        assert resumed.losses[stage] == pytest.approx(whole.losses[stage], rel=1e-5), stage
    for name in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"):
        a, b = load_file(tmp_path / "whole" / name), load_file(out / name)
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), name


def test_lora_changes_only_lora_weights_and_loads_onto_the_base(tmp_path, base_dir):
    images, poses = subject(1)
    base = DreamPosePipeline.from_pretrained(base_dir)
    pipe = DreamPosePipeline.from_pretrained(base_dir)
    settings = FinetuneSettings(unet_steps=3, vae_steps=1, unet_lr=1e-2, lora_rank=4, **FAST)
    finetune(pipe, images, tmp_path / "lora", poses=poses, settings=settings)

    trained = dict(pipe.unet.named_parameters())
    original = dict(base.unet.named_parameters())
    lora = {k: v for k, v in trained.items() if "lora_" in k}
    assert lora
    for name, value in trained.items():
        if "lora_" not in name:
            assert torch.equal(value, original[name.replace(".base_layer", "")]), name
    assert any(v.abs().max() > 0 for k, v in lora.items() if "lora_B" in k), "LoRA weights were trained"

    files = sorted(p.name for p in (tmp_path / "lora").iterdir())
    assert files == [
        "adapter.safetensors",
        "subject.json",
        "unet_lora.safetensors",
        "vae_decoder.safetensors",
    ]
    full_size = (base_dir / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert (tmp_path / "lora" / "unet_lora.safetensors").stat().st_size < full_size / 3

    loaded = load_pipeline(str(tmp_path / "lora"), device="cpu")
    x = torch.randn(1, 14, 8, 8, generator=torch.Generator().manual_seed(1))
    embeds = torch.randn(1, 17, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = pipe.unet(x, 10, encoder_hidden_states=embeds).sample
        got = loaded.unet(x, 10, encoder_hidden_states=embeds).sample
        untouched = base.unet(x, 10, encoder_hidden_states=embeds).sample
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(untouched, expected, atol=1e-4)


def test_bad_input_errors(tmp_path, base_dir):
    images, poses = subject(2)
    settings = FinetuneSettings(unet_steps=1, vae_steps=0, **FAST)
    with pytest.raises(ValueError, match="2 frames for 1 photos"):
        finetune(base_dir, images[:1], tmp_path / "a", poses=poses, settings=settings)
    wide = np.zeros((64, 128, 3), np.uint8)
    with pytest.raises(ValueError, match="not made from this photo"):
        finetune(base_dir, [wide, images[1]], tmp_path / "b", poses=poses, settings=settings)
    empty = PoseSequence.from_uv(
        np.stack([poses.uv_float()[0], np.zeros((2, 64, 64), np.float32)]), missing=[False, True]
    )
    with pytest.raises(ValueError, match="photo 2 .* no person"):
        finetune(base_dir, images, tmp_path / "c", poses=empty, settings=settings)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot write to .*file/out"):
        finetune(base_dir, images, blocker / "out", poses=poses, settings=settings)
    with pytest.raises(ValueError, match="multiple of 64"):
        FinetuneSettings(height=100)

    # A checkpoint from another model is refused on resume.
    import threading

    cancel = threading.Event()
    two_steps = FinetuneSettings(unet_steps=2, vae_steps=0, **FAST)
    finetune(
        base_dir,
        images,
        tmp_path / "d",
        poses=poses,
        settings=two_steps,
        cancel=cancel,
        progress=lambda p: cancel.set(),
    )
    assert (tmp_path / "d" / "checkpoint").is_dir()
    other = tiny_pipeline(seed=5)
    with pytest.raises(ValueError, match="another model"):
        finetune(other, images, tmp_path / "d", poses=poses, settings=two_steps, resume=True)
    with pytest.raises(ValueError, match="other photos"):
        finetune(base_dir, images[::-1], tmp_path / "d", poses=poses, settings=two_steps, resume=True)


def test_cli_finetune_writes_a_model_and_reports_errors(tmp_path, base_dir, capsys):
    images, poses = subject(1)
    from PIL import Image

    Image.fromarray(images[0]).save(tmp_path / "me.png")
    poses.save(tmp_path / "me.npz")
    args = [
        "finetune",
        "--model",
        str(base_dir),
        "--image",
        str(tmp_path / "me.png"),
        "--poses",
        str(tmp_path / "me.npz"),
    ]
    args += [
        "--height",
        "64",
        "--width",
        "64",
        "--unet-steps",
        "1",
        "--vae-steps",
        "1",
        "--no-gradient-checkpointing",
    ]
    assert cli_main([*args, "--output", str(tmp_path / "out")]) == 0
    assert isinstance(DreamPosePipeline.from_pretrained(tmp_path / "out"), DreamPosePipeline)

    bad = [*args, "--image", str(tmp_path / "me.png"), "--output", str(tmp_path / "bad")]
    assert cli_main(bad) == 2
    assert "1 frames for 2 photos" in capsys.readouterr().err


def test_bf16_mixed_precision_learns_and_its_checkpoints_round_trip(tmp_path):
    """Mixed precision as GPUs run it (bf16 autocast, fp32 weights), tested on the CPU."""
    images, poses = subject(1)
    pipe = tiny_pipeline(0)
    settings = FinetuneSettings(
        unet_steps=20,
        vae_steps=2,
        unet_lr=2e-3,
        vae_lr=1e-3,
        mixed_precision="bf16",
        crop_min_scale=1.0,
        **FAST,
    )
    autocast_dtypes = []
    real_forward = pipe.unet.forward

    def spy(*args, **kwargs):
        autocast_dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return real_forward(*args, **kwargs)

    pipe.unet.forward = spy
    result = finetune(pipe, images, tmp_path / "bf16", poses=poses, settings=settings)
    pipe.unet.forward = real_forward
    assert set(autocast_dtypes) == {torch.bfloat16}, "the UNet ran under bf16 autocast"
    assert pipe.unet.dtype == torch.float32, "the trained weights stay fp32"
    losses = result.losses["unet"]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    loaded = DreamPosePipeline.from_pretrained(tmp_path / "bf16")
    for name, tensor in pipe.unet.state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], tensor, rtol=0, atol=0)


def test_a_cancel_before_the_first_step_writes_nothing(tmp_path, base_dir):
    import threading

    images, poses = subject(1)
    cancel = threading.Event()
    cancel.set()
    out = tmp_path / "never"
    result = finetune(base_dir, images, out, poses=poses, settings=FinetuneSettings(**FAST), cancel=cancel)
    assert result.cancelled and result.steps_done == {"unet": 0, "vae": 0}
    assert sorted(p.name for p in out.iterdir()) == [], "no model copy and no checkpoint for zero steps"
