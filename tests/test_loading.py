"""The one device and dtype rule, and loading models by name."""

from __future__ import annotations

import pytest
import torch

from dreampose.runtime import loading, references
from dreampose.runtime.loading import pick_device


@pytest.fixture
def machine(monkeypatch):
    """Pretend to have (or lack) a CUDA GPU of a given compute capability, or Apple MPS."""

    def make(cuda_capability=None, mps=False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_capability is not None)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if cuda_capability else 0)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cuda_capability)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return make


@pytest.mark.parametrize(
    "capability, mps, expected",
    [
        ((9, 0), False, ("cuda", torch.bfloat16)),  # Hopper
        ((8, 0), False, ("cuda", torch.bfloat16)),  # Ampere: bf16 runs natively
        ((7, 5), False, ("cuda", torch.float16)),  # Turing: fp16
        (None, True, ("mps", torch.float16)),  # Apple
        (None, False, ("cpu", torch.float32)),
    ],
)
def test_the_default_device_and_dtype(machine, capability, mps, expected):
    machine(capability, mps)
    placement = pick_device()
    assert (placement.device.type, placement.dtype) == expected


def test_explicit_choices_and_impossible_ones(machine):
    machine(None, False)
    assert pick_device("cpu", "bf16").dtype == torch.bfloat16
    assert str(pick_device("cpu")) == "cpu (fp32)"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="no Apple GPU"):
        pick_device("mps")
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        pick_device("cpu", "fp16")
    with pytest.raises(ValueError, match="--dtype must be one of auto, fp32, fp16, bf16"):
        pick_device("cpu", "fp8")
    with pytest.raises(ValueError, match="--device must be cpu, cuda, cuda:N or mps"):
        pick_device("gpu0")
    machine((8, 6), False)
    assert pick_device("cuda", "fp16").dtype == torch.float16
    with pytest.raises(ValueError, match="has 1 CUDA GPU"):
        pick_device("cuda:3")


def test_finetuning_mixed_precision_follows_the_same_rule(machine):
    from dreampose.training.finetune import _autocast_dtype

    machine((7, 0), False)
    assert _autocast_dtype("auto", torch.device("cuda")) == torch.float16
    machine((8, 0), False)
    assert _autocast_dtype("auto", torch.device("cuda")) == torch.bfloat16
    machine(None, False)
    assert _autocast_dtype("auto", torch.device("cpu")) is None
    assert _autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        _autocast_dtype("fp16", torch.device("cpu"))


def test_model_names_resolve_in_order(monkeypatch, tmp_path):
    monkeypatch.delenv(references.MODEL_ENV, raising=False)
    monkeypatch.setenv("DREAMPOSE_CACHE", str(tmp_path / "empty-cache"))
    assert references.chosen_model("given") == "given"
    assert references.chosen_model() == str(references.DEFAULT_MODEL_DIR)
    monkeypatch.setenv(references.MODEL_ENV, "from-env")
    assert references.chosen_model() == "from-env"


def test_loading_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="not a DreamPose model folder"):
        loading.load_pipeline(str(tmp_path), device="cpu")
    pipe = loading.load_pipeline("tiny", device="cpu")
    assert pipe.unet.device.type == "cpu" and pipe.unet.dtype == torch.float32
    assert pipe.config.tiny_random
