"""Turbo (DeepCache) on the tiny random model: exactness, skipped work, drift, batching, schedulers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from accelerate.hooks import ModelHook, add_hook_to_module, remove_hook_from_module
from diffusers import UNet2DConditionModel

from dreampose.model.schedulers import SAMPLERS
from dreampose.model.turbo import DeepCacheUNet, num_branches

STEPS = 12
pytestmark = pytest.mark.usefixtures("one_thread")  # the tiny model runs faster on one thread


def render(pipe, image, poses, seed=0, **kwargs):
    """(final latents of every frame, float frames) of a render."""
    latents = {}

    def keep_latents(_pipe, _step, _t, state):
        for i, index in enumerate(state["frame_indices"]):
            latents[index] = state["latents"][i].clone()

    size = poses.shape[-1]  # the fixture's square canvas
    kwargs = {"num_inference_steps": STEPS, "height": size, "width": size, "frames": [0, 1], **kwargs}
    out = pipe(
        image,
        poses,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
        callback_on_step_end=keep_latents,
        **kwargs,
    )
    return torch.stack([latents[i] for i in out.frame_indices]), out.frames.astype(np.float32)


def drift(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative L2 distance of latents a from the reference b."""
    return float((a - b).norm() / b.norm())


def unet_inputs(batch=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 14, 8, 8, generator=g), torch.randn(batch, 5, 32, generator=g)


class CountCalls:
    """Counts forward calls of chosen modules through forward hooks."""

    def __init__(self, **modules):
        self.counts = dict.fromkeys(modules, 0)
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in modules.items()]

    def _hook(self, name):
        def hook(module, args, output):
            self.counts[name] += 1

        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


# --------------------------------------------------------------------------- the wrapper itself
@torch.no_grad()
def test_every_branch_reproduces_the_unet_bit_for_bit_on_full_steps(tiny_pipe):
    sample, context = unet_inputs()
    plain = tiny_pipe.unet(sample, 500, encoder_hidden_states=context).sample
    assert num_branches(tiny_pipe.unet) == 4
    for branch in range(4):
        turbo = DeepCacheUNet(tiny_pipe.unet, interval=1, branch=branch)
        assert torch.equal(turbo(sample, 500, context).sample, plain)


@torch.no_grad()
def test_cached_step_reuses_the_deep_feature_of_the_last_full_step(tiny_pipe):
    unet = tiny_pipe.unet
    sample, context = unet_inputs()
    other, _ = unet_inputs(seed=1)
    turbo = DeepCacheUNet(unet, interval=2)
    turbo(sample, 500, context)  # full: caches the deep feature of `sample`
    cached = turbo(other, 480, context).sample
    # The same step run in full differs: the deep part saw `sample`, not `other`.
    full = unet(other, 480, encoder_hidden_states=context).sample
    assert not torch.allclose(cached, full, atol=1e-3)
    # With unchanged inputs the cached step gives exactly what the full step gave.
    again = DeepCacheUNet(unet, interval=2)
    first = again(sample, 500, context).sample
    assert torch.equal(again(sample, 500, context).sample, first)


@torch.no_grad()
def test_wrappers_keep_their_own_state_so_renders_can_interleave(tiny_pipe):
    unet = tiny_pipe.unet
    (a, ctx_a), (b, ctx_b) = unet_inputs(seed=0), unet_inputs(seed=1)
    steps = [(a * (1 - 0.1 * i), 500 - 20 * i) for i in range(4)]

    def alone():
        turbo = DeepCacheUNet(unet, interval=3)
        return [turbo(x, t, ctx_a).sample for x, t in steps]

    reference = alone()
    # Another loop on the same UNet between every step, in this thread and in another one.
    first, second = DeepCacheUNet(unet, interval=3), DeepCacheUNet(unet, interval=3)
    mixed = []
    for x, t in steps:
        mixed.append(first(x, t, ctx_a).sample)
        second(b, t, ctx_b)
    for got, want in zip(mixed, reference, strict=True):
        assert torch.equal(got, want)
    results = {}
    threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, alone())) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in range(2):
        for got, want in zip(results[k], reference, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@torch.no_grad()
def test_a_cache_from_another_batch_is_refused(tiny_pipe):
    sample, context = unet_inputs(batch=6)
    turbo = DeepCacheUNet(tiny_pipe.unet, interval=2)
    turbo(sample, 500, context)
    with pytest.raises(RuntimeError, match="one DeepCacheUNet per denoising loop"):
        turbo(sample[:3], 480, context[:3])
    turbo.reset()  # a reset makes the next call a full one again
    assert turbo(sample[:3], 480, context[:3]).sample.shape == (3, 4, 8, 8)


@torch.no_grad()
def test_accelerate_offload_hook_runs_on_every_call(tiny_pipe):
    class CountingHook(ModelHook):
        calls = 0

        def pre_forward(self, module, *args, **kwargs):
            CountingHook.calls += 1
            return args, kwargs

    unet = tiny_pipe.unet
    add_hook_to_module(unet, CountingHook())
    try:
        sample, context = unet_inputs()
        turbo = DeepCacheUNet(unet, interval=2)
        for t in (500, 480, 460):
            turbo(sample, t, context)
        assert CountingHook.calls == 3
    finally:
        remove_hook_from_module(unet)


@pytest.mark.parametrize(
    "interval, branch, message",
    [(0, 0, "at least 1"), (2.5, 0, "at least 1"), (True, 0, "at least 1"), (2, 4, "branch must be 0 to 3")],
)
def test_bad_settings_are_clear_value_errors(tiny_pipe, interval, branch, message):
    with pytest.raises(ValueError, match=message):
        DeepCacheUNet(tiny_pipe.unet, interval=interval, branch=branch)


def test_unets_with_other_inputs_are_refused():
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=16,
        class_embed_type="timestep",
    )
    with pytest.raises(ValueError, match="class_embed_type='timestep'.*without turbo"):
        DeepCacheUNet(unet)


# --------------------------------------------------------------------------- in the pipeline
def test_interval_1_is_the_plain_sampler_exactly(tiny_pipe, subject_image, poses):
    plain_latents, plain_frames = render(tiny_pipe, subject_image, poses, frame_batch_size=2)
    latents, frames = render(tiny_pipe, subject_image, poses, frame_batch_size=2, turbo=1)
    assert torch.equal(latents, plain_latents)
    np.testing.assert_array_equal(frames, plain_frames)


@pytest.mark.parametrize("interval, batch", [(3, 1), (3, 2), (5, 2)])
def test_cached_steps_skip_the_deep_blocks(tiny_pipe, subject_image, poses, interval, batch):
    unet = tiny_pipe.unet
    calls = CountCalls(mid=unet.mid_block, conv_in=unet.conv_in)
    try:
        render(tiny_pipe, subject_image, poses, frame_batch_size=batch, turbo=interval)
    finally:
        calls.remove()
    loops = 2 // batch  # frames 0 and 1
    sampler = tiny_pipe.make_scheduler()
    sampler.set_timesteps(STEPS)
    unet_calls = len(sampler.timesteps)  # PNDM: 13 UNet calls for 12 steps
    full_steps = -(-unet_calls // interval)  # calls 0, interval, 2 x interval ...
    assert calls.counts["conv_in"] == loops * unet_calls
    assert calls.counts["mid"] == loops * full_steps
    # The deepest down block runs layer by layer: its resnet, as often as the mid block.
    layer_calls = CountCalls(resnet=unet.down_blocks[-1].resnets[0])
    try:
        render(tiny_pipe, subject_image, poses, frame_batch_size=batch, turbo=interval)
    finally:
        layer_calls.remove()
    assert layer_calls.counts["resnet"] == loops * full_steps


@pytest.mark.parametrize("scheduler", sorted(SAMPLERS))
def test_drift_is_bounded_and_grows_with_the_interval(tiny_pipe, subject_image, poses, scheduler):
    call = {"frame_batch_size": 2, "scheduler": scheduler}
    plain, plain_frames = render(tiny_pipe, subject_image, poses, **call)
    exact, _ = render(tiny_pipe, subject_image, poses, turbo=1, **call)
    assert torch.equal(exact, plain)
    other_seed, other_frames = render(tiny_pipe, subject_image, poses, seed=1, **call)
    by_interval = {k: render(tiny_pipe, subject_image, poses, turbo=k, **call) for k in (2, 5)}
    seed_drift = drift(other_seed, plain)
    drifts = {k: drift(latents, plain) for k, (latents, _) in by_interval.items()}
    # Measured: seed ~1.35, interval 2 ~0.10, interval 5 ~0.26-0.29 (12 steps, every scheduler).
    assert 0 < drifts[2] < drifts[5] < 0.3 * seed_drift, (drifts, seed_drift)
    frame_drift = np.abs(by_interval[2][1] - plain_frames).mean()
    assert frame_drift < 0.3 * np.abs(other_frames - plain_frames).mean()


def test_batches_of_frames_equal_frames_one_by_one(tiny_pipe, subject_image, poses):
    frames = [0, 1, 2]
    _, together = render(tiny_pipe, subject_image, poses, frames=frames, frame_batch_size=2, turbo=3)
    _, alone = render(tiny_pipe, subject_image, poses, frames=frames, frame_batch_size=1, turbo=3)
    np.testing.assert_allclose(together, alone, atol=2)  # uint8 rounding of float noise


@pytest.mark.parametrize("turbo", [0, -2, 1.5, "3"])
def test_pipeline_refuses_a_bad_turbo_before_sampling(tiny_pipe, subject_image, poses, turbo):
    with pytest.raises(ValueError, match="turbo must be a whole number of at least 1"):
        render(tiny_pipe, subject_image, poses, turbo=turbo)
