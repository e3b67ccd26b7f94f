"""DreamPosePipeline on the tiny random model: guidance, batching, seeds, save/load, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from PIL import Image

from dreampose.media.canvas import fit_pose
from dreampose.model.conditioning import official_key_frame
from dreampose.model.events import FrameDone, Progress
from dreampose.model.guidance import dual_guidance
from dreampose.model.pipeline import DreamPosePipeline
from dreampose.model.schedulers import SAMPLERS
from tests.helpers.poses import SIZE, make_poses

STEPS = 2


def render(pipe, image, poses, seed=0, **kwargs):
    kwargs = {"num_inference_steps": STEPS, "height": SIZE, "width": SIZE, **kwargs}
    out = pipe(image, poses, generator=torch.Generator().manual_seed(seed), output_type="np", **kwargs)
    return out.frames.astype(np.float32)


def differs(a, b, threshold=1.0):
    return np.abs(a - b).mean() > threshold


def test_output_is_one_rgb_frame_per_selected_pose(tiny_pipe, subject_image, poses):
    out = tiny_pipe(subject_image, poses, num_inference_steps=STEPS, height=SIZE, width=SIZE, frames=[3, 1])
    assert out.frame_indices == [3, 1]
    assert [f.size for f in out.frames] == [(SIZE, SIZE)] * 2
    assert all(isinstance(f, Image.Image) and f.mode == "RGB" for f in out.frames)


def test_batched_guidance_step_equals_three_separate_unet_calls(tiny_pipe, subject_image, poses):
    pipe = tiny_pipe
    calls = []
    real_unet_forward = pipe.unet.forward

    def spy(sample, t, encoder_hidden_states, **kw):
        out = real_unet_forward(sample, t, encoder_hidden_states=encoder_hidden_states, **kw)
        calls.append((sample.clone(), t, encoder_hidden_states.clone(), out.sample.clone()))
        return out

    pipe.unet.forward = spy
    render(pipe, subject_image, poses, num_inference_steps=1, frames=[2])
    pipe.unet.forward = real_unet_forward
    ((sample, t, embeds, batched),) = calls
    assert sample.shape[0] == 3  # the three branches in one call
    # Recompute each branch alone: (∅, ∅), (c_I, c_P), (c_I, ∅) in the pipeline's order.
    with torch.no_grad():
        alone = [
            pipe.unet(sample[i : i + 1], t, encoder_hidden_states=embeds[i : i + 1]).sample for i in range(3)
        ]
    torch.testing.assert_close(torch.cat(alone), batched, rtol=1e-4, atol=1e-5)
    # Branch contents: zero pose in the unconditional and image-only branches, the real
    # pose in the middle one; black-image embedding only in the first.
    pose = sample[:, 4:]
    assert pose[0].abs().sum() == 0 and pose[2].abs().sum() == 0 and pose[1].abs().sum() > 0
    torch.testing.assert_close(embeds[1], embeds[2])
    assert not torch.allclose(embeds[0], embeds[1])
    guided = dual_guidance(alone[0], alone[2], alone[1], 8.0, 3.0)
    manual = alone[0] + 8.0 * (alone[2] - alone[0]) + 3.0 * (alone[1] - alone[2])
    torch.testing.assert_close(guided, manual)


def test_the_stream_reports_every_step_then_each_frame_of_its_batch(tiny_pipe, subject_image, poses):
    """PNDM takes one step more than asked (3 for 2): progress counts the steps of every frame."""
    kwargs = {"num_inference_steps": STEPS, "height": SIZE, "width": SIZE, "frames": [0, 1, 2]}
    kwargs["generator"] = torch.Generator().manual_seed(0)
    events = list(tiny_pipe.stream(subject_image, poses, frame_batch_size=2, scheduler="pndm", **kwargs))
    seen = [(e.done, e.total) if isinstance(e, Progress) else e.index for e in events]
    assert seen == [(2, 9), (4, 9), (6, 9), 0, 1, (7, 9), (8, 9), (9, 9), 2]
    streamed = np.stack([e.image for e in events if isinstance(e, FrameDone)]).astype(np.float32)
    np.testing.assert_array_equal(
        streamed, render(tiny_pipe, subject_image, poses, frame_batch_size=2, frames=[0, 1, 2])
    )


def test_a_stream_closed_mid_render_stops_within_one_step(tiny_pipe, subject_image, poses):
    calls = []
    real_unet_forward = tiny_pipe.unet.forward
    tiny_pipe.unet.forward = lambda *a, **kw: calls.append(1) or real_unet_forward(*a, **kw)
    try:
        events = tiny_pipe.stream(subject_image, poses, num_inference_steps=10, height=SIZE, width=SIZE)
        assert isinstance(next(events), Progress) and isinstance(next(events), Progress)
        events.close()  # the consumer stops listening after two steps
    finally:
        tiny_pipe.unet.forward = real_unet_forward
    assert len(calls) == 2, "no UNet call after the consumer left"


def test_batch_of_frames_equals_frames_one_by_one(tiny_pipe, subject_image, poses):
    together = render(tiny_pipe, subject_image, poses, frame_batch_size=4)
    alone = render(tiny_pipe, subject_image, poses, frame_batch_size=1)
    np.testing.assert_allclose(together, alone, atol=2)  # uint8 rounding of float noise


def test_per_frame_noise_does_not_depend_on_the_chunk(tiny_pipe, subject_image, poses):
    whole = render(tiny_pipe, subject_image, poses, same_noise_for_all_frames=False, frame_batch_size=2)
    tail = render(tiny_pipe, subject_image, poses, same_noise_for_all_frames=False, frames=[2, 3])
    np.testing.assert_allclose(whole[2:], tail, atol=2)


def test_same_seed_same_frames_other_seed_other_frames(tiny_pipe, subject_image, poses):
    a = render(tiny_pipe, subject_image, poses, seed=1, frames=[0])
    b = render(tiny_pipe, subject_image, poses, seed=1, frames=[0])
    c = render(tiny_pipe, subject_image, poses, seed=2, frames=[0])
    np.testing.assert_array_equal(a, b)
    assert differs(a, c)


def test_save_and_load_give_identical_output(tiny_pipe, subject_image, poses, tmp_path):
    tiny_pipe.save_pretrained(tmp_path)
    loaded = DreamPosePipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.tiny_random and loaded.numerics.name == "dreampose"
    np.testing.assert_array_equal(
        render(tiny_pipe, subject_image, poses, frames=[1]), render(loaded, subject_image, poses, frames=[1])
    )


def test_guidance_weights_decide_what_the_output_depends_on(tiny_pipe, subject_image):
    other_image = np.ascontiguousarray(subject_image[::-1, ::-1, ::-1])
    poses_a, poses_b = make_poses(seed=0), make_poses(seed=1)[::-1].copy()

    def frame(image, poses, s_i, s_p):
        return render(tiny_pipe, image, poses, frames=[1], image_guidance_scale=s_i, pose_guidance_scale=s_p)

    base = frame(subject_image, poses_a, 8.0, 3.0)
    assert differs(base, frame(subject_image, poses_b, 8.0, 3.0))  # poses matter
    assert differs(base, frame(other_image, poses_a, 8.0, 3.0))  # the image matters
    # sP = 0: the poses no longer matter, the image still does.
    no_pose = frame(subject_image, poses_a, 8.0, 0.0)
    np.testing.assert_allclose(no_pose, frame(subject_image, poses_b, 8.0, 0.0), atol=1)
    assert differs(no_pose, frame(other_image, poses_a, 8.0, 0.0))
    # sI = sP = 0: neither matters.
    neither = frame(subject_image, poses_a, 0.0, 0.0)
    np.testing.assert_allclose(neither, frame(other_image, poses_b, 0.0, 0.0), atol=1)


@pytest.mark.parametrize(
    "name, cls",
    [("ddim", DDIMScheduler), ("dpm++", DPMSolverMultistepScheduler), ("euler", EulerDiscreteScheduler)],
)
def test_samplers_by_name_are_those_samplers(tiny_pipe, subject_image, poses, name, cls):
    """A name gives that sampler on the model's noise schedule; a different sampler samples differently."""
    own = cls.from_config(tiny_pipe.scheduler.config, **SAMPLERS[name][1])
    by_name = render(tiny_pipe, subject_image, poses, frames=[0], num_inference_steps=3, scheduler=name)
    np.testing.assert_array_equal(
        by_name, render(tiny_pipe, subject_image, poses, frames=[0], num_inference_steps=3, scheduler=own)
    )
    assert differs(
        by_name,
        render(tiny_pipe, subject_image, poses, frames=[0], num_inference_steps=3, scheduler="pndm"),
        0.1,
    )
    assert type(tiny_pipe.scheduler).__name__ == "PNDMScheduler", (
        "a call never changes the model's own sampler"
    )


def test_two_threads_with_different_samplers_get_what_they_get_alone(tiny_pipe, subject_image, poses):
    """The sampler belongs to the call: concurrent renders of one pipeline cannot disturb each other."""
    requests = [
        dict(scheduler="dpm++", num_inference_steps=6),
        dict(scheduler="pndm", num_inference_steps=5),
    ] * 2
    alone = [render(tiny_pipe, subject_image, poses, frames=[1], **r) for r in requests]
    results = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def run(i):
        barrier.wait()  # start together, so the sampling loops interleave
        results[i] = render(tiny_pipe, subject_image, poses, frames=[1], **requests[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, expected in zip(results, alone, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_official_numerics_start_from_the_subject_latents(tiny_pipe, subject_image, poses):
    """Official numerics noise the photo's own latents to the first timestep (img2img at strength 1)."""
    tiny_pipe.register_to_config(numerics="official")
    scheduler = tiny_pipe.make_scheduler("pndm")
    started_from = []
    real_add_noise = scheduler.add_noise
    scheduler.add_noise = lambda original, noise, t: (
        started_from.append((original, t)) or real_add_noise(original, noise, t)
    )
    render(tiny_pipe, subject_image, poses, frames=[0], scheduler=scheduler)
    tiny_pipe.register_to_config(numerics="dreampose")
    ((original, t),) = started_from
    subject = official_key_frame(subject_image, SIZE, SIZE)  # stretched, as the official code does
    torch.testing.assert_close(original, tiny_pipe.encode_latents(subject, "cpu", torch.float32))
    assert int(t[0]) == int(scheduler.timesteps[0])
    started_from.clear()
    render(tiny_pipe, subject_image, poses, frames=[0], scheduler=scheduler)
    assert started_from == [], "our numerics start from pure noise"


def test_greyscale_and_transparent_photos_are_what_they_show(tiny_pipe, subject_image, poses):
    grey = Image.fromarray(subject_image).convert("L")
    as_rgb = np.repeat(np.asarray(grey)[:, :, None], 3, axis=2)
    expected = render(tiny_pipe, as_rgb, poses, frames=[0])
    np.testing.assert_array_equal(render(tiny_pipe, grey, poses, frames=[0]), expected)
    np.testing.assert_array_equal(render(tiny_pipe, np.asarray(grey), poses, frames=[0]), expected)
    # Transparent pixels become white (a cut-out's background), not black.
    rgba = np.dstack([subject_image, np.full(subject_image.shape[:2], 255, np.uint8)])
    rgba[:30, :, 3] = 0
    on_white = subject_image.copy()
    on_white[:30] = 255
    np.testing.assert_array_equal(
        render(tiny_pipe, rgba, poses, frames=[0]), render(tiny_pipe, on_white, poses, frames=[0])
    )


def test_poses_of_another_size_are_letterboxed_onto_the_canvas(tiny_pipe, subject_image):
    big = make_poses(size=100)
    fitted, _, _ = fit_pose(big, None, SIZE, SIZE)
    np.testing.assert_array_equal(
        render(tiny_pipe, subject_image, big, frames=[0]),
        render(tiny_pipe, subject_image, fitted, frames=[0]),
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"poses": np.zeros((3, 3, SIZE, SIZE), np.float32)}, r"shape \(N, 2, H, W\)"),
        ({"poses": np.zeros((0, 2, SIZE, SIZE), np.float32)}, "empty"),
        ({"poses": np.full((2, 2, SIZE, SIZE), 2.0, np.float32)}, r"in \[0, 1\]"),
        ({"frames": [7]}, "out of range"),
        ({"frames": []}, "no frames"),
        ({"image_guidance_scale": -1.0}, "image_guidance_scale must be a number from 0 to 30"),
        ({"pose_guidance_scale": -0.5}, "pose_guidance_scale must be a number from 0 to 30"),
        ({"image_guidance_scale": float("inf")}, "image_guidance_scale must be a number from 0 to 30"),
        ({"pose_guidance_scale": 1e30}, "pose_guidance_scale must be a number from 0 to 30"),
        ({"num_inference_steps": 0}, "from 1 to 1000"),
        ({"num_inference_steps": 1000, "scheduler": "pndm"}, "pndm takes at most 999 steps"),
        ({"height": 100}, "multiple of 64"),
        ({"width": 0}, "multiple of 64"),
        ({"image": np.zeros((8, 8, 5), np.uint8)}, "H x W x 3"),
        ({"image": np.zeros((8, 8, 3), np.float32)}, "integers"),
    ],
)
def test_bad_input_is_a_clear_value_error(tiny_pipe, subject_image, poses, change, message):
    kwargs = {"image": subject_image, "poses": poses, "num_inference_steps": 1, "height": SIZE, "width": SIZE}
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        tiny_pipe(**kwargs)


def test_pndm_is_refused_all_1000_steps_before_any_model_loads_and_others_take_them():
    """PNDM runs one step more than asked: at 1000 it fell off the schedule inside diffusers
    (IndexError), from the top of the app's Steps slider."""
    from dreampose.rendering.settings import RenderSettings

    with pytest.raises(ValueError, match="pndm takes at most 999 steps"):
        RenderSettings(scheduler="pndm", num_inference_steps=1000)
    assert RenderSettings(scheduler="pndm", num_inference_steps=999).num_inference_steps == 999
    assert RenderSettings(scheduler="dpm++", num_inference_steps=1000).num_inference_steps == 1000
