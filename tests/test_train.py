"""Base training (phase 1) with accelerate on the tiny model, CPU."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from dreampose.cli import main as cli_main
from dreampose.model.pipeline import DreamPosePipeline
from dreampose.model.tiny import tiny_pipeline
from dreampose.training.settings import TrainSettings
from dreampose.training.train import train
from tests.helpers.training import write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "height": 64,
    "width": 64,
    "batch_size": 2,
    "gradient_accumulation_steps": 2,
    "learning_rate": 1e-4,
    "gradient_checkpointing": False,
    "num_workers": 0,
    "sample_every": 0,
    "checkpoint_every": 1,
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"))


def unet_weights(folder):
    return load_file(folder / "model" / "unet" / "diffusion_pytorch_model.safetensors")


def test_two_steps_then_resume_continues_at_step_three_like_an_uninterrupted_run(tmp_path, base_dir, dataset):
    whole = train(base_dir, dataset, tmp_path / "whole", TrainSettings(max_steps=3, **TINY))
    assert whole.step == 3 and len(whole.losses) == 3

    first = train(base_dir, dataset, tmp_path / "run", TrainSettings(max_steps=2, **TINY))
    assert first.step == 2
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["step-1", "step-2"]
    optimizer_file = tmp_path / "run" / "checkpoints" / "step-2" / "optimizer.bin"
    saved_optimizer = torch.load(optimizer_file, weights_only=True)
    assert saved_optimizer["state"], "the checkpoint holds the optimiser's moments"

    steps = []
    resumed = train(
        base_dir,
        dataset,
        tmp_path / "run",
        TrainSettings(max_steps=3, **TINY),
        resume=True,
        on_step=lambda step, loss: steps.append(step),
    )
    assert resumed.start_step == 2 and steps == [3]
    assert resumed.losses[0] == pytest.approx(whole.losses[2], rel=1e-5)
    a, b = unet_weights(tmp_path / "whole"), unet_weights(tmp_path / "run")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), "resumed weights differ from uninterrupted"
    assert isinstance(DreamPosePipeline.from_pretrained(tmp_path / "run" / "model"), DreamPosePipeline)


def test_training_lowers_the_loss_and_writes_samples(tmp_path, base_dir, dataset):
    settings = TrainSettings(
        max_steps=16,
        **{
            **TINY,
            "learning_rate": 2e-3,
            "checkpoint_every": 100,
            "sample_every": 16,
            "gradient_accumulation_steps": 1,
        },
        pose_dropout=0,
        image_dropout=0,
        both_dropout=0,
        sample_steps=2,
    )
    result = train(base_dir, dataset, tmp_path / "out", settings)
    assert sum(result.losses[-4:]) < 0.8 * sum(result.losses[:4])
    assert (tmp_path / "out" / "samples" / "step-16.png").is_file()


def test_resume_refuses_another_model_and_existing_checkpoints(tmp_path, base_dir, dataset):
    train(base_dir, dataset, tmp_path / "run", TrainSettings(max_steps=1, **TINY))
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(base_dir, dataset, tmp_path / "run", TrainSettings(max_steps=2, **TINY))
    other = tmp_path / "other"
    tiny_pipeline(7).save_pretrained(other)
    with pytest.raises(ValueError, match="another model"):
        train(other, dataset, tmp_path / "run", TrainSettings(max_steps=2, **TINY), resume=True)


def test_cli_train_and_an_empty_dataset(tmp_path, base_dir, dataset, capsys):
    args = ["train", "--model", str(base_dir), "--dataset", str(dataset), "--output", str(tmp_path / "out")]
    args += ["--height", "64", "--width", "64", "--batch-size", "2", "--gradient-accumulation-steps", "1"]
    args += ["--max-steps", "1", "--num-workers", "0", "--sample-every", "0", "--no-gradient-checkpointing"]
    assert cli_main(args) == 0
    assert (tmp_path / "out" / "model" / "model_index.json").is_file()
    (tmp_path / "empty" / "video0").mkdir(parents=True)
    bad = [
        "train",
        "--model",
        str(base_dir),
        "--dataset",
        str(tmp_path / "empty"),
        "--output",
        str(tmp_path / "o2"),
    ]
    assert cli_main(bad) == 2
    err = capsys.readouterr().err
    assert "no usable videos" in err and "empty" in err and "frames/" in err
