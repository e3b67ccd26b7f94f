"""The one answer to "what is this model?": every kind of model reference, resolved offline."""

from __future__ import annotations

import json

import pytest

from dreampose.runtime import references
from dreampose.runtime.references import resolve
from tests.helpers.models import tiny_lora_subject


@pytest.fixture
def pipeline_folder(tmp_path):
    from dreampose.model.tiny import tiny_pipeline

    folder = tmp_path / "model"
    tiny_pipeline(seed=0).save_pretrained(folder)
    return folder


def test_the_tiny_model_and_a_model_folder(pipeline_folder):
    tiny = resolve("tiny")
    assert (tiny.kind, tiny.loadable, tiny.tiny_random) == ("tiny", True, True)
    assert tiny.numerics().name == "dreampose"
    model = resolve(str(pipeline_folder))
    assert (model.kind, model.path, model.pretrained) == ("pipeline", pipeline_folder, str(pipeline_folder))
    assert model.loadable and model.tiny_random  # saved from the tiny model: it says so


def test_a_lora_subject_folder_is_a_model_on_its_base(tmp_path):
    subject = resolve(str(tiny_lora_subject(tmp_path / "subject")))
    assert subject.kind == "lora" and subject.loadable
    assert subject.base().kind == "tiny" and subject.tiny_random
    assert subject.numerics().name == "dreampose"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "subject.json").write_text(json.dumps({"format": "something else"}))
    broken = resolve(str(tmp_path / "broken"))
    assert broken.kind == "invalid" and "is not a DreamPose subject model description" in broken.problem


def test_official_checkpoints_say_how_to_convert_them(tmp_path):
    folder = tmp_path / "official"
    folder.mkdir()
    for name in ("unet_epoch_20.pth", "adapter_20.pth"):
        (folder / name).write_bytes(b"checkpoint")
    ref = resolve(str(folder))
    assert ref.kind == "official" and not ref.loadable
    assert (
        f"dreampose convert --unet {folder / 'unet_epoch_20.pth'} --adapter {folder / 'adapter_20.pth'}"
        in (ref.problem)
    )
    assert resolve(str(folder / "unet_epoch_20.pth")).kind == "official"


def test_what_is_not_a_model_says_what_it_is(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    assert "is not a DreamPose model folder (no model_index.json)" in resolve(str(tmp_path / "empty")).problem
    sd = tmp_path / "sd"
    sd.mkdir()
    (sd / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    ref = resolve(str(sd))
    assert ref.kind == "invalid" and "holds a StableDiffusionPipeline, not a DreamPose model" in ref.problem
    monkeypatch.chdir(tmp_path)
    missing = resolve("models/dreampose")  # the default folder: local, although shaped like a hub id
    assert missing.kind == "missing" and "dreampose download" in missing.problem
    assert resolve("./runs/model").kind == "missing" and resolve("a/b/c").kind == "missing"


def test_hub_ids_are_recognised_without_the_network():
    assert resolve("someone/dreampose-model").kind == "hub"
    assert resolve("someone/dreampose-model").pretrained == "someone/dreampose-model"
    assert not resolve("someone/dreampose-model").tiny_random  # decided offline


def test_demo_is_the_shipped_demo_model_or_says_it_is_missing(tmp_path, monkeypatch, pipeline_folder):
    monkeypatch.setattr(references, "DEMO_MODEL_DIR", tmp_path / "no-demo")
    absent = resolve("demo")
    assert absent.kind == "missing"
    assert absent.problem.startswith("the demo model is not in this checkout (assets/demo-model)")
    monkeypatch.setattr(references, "DEMO_MODEL_DIR", pipeline_folder)
    present = resolve("demo")
    assert (present.kind, present.path, present.loadable) == ("demo", pipeline_folder, True)


def test_every_caller_reads_the_same_answer(tmp_path):
    """The app's status and loading agree on a LoRA subject folder (they used to disagree)."""
    from dreampose.app.models import model_status
    from dreampose.runtime.loading import load_pipeline

    folder = tiny_lora_subject(tmp_path / "subject")
    assert model_status(str(folder)).ready and model_status(str(folder)).tiny
    assert load_pipeline(str(folder), device="cpu").config.tiny_random
    (tmp_path / "empty").mkdir()
    status = model_status(str(tmp_path / "empty"))
    assert not status.ready and "is not a DreamPose model folder" in status.message
    with pytest.raises(ValueError, match="not a DreamPose model folder"):
        load_pipeline(str(tmp_path / "empty"), device="cpu")
