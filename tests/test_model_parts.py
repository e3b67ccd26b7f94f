"""The new layers start as the paper says: the widened UNet and the adapter change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

from dreampose.model.adapter import ImageAdapter
from dreampose.model.guidance import dual_guidance
from dreampose.model.numerics import OFFICIAL
from dreampose.model.pose_window import pose_condition, pose_window
from dreampose.model.tiny import tiny_stable_diffusion
from dreampose.model.unet import num_pose_frames_of, widen_conv_in


def test_widened_unet_with_zero_pose_equals_original(tmp_path):
    unet = tiny_stable_diffusion(seed=3)["unet"]
    latents = torch.randn(2, 4, 8, 8)
    text = torch.randn(2, 7, 32)
    with torch.no_grad():
        before = unet(latents, 10, encoder_hidden_states=text).sample
        widen_conv_in(unet, num_pose_frames=5)
        after = unet(torch.cat([latents, torch.zeros(2, 10, 8, 8)], 1), 10, encoder_hidden_states=text).sample
    assert unet.conv_in.in_channels == 14
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    # The config says 14 channels, so it saves and loads as a plain diffusers UNet.
    unet.save_pretrained(tmp_path)
    loaded = UNet2DConditionModel.from_pretrained(tmp_path)
    assert loaded.config.in_channels == 14 and num_pose_frames_of(loaded) == 5


def test_widening_twice_is_refused():
    unet = widen_conv_in(tiny_stable_diffusion()["unet"])
    with pytest.raises(ValueError, match="widen only a plain"):
        widen_conv_in(unet)


def test_adapter_starts_as_the_clip_tokens():
    adapter = ImageAdapter()
    clip = torch.randn(2, 50, 768)
    latents = torch.randn(2, 4, 80, 64)
    with torch.no_grad():
        out = adapter(clip, latents)
    torch.testing.assert_close(out, clip)


def test_adapter_has_the_official_parameter_shapes():
    shapes = {k: tuple(v.shape) for k, v in ImageAdapter().state_dict().items()}
    assert shapes == {
        "vae2clip.weight": (768, 1280),
        "vae2clip.bias": (768,),
        "linear1.weight": (50, 54),
        "linear1.bias": (50,),
    }


def test_adapter_pooling_matches_maxpool2_at_640x512_and_adapts_elsewhere():
    adapter = ImageAdapter()
    latents = torch.randn(1, 4, 80, 64)
    expected = torch.nn.functional.max_pool2d(latents, 2).flatten(2)
    torch.testing.assert_close(adapter.pool(latents).flatten(2), expected)
    with torch.no_grad():  # another size still gives 50 tokens with the same weights
        assert adapter(torch.randn(1, 50, 768), torch.randn(1, 4, 96, 96)).shape == (1, 50, 768)


def test_dual_guidance_is_equation_4():
    eps_uncond, eps_image, eps_full = torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([4.0])
    # 1 + 8 * (3 - 1) + 3 * (4 - 3) = 20
    assert dual_guidance(eps_uncond, eps_image, eps_full, 8.0, 3.0).item() == 20.0
    # sI = sP = 1 gives the fully conditioned prediction; 0, 0 the unconditional one.
    assert dual_guidance(eps_uncond, eps_image, eps_full, 1.0, 1.0).item() == 4.0
    assert dual_guidance(eps_uncond, eps_image, eps_full, 0.0, 0.0).item() == 1.0


@pytest.mark.parametrize(
    "index, expected",
    [(0, [0, 0, 0, 1, 2]), (1, [0, 0, 1, 2, 3]), (5, [3, 4, 5, 6, 7]), (9, [7, 8, 9, 9, 9])],
)
def test_pose_window_repeats_the_nearest_frame(index, expected):
    assert pose_window(index, 10) == expected


def test_pose_window_official_numerics_repeat_the_centre():
    assert OFFICIAL.pose_window(1, 10, 5) == [1, 0, 1, 2, 3]


def test_pose_condition_stacks_the_window_in_order():
    uv = torch.zeros(6, 2, 16, 16)
    for i in range(6):
        uv[i] = (i + 1) / 10  # frame i has value (i + 1) / 10 everywhere
    cond = pose_condition(uv, [2, 5], (4, 4))
    assert cond.shape == (2, 10, 4, 4)
    per_channel = cond[:, :, 0, 0].numpy()
    np.testing.assert_allclose(per_channel[0], np.repeat([0.1, 0.2, 0.3, 0.4, 0.5], 2), rtol=1e-6)
    np.testing.assert_allclose(per_channel[1], np.repeat([0.4, 0.5, 0.6, 0.6, 0.6], 2), rtol=1e-6)
    official = OFFICIAL.pose_condition(uv, [2], (4, 4), 5)
    np.testing.assert_allclose(
        official[0, :, 0, 0].numpy(), (np.repeat([0.1, 0.2, 0.3, 0.4, 0.5], 2) - 0.5) * 2, rtol=1e-6
    )
