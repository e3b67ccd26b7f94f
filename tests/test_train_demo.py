"""The demo model's recipe at toy scale: it trains, writes fp16 weights and a true model card,
and the folder loads through the project's loader like any model."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dreampose.model.numerics import DREAMPOSE
from dreampose.runtime.loading import load_pipeline
from dreampose.runtime.references import resolve
from dreampose.world import Pose, Scene, render
from dreampose.world.train_demo import main, parse_args, run

pytestmark = pytest.mark.usefixtures("one_thread")

TOY = "--height 64 --width 64 --videos 2 --frames 3 --vae-steps 3 --vae-batch 2 --steps 2 --batch-size 2"
TOY += " --unet-channels 32 64 --vae-channels 8 --seed 3"


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "model"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*TOY.split(), "--output", str(folder)]) == 0
    finally:
        torch.set_num_threads(threads)
    return folder


def test_the_recipe_writes_a_model_that_the_project_loads_and_renders_with(demo_model):
    assert resolve(str(demo_model)).kind == "pipeline" and not resolve(str(demo_model)).tiny_random
    unet = load_file(demo_model / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(t.dtype == torch.float16 for t in unet.values())
    pipe = load_pipeline(str(demo_model), device="cpu")
    photo = render(Scene.from_seed(99, (64, 64)), Pose())
    uv = photo.uv[None].repeat(2, axis=0)
    frames = pipe(
        photo.rgb, uv, frames=[1], num_inference_steps=2, height=64, width=64, output_type="np"
    ).frames
    assert frames[0].shape == (64, 64, 3) and np.isfinite(frames[0]).all()


def test_phase_1_trains_on_the_latents_the_vae_decodes_not_on_latents_under_noise(demo_model):
    """Phase 1's targets are posterior samples (as in Stable Diffusion). The demo VAE is trained
    on its means, so its posterior must have next to no variance: with the variance of 1 its
    KL term gave it, every target was mostly noise, and the demo model rendered blotches."""
    from dreampose.training.losses import target_latents

    pipe = load_pipeline(str(demo_model), device="cpu", dtype="fp32")
    images = np.stack([render(Scene.from_seed(s, (64, 64)), Pose()).rgb for s in (5, 6)])
    with torch.no_grad():
        means = pipe.vae.encode(DREAMPOSE.adapter_pixels(images)).latent_dist.mean
        samples = [target_latents(pipe.vae, images, torch.Generator().manual_seed(s)) for s in (0, 1)]
    scaled = means * pipe.vae.config.scaling_factor
    assert (samples[0] - scaled).abs().max() < 1e-3 * scaled.std()
    assert (samples[0] - samples[1]).abs().max() < 1e-3 * scaled.std()


def test_the_model_card_records_the_run_and_the_weights_digests(demo_model):
    card = (demo_model / "README.md").read_text()
    assert (
        "--vae-steps 3" in card and "Seed: 3" in card and "2 generated videos x 3 frames at 64 x 64" in card
    )
    assert re.search(r"VAE \(autoencoder\): 3 steps.*loss first \d", card)
    assert re.search(r"Phase 1 .*: 2 steps.*loss first \d", card)
    digests = dict(re.findall(r"\| `([^`]+\.safetensors)` \| `([0-9a-f]{64})` \|", card))
    assert "unet/diffusion_pytorch_model.safetensors" in digests and len(digests) >= 4
    for name, digest in digests.items():
        assert hashlib.sha256((demo_model / name).read_bytes()).hexdigest() == digest, name


def test_the_recipe_refuses_sizes_the_model_cannot_train_at_and_an_existing_output(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--height", "100", "--output", str(tmp_path / "new")])
    assert "multiples of 64; got 100 x 192" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--output", str(tmp_path)])
    assert "already exists" in capsys.readouterr().err


def test_the_model_carries_its_own_finetuning_defaults_and_size_and_names_no_machine(demo_model):
    from dreampose.cli import finetune as finetune_cli
    from dreampose.runtime.references import model_canvas

    ref = resolve(str(demo_model))
    assert ref.finetune_defaults() == {"unet_steps": 40, "unet_lr": 1e-4, "vae_steps": 40, "vae_lr": 1e-3}
    assert model_canvas(ref) == (64, 64)  # trained at --height 64 --width 64
    assert "_name_or_path" not in (demo_model / "model_index.json").read_text()
    # `dreampose finetune` takes them unless told otherwise
    import argparse

    parser = argparse.ArgumentParser()
    finetune_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["finetune", "--model", str(demo_model), "--image", "x.png", "--output", "o", "--vae-steps", "7"]
    )
    settings = finetune_cli.settings_for(args)
    assert (settings.unet_steps, settings.unet_lr, settings.vae_steps, settings.vae_lr) == (40, 1e-4, 7, 1e-3)
    assert (settings.height, settings.width) == (64, 64)


def test_a_rerun_reuses_the_finished_base_and_trains_phase_1_longer(tmp_path):
    """Training longer is the same command with more --steps: the seeded VAE is not trained
    again (a quarter hour at full size), and phase 1 resumes from its last checkpoint."""
    work = tmp_path / "work"
    args = [*TOY.split(), "--work", str(work)]
    logs: list[str] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(parse_args([*args, "--output", str(tmp_path / "first")]), log=logs.append)
        vae = work / "base" / "vae" / "diffusion_pytorch_model.safetensors"
        saved = vae.stat().st_mtime_ns, hashlib.sha256(vae.read_bytes()).hexdigest()
        logs.clear()
        longer = [*args, "--output", str(tmp_path / "longer"), "--steps", "3"]
        run(parse_args(longer), log=logs.append)
        assert any(line.startswith("reusing the base model") for line in logs), logs
        assert not any(line.startswith("vae step") for line in logs), logs
        assert (vae.stat().st_mtime_ns, hashlib.sha256(vae.read_bytes()).hexdigest()) == saved
        assert [line for line in logs if line.startswith("phase 1")] == [logs[-2]] and "3/3" in logs[-2]
        first, second = ((tmp_path / d / "README.md").read_text() for d in ("first", "longer"))
        vae_line = next(line for line in first.splitlines() if line.startswith("- VAE"))
        assert vae_line in second and "Phase 1 (UNet + adapter, `dreampose train`'s code): 3 steps" in second
        assert "resumed after step 2" in second
        # Another VAE setting is another base: trained again, not mixed up with the saved one.
        logs.clear()
        run(parse_args([*args, "--output", str(tmp_path / "other"), "--vae-steps", "4"]), log=logs.append)
    except ValueError as e:  # phase 1's checkpoints belong to the first base: refused by name
        assert "made from another model" in str(e)
        assert any(line.startswith("vae step 4/4") for line in logs), logs
    else:
        raise AssertionError("phase 1 resumed on another base model")
    finally:
        torch.set_num_threads(threads)
