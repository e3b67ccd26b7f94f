"""Official numerics: each way the official inference code prepares its inputs, pinned.

The whole-pipeline check against the official code itself is benchmarks/official_parity.py
(it needs a checkout of that code); these tests pin each point on tiny random models, with
expected values written from the official recipe, not taken from our code. The canvas is
128 x 64 (not square), so a swapped height and width shows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dreampose.model.adapter import adapter_for
from dreampose.model.conditioning import (
    official_clip_pixels,
    official_key_frame,
    stretch_contrast,
)
from dreampose.model.pipeline import DreamPosePipeline
from dreampose.model.tiny import tiny_components
from pose_extraction.official import import_official

HEIGHT, WIDTH = 128, 64  # latents 16 x 8; the adapter pools to 8 x 4 = 32 cells
CLIP_REFERENCE = Path(__file__).parent / "data" / "clip_transformers_4_25_1.npz"


def official_tiny(numerics: str = "official") -> DreamPosePipeline:
    """A tiny model trained at 128 x 64, whose adapter gives the VAE tokens real weight."""
    parts = tiny_components(seed=0)
    adapter = adapter_for(parts["image_encoder"], parts["vae"], parts["unet"], training_size=(HEIGHT, WIDTH))
    torch.manual_seed(5)
    with torch.no_grad():
        adapter.linear1.weight.add_(torch.randn_like(adapter.linear1.weight) * 0.3)
    pipe = DreamPosePipeline(**{**parts, "adapter": adapter}, numerics=numerics)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def photo() -> np.ndarray:
    """60 x 50: another aspect than the canvas, so stretching and letterboxing differ."""
    rng = np.random.default_rng(1)
    image = np.full((60, 50, 3), 200, np.uint8)
    image[10:55, 12:40] = rng.integers(0, 256, (45, 28, 3), dtype=np.uint8)
    return image


@pytest.fixture
def source_poses() -> np.ndarray:
    """4 frames of 40 x 48 U, V maps (another size and aspect than the canvas)."""
    rng = np.random.default_rng(2)
    uv = np.zeros((4, 2, 40, 48), np.float32)
    for i in range(4):
        uv[i, :, 5:35, 10 + 2 * i : 30 + 2 * i] = rng.uniform(0.05, 1.0, (2, 30, 20))
    return uv.astype(np.float16).astype(np.float32)  # values our pose file holds exactly


def vae_inputs(pipe: DreamPosePipeline) -> list[torch.Tensor]:
    """Every image the VAE encodes from now on, as given to it."""
    seen = []
    encode = pipe.vae.encode

    def recording(pixels, *args, **kwargs):
        seen.append(pixels.detach().clone())
        return encode(pixels, *args, **kwargs)

    pipe.vae.encode = recording
    return seen


# --------------------------------------------------------------------------- c_I
def test_unconditional_image_is_the_official_transposed_black_image(photo):
    pipe = official_tiny()
    seen = vae_inputs(pipe)
    subject = official_key_frame(photo, HEIGHT, WIDTH)
    with torch.no_grad():
        uncond, cond, _ = pipe.encode_subject(subject, "cpu", torch.float32)

        # The official recipe: zeros((W, H, 3)) -> VAE (raw pixels) -> MaxPool2d(2) -> flatten.
        black = torch.zeros(1, 3, WIDTH, HEIGHT)  # rows and columns swapped
        latents = pipe.vae.encode(black).latent_dist.mean * pipe.vae.config.scaling_factor
        assert latents.shape[-2:] == (WIDTH // 8, HEIGHT // 8)
        vae_tokens = pipe.adapter.vae2clip(F.max_pool2d(latents, 2).flatten(2))
        clip_input = official_clip_pixels(np.zeros((1, 32, 32, 3), np.uint8), pipe.feature_extractor)
        clip_tokens = pipe.image_encoder(clip_input).last_hidden_state
        tokens = torch.cat([clip_tokens, vae_tokens], dim=1)
        want = pipe.adapter.linear1(tokens.transpose(1, 2)).transpose(1, 2)

        # What our own convention does: the black canvas, adaptively pooled.
        upright = pipe.vae.encode(torch.zeros(1, 3, HEIGHT, WIDTH)).latent_dist.mean
        ours = pipe.adapter(clip_tokens, upright * pipe.vae.config.scaling_factor)

    assert tuple(seen[0].shape) == (1, 3, WIDTH, HEIGHT) and not seen[0].any()
    assert seen[0].is_contiguous()  # as the official torch.tensor(...) copy; the layout changes rounding
    torch.testing.assert_close(uncond, want, rtol=1e-5, atol=1e-6)
    assert (uncond - ours).abs().max() > 1e-3  # the transposition matters
    assert cond.shape == uncond.shape


def test_key_frame_is_stretched_with_pil_bicubic(photo):
    pipe = official_tiny()
    seen = vae_inputs(pipe)
    with torch.no_grad():
        pipe(photo, np.zeros((1, 2, HEIGHT, WIDTH)), num_inference_steps=1, height=HEIGHT, width=WIDTH)
    stretched = np.asarray(Image.fromarray(photo).resize((WIDTH, HEIGHT)))  # Pillow's default filter
    assert Image.Resampling.BICUBIC == 3  # Pillow's default for RGB since 7.0
    # Encoded: the black image, the subject for the adapter (raw pixels), the subject's latents.
    adapter_input = seen[1][0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(adapter_input, stretched.astype(np.float32))
    latent_input = seen[2][0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(latent_input, stretched / 127.5 - 1, atol=1e-6)


def test_official_key_frame_keeps_an_image_of_the_canvas_size(photo):
    canvas = np.asarray(Image.fromarray(photo).resize((WIDTH, HEIGHT)))
    assert official_key_frame(canvas, HEIGHT, WIDTH) is canvas


@pytest.mark.parametrize("case", ["portrait", "landscape", "exact"])
def test_clip_input_is_what_transformers_4_25_computed(case):
    """The reference pixels were computed by transformers 4.25.1's CLIPFeatureExtractor (the
    version the official code ran) from these images; our installed transformers is not used."""
    from transformers import CLIPImageProcessor

    reference = np.load(CLIP_REFERENCE)
    size, crop = (int(v) for v in reference[f"{case}_size"])
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": crop, "width": crop})
    got = official_clip_pixels(reference[f"{case}_image"][None], processor)
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), reference[f"{case}_pixels"])


def test_clip_runs_in_fp32_whatever_the_model_dtype(photo):
    pipe = official_tiny().to(torch.bfloat16)
    dtypes = []
    pipe.image_encoder.register_forward_pre_hook(lambda module, args: dtypes.append(args[0].dtype))
    with torch.no_grad():
        uncond, cond, _ = pipe.encode_subject(official_key_frame(photo, HEIGHT, WIDTH), "cpu", torch.bfloat16)
    assert dtypes == [torch.float32, torch.float32]
    assert pipe.image_encoder.dtype == torch.float32
    assert cond.dtype == torch.bfloat16  # the rest of the model keeps its dtype


# --------------------------------------------------------------------------- poses
def test_poses_are_stretched_bilinearly_normalised_then_nearest(photo, source_poses):
    pipe = official_tiny()
    inputs = []
    pipe.unet.conv_in.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach().clone()))
    frame = 1
    with torch.no_grad():
        pipe(photo, source_poses, num_inference_steps=1, height=HEIGHT, width=WIDTH, frames=[frame])

    # test.py: frames i-2..i+2 (a missing one replaced by frame i), each np.load -> float32 ->
    # bilinear to 640 x 512 (here the canvas) -> (x - 0.5) / 0.5; the pipeline: nearest to the latents.
    window = [frame, 0, 1, 2, 3]
    stretched = F.interpolate(torch.from_numpy(source_poses[window]), (HEIGHT, WIDTH), mode="bilinear")
    want = F.interpolate(((stretched - 0.5) / 0.5).reshape(1, 10, HEIGHT, WIDTH), (HEIGHT // 8, WIDTH // 8))
    unet_input = inputs[0]  # (3, 4 + 10, h, w): unconditional, image + pose, image only
    torch.testing.assert_close(unet_input[1:2, 4:], want, rtol=0, atol=0)
    assert not unet_input[0, 4:].any() and not unet_input[2, 4:].any()

    nearest = F.interpolate(torch.from_numpy(source_poses[window]), (HEIGHT // 8, WIDTH // 8))
    assert (want - ((nearest - 0.5) / 0.5).reshape(1, 10, HEIGHT // 8, WIDTH // 8)).abs().max() > 0.1


def test_cli_leaves_poses_to_an_official_model(tmp_path, source_poses):
    """`dreampose render` fits poses onto the canvas itself for our models; an official model
    gets them as they are, since its pipeline stretches them as the official code does."""
    from dreampose.cli import build_parser
    from dreampose.cli.options import render_inputs
    from pose_extraction.pose_sequence import PoseSequence

    poses = tmp_path / "poses.npz"
    PoseSequence.from_uv(source_poses).save(poses)
    for numerics, size in (("official", (40, 48)), ("dreampose", (HEIGHT, WIDTH))):
        model = tmp_path / numerics
        official_tiny(numerics).save_pretrained(model)
        args = build_parser().parse_args(
            ["render", "--model", str(model), "--image", "x.png", "--poses", str(poses), "--output", "o.mp4"]
            + ["--height", str(HEIGHT), "--width", str(WIDTH)]
        )
        _, placed = render_inputs(args)
        assert placed.uv.shape[-2:] == size, numerics


# --------------------------------------------------------------------------- output
def test_frames_are_contrast_stretched_unless_asked_not_to(photo, source_poses):
    from dreampose.rendering.frames import render_frames
    from dreampose.rendering.settings import RenderSettings

    settings = RenderSettings(num_inference_steps=1, height=HEIGHT, width=WIDTH, seed=3)
    off = replace(settings, contrast_stretch=False)
    pipe = official_tiny()
    with torch.no_grad():  # dim the random decoder so its frames leave room to stretch
        pipe.vae.decoder.conv_out.weight.mul_(0.05)
        pipe.vae.decoder.conv_out.bias.mul_(0.05)
    stretched = render_frames(pipe, photo, source_poses, settings, frames=[2]).frames
    plain = render_frames(pipe, photo, source_poses, off, frames=[2]).frames
    for got, raw in zip(stretched, plain, strict=True):
        assert (raw.min(), raw.max()) != (0, 255)  # the random model's frames do not span 0..255
        # test.py: image - min, then (255 * (image / max)).astype(uint8): truncation, per frame.
        shifted = raw.astype(np.float64) - raw.min()
        np.testing.assert_array_equal(got, np.floor(255 * shifted / shifted.max()).astype(np.uint8))

    ours = official_tiny("dreampose")  # our own numerics never stretch
    a = render_frames(ours, photo, source_poses, settings, frames=[0]).frames[0]
    b = render_frames(ours, photo, source_poses, off, frames=[0]).frames[0]
    np.testing.assert_array_equal(a, b)


def test_contrast_stretch_leaves_a_flat_frame_alone():
    flat = np.full((1, 4, 4, 3), 7, np.uint8)
    np.testing.assert_array_equal(stretch_contrast(flat), flat)


def test_no_contrast_stretch_flag():
    from dreampose.cli import build_parser

    argv = ["render", "--image", "x.png", "--poses", "p.npz", "--output", "o.mp4"]
    assert build_parser().parse_args(argv).contrast_stretch is True
    assert build_parser().parse_args([*argv, "--no-contrast-stretch"]).contrast_stretch is False


def test_same_seed_same_frames(photo, source_poses):
    """The VAE posterior mean (not the official unseeded sample) and seeded noise (not the
    official unseeded draw) make an official model's render reproducible."""
    pipe = official_tiny()
    kwargs = {"num_inference_steps": 1, "height": HEIGHT, "width": WIDTH, "frames": [1], "output_type": "np"}
    first = pipe(photo, source_poses, generator=torch.Generator().manual_seed(9), **kwargs).frames
    again = pipe(photo, source_poses, generator=torch.Generator().manual_seed(9), **kwargs).frames
    other = pipe(photo, source_poses, generator=torch.Generator().manual_seed(10), **kwargs).frames
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


# --------------------------------------------------------------------------- official pose folders
def write_official(folder: Path, numbers) -> None:
    folder.mkdir()
    for n in numbers:
        np.save(folder / f"frame_{n}_densepose.npy", np.full((2, 6, 5), n / 100, np.float64))


def test_import_takes_any_first_number_in_numeric_order(tmp_path):
    write_official(tmp_path / "poses", [8, 9, 10, 11])  # in name order: 10, 11, 8, 9
    seq = import_official(tmp_path / "poses")
    assert len(seq) == 4
    np.testing.assert_allclose(seq.uv[:, 0, 0, 0].astype(np.float64), [0.08, 0.09, 0.10, 0.11], rtol=1e-3)


def test_import_refuses_a_gap_and_names_it(tmp_path):
    write_official(tmp_path / "poses", [3, 4, 6])
    with pytest.raises(ValueError, match="frame_5_densepose.npy"):
        import_official(tmp_path / "poses")


def test_import_names_a_mis_sized_frame_by_its_number(tmp_path):
    write_official(tmp_path / "poses", [3, 4])
    np.save(tmp_path / "poses" / "frame_4_densepose.npy", np.zeros((2, 7, 5)))
    with pytest.raises(ValueError, match="frame_4_densepose.npy .* but frame_3_densepose.npy"):
        import_official(tmp_path / "poses")


def test_imported_poses_keep_the_files_exact_values_for_the_model(tmp_path):
    """Pose sequences hold U, V in float16; the model reads an official import's own values
    (float32, as the official test.py does), and the float16 maps once the files are gone."""
    folder = tmp_path / "poses"
    folder.mkdir()
    rng = np.random.default_rng(4)
    exact = rng.uniform(0.1, 1.0, (3, 2, 6, 5))  # float64, as the official DensePose script writes
    for i, frame in enumerate(exact):
        np.save(folder / f"frame_{i + 7}_densepose.npy", frame)
    seq = import_official(folder)
    assert seq.uv.dtype == np.float16
    np.testing.assert_array_equal(seq.uv_float(), exact.astype(np.float32))
    assert np.abs(seq.uv.astype(np.float32) - exact.astype(np.float32)).max() > 1e-5

    for path in folder.iterdir():
        path.unlink()
    np.testing.assert_array_equal(seq.uv_float(), seq.uv.astype(np.float32))
