"""Speed settings keep the numerics: optimised renders match the plain path on the CPU.

Tolerance: final latents within 1e-4 (absolute and relative) of the plain render, and
uint8 frames within 1 grey level (a latent difference of ~1e-6 can still flip a rounding).
The tolerance is shown to catch a real change of the model (a 1e-3 weight perturbation).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor

from dreampose.model.tiny import tiny_pipeline
from dreampose.runtime.speed import (
    SpeedSettings,
    apply_speed_settings,
    attention_backends,
    check_sdpa,
    default_speed_settings,
)

LATENT_TOL = 1e-4
SIZE = 64


def _inputs(num_frames: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    poses = rng.random((num_frames, 2, SIZE, SIZE), dtype=np.float32)
    return image, poses


def _render(pipe, frame_batch_size: int = 2) -> tuple[torch.Tensor, np.ndarray]:
    """(final latents of every frame, uint8 frames) of a short seeded render."""
    image, poses = _inputs()
    latents: dict[int, torch.Tensor] = {}

    def keep_latents(_pipe, step, _t, kwargs):
        for i, index in enumerate(kwargs["frame_indices"]):
            latents[index] = kwargs["latents"][i].float().clone()

    frames = pipe(
        image,
        poses,
        num_inference_steps=2,
        height=SIZE,
        width=SIZE,
        frame_batch_size=frame_batch_size,
        generator=torch.Generator().manual_seed(7),
        same_noise_for_all_frames=False,
        output_type="np",
        callback_on_step_end=keep_latents,
    ).frames
    return torch.stack([latents[i] for i in sorted(latents)]), frames


def _assert_matches(reference, candidate) -> None:
    ref_latents, ref_frames = reference
    latents, frames = candidate
    torch.testing.assert_close(latents, ref_latents, atol=LATENT_TOL, rtol=LATENT_TOL)
    diff = np.abs(frames.astype(int) - ref_frames.astype(int)).max()
    assert diff <= 1, f"frames differ by up to {diff} grey levels"


@pytest.fixture(scope="module")
def reference():
    return _render(tiny_pipeline(seed=0))


def test_attention_is_pytorch_sdpa_by_default():
    backends = attention_backends(tiny_pipeline())
    assert backends == {"unet": {"AttnProcessor2_0"}, "vae": {"AttnProcessor2_0"}, "image_encoder": {"sdpa"}}
    check_sdpa(tiny_pipeline())


def test_check_sdpa_names_plain_attention():
    pipe = tiny_pipeline()
    pipe.unet.set_attn_processor(AttnProcessor())
    with pytest.raises(ValueError, match="unet uses AttnProcessor"):
        check_sdpa(pipe)
    with pytest.raises(ValueError, match="not PyTorch SDPA"):
        apply_speed_settings(pipe, SpeedSettings())


def test_settings_take_effect():
    pipe = tiny_pipeline()
    applied = apply_speed_settings(pipe, SpeedSettings(channels_last=True, fuse_qkv=True, vae_slicing=True))
    assert len(applied) == 4
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert pipe.vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert attention_backends(pipe)["unet"] == {"FusedAttnProcessor2_0"}
    assert attention_backends(pipe)["vae"] == {"FusedAttnProcessor2_0"}
    assert pipe.vae.use_slicing


def test_fusing_twice_is_harmless(reference):
    pipe = tiny_pipeline(seed=0)
    apply_speed_settings(pipe, SpeedSettings(fuse_qkv=True))
    apply_speed_settings(pipe, SpeedSettings(fuse_qkv=True))
    _assert_matches(reference, _render(pipe))


@pytest.mark.parametrize(
    "settings",
    [
        SpeedSettings(channels_last=True),
        SpeedSettings(fuse_qkv=True),
        SpeedSettings(vae_slicing=True),
        # Below the VAE's sample size diffusers does not tile, so tiling must change nothing.
        SpeedSettings(vae_tiling=True),
        default_speed_settings("cuda"),  # what CUDA renders get by default
        SpeedSettings(channels_last=True, fuse_qkv=True, vae_slicing=True, vae_tiling=True),
    ],
    ids=["channels_last", "fuse_qkv", "vae_slicing", "vae_tiling_small", "cuda_default", "all_but_compile"],
)
def test_optimised_render_matches_plain(reference, settings):
    pipe = tiny_pipeline(seed=0)
    apply_speed_settings(pipe, settings)
    _assert_matches(reference, _render(pipe))


def test_tolerance_catches_a_real_change(reference):
    """Guards the test above: a 1e-3 change to one attention weight must fail it."""
    pipe = tiny_pipeline(seed=0)
    apply_speed_settings(pipe, SpeedSettings(fuse_qkv=True))
    attention = next(m for m in pipe.unet.modules() if hasattr(m, "to_qkv"))
    with torch.no_grad():
        attention.to_qkv.weight.add_(1e-3 * torch.randn_like(attention.to_qkv.weight))
    with pytest.raises(AssertionError):
        _assert_matches(reference, _render(pipe))


def test_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="compile_mode"):
        SpeedSettings(compile_unet=True, compile_mode="fastest")


def test_compile_settings_are_checked():
    with pytest.raises(ValueError, match="backend"):
        SpeedSettings(compile_unet=True, compile_backend="warp-drive")
    with pytest.raises(ValueError, match="inductor backend only"):
        SpeedSettings(compile_unet=True, compile_backend="aot_eager", compile_mode="max-autotune")


@pytest.mark.slow
def test_traced_unet_matches_plain(reference):
    """Dynamo traces the UNet through the real sampling loop (aot_eager: no code generation,
    so seconds instead of minutes); inductor's generated code is checked by the slow test."""
    pipe = tiny_pipeline(seed=0)
    torch._dynamo.reset()
    apply_speed_settings(pipe, SpeedSettings(compile_unet=True, compile_backend="aot_eager"))
    _assert_matches(reference, _render(pipe))


@pytest.mark.slow
def test_inductor_compiled_unet_matches_plain(reference):
    """Minutes on a 2-core CPU (C++ code generation); deselect with -m 'not slow'."""
    pipe = tiny_pipeline(seed=0)
    torch._dynamo.reset()
    apply_speed_settings(pipe, SpeedSettings(compile_unet=True, channels_last=True, fuse_qkv=True))
    _assert_matches(reference, _render(pipe))


def test_defaults_are_on_for_gpus_only_and_keep_lora_targets_while_training():
    cuda = default_speed_settings("cuda")
    assert (cuda.channels_last, cuda.fuse_qkv, cuda.vae_slicing, cuda.compile_unet) == (
        True,
        True,
        True,
        False,
    )
    assert not default_speed_settings("cuda", training=True).fuse_qkv, "LoRA targets to_q/to_k/to_v"
    assert default_speed_settings("cuda", compile=True).compile_unet
    assert default_speed_settings("cpu") == SpeedSettings(), "measured no gain on the CPU"


def test_cli_speed_options(monkeypatch):
    from dreampose.cli import build_parser
    from dreampose.runtime.options import speed_settings

    def parse(*extra):
        return build_parser().parse_args(
            ["render", "--image", "p.png", "--poses", "p.npz", "--output", "o.mp4", *extra]
        )

    assert speed_settings(parse("--device", "cpu")) == SpeedSettings()
    assert speed_settings(parse("--device", "cpu", "--compile")).compile_unet
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert speed_settings(parse("--device", "cuda")) == default_speed_settings("cuda")
    assert speed_settings(parse("--device", "cuda", "--no-speed-settings")) == SpeedSettings()


def test_automatic_frame_batch_fits_the_free_memory(monkeypatch):
    from dreampose.runtime.speed import BYTES_PER_FRAME_640X512, MAX_AUTO_FRAME_BATCH, auto_frame_batch

    pipe = tiny_pipeline(seed=0)
    assert auto_frame_batch(pipe, 640, 512) == 1, "one frame at a time on the CPU"
    pipe.unet.to(torch.float16)
    monkeypatch.setattr(type(pipe), "_execution_device", property(lambda self: torch.device("cuda", 0)))
    free = {"bytes": 3.5 * BYTES_PER_FRAME_640X512}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(free["bytes"]), 80 * 2**30))
    assert auto_frame_batch(pipe, 640, 512) == 2  # 80 % of 3.5 frames' worth
    assert auto_frame_batch(pipe, 320, 256) == MAX_AUTO_FRAME_BATCH  # 11 quarter-size frames fit: capped
    free["bytes"] = 0.1 * BYTES_PER_FRAME_640X512
    assert auto_frame_batch(pipe, 640, 512) == 1, "never below one frame"
