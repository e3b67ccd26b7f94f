"""Official checkpoints written from a tiny model convert and reproduce that model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from dreampose.model.convert import convert_official, load_official_state_dict
from dreampose.model.pipeline import DreamPosePipeline
from dreampose.model.tiny import tiny_pipeline, tiny_stable_diffusion
from tests.helpers.poses import SIZE

OLD_VAE_NAMES = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def official_vae_state(vae) -> dict:
    """The VAE as diffusers < 0.14 (the official code's) named its attention weights."""
    state = {}
    for key, value in vae.state_dict().items():
        for new, old in OLD_VAE_NAMES.items():
            if f"attentions.0.{new}." in key:
                key = key.replace(f".{new}.", f".{old}.")
        state[key] = value
    return state


@pytest.fixture
def official_files(tmp_path):
    """A base SD folder, a CLIP folder and the three official .pth files (DDP prefixes)."""
    base = tiny_stable_diffusion(seed=0)
    for name in ("vae", "unet", "scheduler"):
        base[name].save_pretrained(tmp_path / "sd" / name)
    base["image_encoder"].save_pretrained(tmp_path / "clip")
    base["feature_extractor"].save_pretrained(tmp_path / "clip")

    # Stands in for an official finetuned DreamPose: same base and CLIP, changed weights.
    trained = tiny_pipeline(seed=0)
    torch.manual_seed(7)
    with torch.no_grad():
        for model in (trained.unet, trained.adapter, trained.vae):
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.02)
    files = {}
    for name, state in (
        ("unet", trained.unet.state_dict()),
        ("adapter", trained.adapter.state_dict()),
        ("vae", official_vae_state(trained.vae)),
    ):
        files[name] = tmp_path / f"{name}_5.pth"
        torch.save({f"module.{k}": v for k, v in state.items()}, files[name])
    return tmp_path, files, trained


def test_converted_model_reproduces_the_original(official_files, subject_image, poses):
    root, files, trained = official_files
    pipe = convert_official(
        str(root / "sd"),
        str(root / "clip"),
        files["unet"],
        files["adapter"],
        files["vae"],
        training_size=(64, 64),
    )
    assert pipe.numerics.name == "official"
    pipe.save_pretrained(root / "converted")
    converted = DreamPosePipeline.from_pretrained(root / "converted")
    assert converted.numerics.name == "official"

    trained.register_to_config(numerics="official")
    for model in (trained, converted):
        model.set_progress_bar_config(disable=True)
    kwargs = {"num_inference_steps": 2, "height": SIZE, "width": SIZE, "frames": [1], "output_type": "np"}
    want = trained(subject_image, poses, generator=torch.Generator().manual_seed(0), **kwargs).frames
    got = converted(subject_image, poses, generator=torch.Generator().manual_seed(0), **kwargs).frames
    np.testing.assert_array_equal(got, want)


def test_conversion_needs_no_stable_diffusion_unet_weights(official_files):
    """The official checkpoint replaces every UNet weight, so a Stable Diffusion folder without
    them (what `dreampose download` fetches: 3.4 GB less) converts to the very same model."""
    root, files, _ = official_files
    shutil.copytree(root / "sd", root / "sd-without-unet-weights")
    for weights in (root / "sd-without-unet-weights" / "unet").glob("diffusion_pytorch_model.*"):
        weights.unlink()
    args = (str(root / "clip"), files["unet"], files["adapter"], files["vae"])
    full = convert_official(str(root / "sd"), *args, training_size=(64, 64))
    lean = convert_official(str(root / "sd-without-unet-weights"), *args, training_size=(64, 64))
    for name in ("unet", "adapter", "vae", "image_encoder"):
        want, got = getattr(full, name).state_dict(), getattr(lean, name).state_dict()
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want), name


def test_swapped_files_are_named(official_files):
    root, files, _ = official_files
    with pytest.raises(ValueError, match="given as the unet checkpoint but looks like a adapter"):
        load_official_state_dict(files["adapter"], "unet")


def test_missing_and_mis_shaped_keys_are_named(official_files):
    root, files, _ = official_files
    state = torch.load(files["adapter"], weights_only=True)
    del state["module.linear1.bias"]
    state["module.vae2clip.weight"] = torch.zeros(3, 3)
    torch.save(state, files["adapter"])
    with pytest.raises(ValueError, match=r"missing: linear1.bias.*wrong shape: vae2clip.weight \(3, 3\)"):
        convert_official(
            str(root / "sd"), str(root / "clip"), files["unet"], files["adapter"], training_size=(64, 64)
        )


def test_a_pickle_that_is_not_plain_tensors_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv_in.weight": torch.zeros(1), "note": object.__new__(Exploit)}, path)
    with pytest.raises(
        ValueError, match=r"evil.pth .* refused: it asks to load \S*print, .*could run code"
    ) as e:
        load_official_state_dict(path, "unet")
    assert "weights_only" not in str(e.value), "never advise loading an untrusted file without weights_only"


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))
