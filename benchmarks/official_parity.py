"""Official numerics against the official DreamPose code itself, on the same random weights.

    python -m benchmarks.official_parity --official PATH/TO/DreamPose --clip-site PATH/TO/site

Builds tiny random models in the official checkpoint format (``unet_epoch_0.pth``,
``adapter_0.pth``, ``vae_0.pth``; Stable Diffusion and CLIP folders with the real
architecture's interfaces: 768-d CLIP tokens, 50 of them, 8x VAE downsampling, so the
official ``Embedding_Adapter`` fits), a key frame and an official pose folder numbered from
3, then renders every frame twice:

1. the official ``test.py`` (with ``pipelines/dual_encoder_pipeline.py``) of a checkout of
   johannakarras/DreamPose, which this project does not contain: run it from its own files;
2. ``dreampose convert`` + ``dreampose render`` of this project.

and prints the differences in c_I (unconditional and conditional), the final latents and
the saved frames. Both run on the CPU in fp32. To run at all, and to be deterministic, the
official code gets these shims and nothing else: ``.cuda()`` is the identity and
``autocast`` does nothing; the one-character fix ``weight[:, 3:]`` -> ``weight[:, 4:]`` in
``get_unet`` (the checkout's code raises a shape error without it); the hub names it loads
are redirected to the local tiny folders (the pipeline is assembled from them instead of
``from_pretrained`` of a saved checkpoint folder); its ``CLIPProcessor`` replays what
transformers 4.25.1 computes for the same inputs (in a subprocess with ``--clip-site`` on
its path: a ``pip install --target`` folder holding transformers==4.25.1,
tokenizers==0.13.3 and huggingface_hub==0.11.1); and the two documented deliberate
differences are aligned: ``latent_dist.sample()`` returns the posterior mean and the fixed
noise is the one our seed draws.

The scratch folder's path must not contain digits: the official ``test.py`` finds frame N's
neighbours by replacing the text "N" everywhere in the file's path.

``--pose-precision float16`` stores pose values that float16 holds exactly (our pose file
keeps U, V in float16); ``float64`` stores arbitrary values, as the official DensePose
script writes them, to show what that rounding costs. ``--ours-tree`` renders with another
checkout of this project (e.g. an older commit, to measure "before").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HEIGHT, WIDTH = 640, 512  # the official code's only size
FRAMES = 4  # official pose files frame_N .. frame_N+3, N = --first-frame (3: not numbered from 0)
SEED = 1234
CLIP_CONFIG = {  # openai/clip-vit-base-patch32's preprocessor_config.json
    "size": 224,
    "crop_size": 224,
    "resample": 3,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}


# --------------------------------------------------------------------------- inputs
def make_inputs(work: Path, pose_precision: str, first: int, canvas_inputs: bool) -> None:
    """Tiny SD and CLIP folders, official-format checkpoints, a key frame and poses."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    from dreampose.model.schedulers import SD_SCHEDULER_CONFIG

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=(80, 64),
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),  # attention at 40 x 32 only: fast
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
    )
    scheduler = PNDMScheduler(**SD_SCHEDULER_CONFIG)
    clip = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=768,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=12,
            image_size=224,
            patch_size=32,
        )
    )
    unet.save_pretrained(work / "sd" / "unet")
    vae.save_pretrained(work / "sd" / "vae")
    scheduler.save_pretrained(work / "sd" / "scheduler")
    clip.save_pretrained(work / "clip")
    CLIPImageProcessor(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        image_mean=CLIP_CONFIG["image_mean"],
        image_std=CLIP_CONFIG["image_std"],
    ).save_pretrained(work / "clip")

    # The "trained" DreamPose: widened conv_in with live pose channels, a mixing adapter.
    torch.manual_seed(1)
    weight = unet.conv_in.weight.detach()
    conv_in = torch.nn.Conv2d(14, weight.shape[0], 3, padding=1)
    with torch.no_grad():
        conv_in.weight[:, :4] = weight
        conv_in.weight[:, 4:].normal_(0, 0.1)
        conv_in.bias.copy_(unet.conv_in.bias)
    unet.conv_in = conv_in
    adapter = {
        "vae2clip.weight": torch.randn(768, 1280) * 0.02,
        "vae2clip.bias": torch.randn(768) * 0.02,
        "linear1.weight": torch.eye(50, 54) + torch.randn(50, 54) * 0.2,
        "linear1.bias": torch.randn(50) * 0.02,
    }
    vae_state = {k: v + torch.randn_like(v) * 0.01 for k, v in vae.state_dict().items()}
    ckpt = work / "ckpt"
    ckpt.mkdir()
    for name, state in (("unet_epoch_0", unet.state_dict()), ("adapter_0", adapter), ("vae_0", vae_state)):
        torch.save({f"module.{k}": v.contiguous() for k, v in state.items()}, ckpt / f"{name}.pth")

    rng = np.random.default_rng(0)
    photo_h, photo_w = (HEIGHT, WIDTH) if canvas_inputs else (360, 270)
    pose_h, pose_w = (HEIGHT, WIDTH) if canvas_inputs else (300, 200)
    ys, xs = np.mgrid[0:photo_h, 0:photo_w]
    photo = np.stack([ys * 255 // photo_h, xs * 255 // photo_w, (ys + xs) % 256], axis=-1).astype(np.uint8)
    top, left, body_h, body_w = (80, 150, 480, 210) if canvas_inputs else (60, 80, 270, 110)
    photo[top : top + body_h, left : left + body_w] = rng.integers(
        0, 256, (body_h, body_w, 3), dtype=np.uint8
    )
    Image.fromarray(photo).save(work / "key.png")

    poses = work / "poses"
    poses.mkdir()
    ys, xs = np.mgrid[0:pose_h, 0:pose_w] / np.array([float(pose_h), float(pose_w)])[:, None, None]
    for number in range(first, first + FRAMES):
        body = ((xs - 0.45 - 0.02 * (number - first)) / 0.2) ** 2 + ((ys - 0.5) / 0.4) ** 2 < 1
        uv = np.stack([xs, ys]) * 0.8 + 0.1 + rng.normal(0, 0.02, (2, pose_h, pose_w))
        uv = np.clip(uv, 0.01, 1.0) * body
        if pose_precision == "float16":
            uv = uv.astype(np.float16)
        np.save(poses / f"frame_{number}_densepose.npy", uv.astype(np.float64))


# --------------------------------------------------------------------------- CLIP of transformers 4.25
def clip_reference(work: Path) -> None:
    """Runs with transformers 4.25.1 on the path: what its CLIPProcessor gives the official
    pipeline for the key frame (resized as test.py does) and for the black image."""
    import torch
    import transformers
    from PIL import Image
    from transformers import CLIPFeatureExtractor

    assert transformers.__version__ == "4.25.1", transformers.__version__
    processor = CLIPFeatureExtractor(**CLIP_CONFIG)
    key = Image.open(work / "key.png").resize((WIDTH, HEIGHT))
    cond = processor(images=[key], return_tensors="np").pixel_values
    uncond = processor(images=[torch.zeros((WIDTH, HEIGHT, 3))], return_tensors="np").pixel_values
    np.savez(work / "clip_4.25.1.npz", key=np.asarray(key), cond=cond, uncond=uncond)


# --------------------------------------------------------------------------- the official code
def run_official(work: Path, official: Path, steps: int) -> None:
    import contextlib
    import importlib.util
    import runpy
    import types

    import torch
    import transformers
    from diffusers import AutoencoderKL, PNDMScheduler
    from diffusers import UNet2DConditionModel as DiffusersUNet
    from diffusers.models.autoencoders import vae as vae_module

    # CPU, fp32: .cuda() is the identity and autocast does nothing.
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    torch.cuda.amp.autocast = lambda *args, **kwargs: contextlib.nullcontext()
    if not hasattr(transformers, "CLIPFeatureExtractor"):  # gone in transformers 5; only named there
        # (transformers' lazy module answers `from transformers import` from sys.modules only)
        sys.modules["transformers.CLIPFeatureExtractor"] = transformers.CLIPImageProcessor
    # The deliberate differences, aligned: posterior mean, and our seed's noise (below).
    vae_module.DiagonalGaussianDistribution.sample = lambda self, generator=None: self.mean

    sys.path.insert(0, str(official))
    source = (official / "models" / "unet_dual_encoder.py").read_text()
    fixed = source.replace("unet.conv_in.weight[:, 3:].shape", "unet.conv_in.weight[:, 4:].shape")
    assert fixed != source or "weight[:, 4:].shape" in source, "get_unet changed upstream; check the fix"
    models = types.ModuleType("models")
    models.__path__ = [str(official / "models")]
    sys.modules["models"] = models
    spec = importlib.util.spec_from_loader("models.unet_dual_encoder", loader=None)
    unet_module = importlib.util.module_from_spec(spec)
    exec(compile(fixed, str(official / "models" / "unet_dual_encoder.py"), "exec"), unet_module.__dict__)
    sys.modules["models.unet_dual_encoder"] = unet_module

    class LocalUNet:  # get_unet loads CompVis/stable-diffusion-v1-4 by name
        @staticmethod
        def from_pretrained(*args, **kwargs):
            return DiffusersUNet.from_pretrained(work / "sd", subfolder="unet")

    unet_module.UNet2DConditionModel = LocalUNet

    import pipelines.dual_encoder_pipeline as pipeline_module

    reference = np.load(work / "clip_4.25.1.npz")

    class ReplayProcessor:  # transformers 4.25.1's output for the same two inputs
        @staticmethod
        def from_pretrained(*args, **kwargs):
            return ReplayProcessor()

        def __call__(self, images, return_tensors):
            (image,) = images
            if torch.is_tensor(image):
                assert not image.any() and tuple(image.shape) == (WIDTH, HEIGHT, 3)
                return {"pixel_values": torch.from_numpy(reference["uncond"])}
            assert np.array_equal(np.asarray(image), reference["key"])
            return {"pixel_values": torch.from_numpy(reference["cond"])}

    class LocalCLIP:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            return transformers.CLIPVisionModel.from_pretrained(work / "clip")

    pipeline_module.CLIPProcessor = ReplayProcessor
    pipeline_module.CLIPVisionModel = LocalCLIP
    pipeline_class = pipeline_module.StableDiffusionImg2ImgPipeline
    noise = torch.randn((1, 4, HEIGHT // 8, WIDTH // 8), generator=torch.Generator().manual_seed(SEED))

    def assemble(cls, model_id, unet, **kwargs):  # instead of a saved checkpoint-N folder
        pipe = cls(
            vae=AutoencoderKL.from_pretrained(work / "sd", subfolder="vae"),
            image_encoder=LocalCLIP.from_pretrained(),
            clip_processor=None,
            unet=unet,
            scheduler=PNDMScheduler.from_pretrained(work / "sd", subfolder="scheduler"),
            safety_checker=None,
            feature_extractor=None,
        )
        pipe.fixed_noise = noise
        return pipe

    pipeline_class.from_pretrained = classmethod(assemble)
    record = {"embeddings": [], "latents": []}
    adapter_forward = unet_module.Embedding_Adapter.forward
    decode = pipeline_class.decode_latents

    def recording_adapter(self, clip, vae):
        out = adapter_forward(self, clip, vae)
        record["embeddings"].append(out.detach().clone())
        return out

    def recording_decode(self, latents):
        record["latents"].append(latents.detach().clone())
        return decode(self, latents)

    unet_module.Embedding_Adapter.forward = recording_adapter
    pipeline_class.decode_latents = recording_decode

    sys.argv = [
        "test.py",
        "--epoch",
        "0",
        "--folder",
        str(work / "ckpt"),
        "--pose_folder",
        str(work / "poses"),
    ]
    sys.argv += ["--key_frame_path", str(work / "key.png"), "--s1", "8", "--s2", "3", "--n_steps", str(steps)]
    sys.argv += ["--output_dir", str(work / "official"), "--custom_vae", str(work / "ckpt" / "vae_0.pth")]
    runpy.run_path(str(official / "test.py"), run_name="__main__")

    # Its loop renders the frames in the order of a set of frame numbers and names each
    # file after its number; the adapter runs twice per frame: conditional, unconditional.
    order = [int(p.split("_")[-2]) for p in sorted_official_paths(work / "poses")]
    np.savez(
        work / "official.npz",
        numbers=np.array(order),
        cond=torch.stack(record["embeddings"][0::2]).numpy(),
        uncond=torch.stack(record["embeddings"][1::2]).numpy(),
        latents=torch.cat(record["latents"]).numpy(),
    )


def sorted_official_paths(folder: Path) -> list[str]:
    """The frame order of the official test.py: sorted numbers put through a set."""
    numbers = sorted(int(p.name.split("_")[1]) for p in folder.glob("frame_*.npy"))
    return [str(folder / f"frame_{n}_densepose.npy") for n in list(set(numbers))]


# --------------------------------------------------------------------------- this project
def run_ours(work: Path, steps: int) -> None:
    import torch

    from dreampose.cli import main
    from dreampose.model.pipeline import DreamPosePipeline

    convert = ["convert", "--base-model", str(work / "sd"), "--image-encoder", str(work / "clip")]
    convert += [
        "--unet",
        str(work / "ckpt" / "unet_epoch_0.pth"),
        "--adapter",
        str(work / "ckpt" / "adapter_0.pth"),
    ]
    convert += ["--vae", str(work / "ckpt" / "vae_0.pth"), "--output", str(work / "converted")]
    assert main(convert) == 0

    record = {"embeddings": [], "latents": []}
    encode, decode = DreamPosePipeline.encode_image, DreamPosePipeline.decode_latents

    def recording_encode(self, images, device, dtype):
        out = encode(self, images, device, dtype)
        record["embeddings"].append(out.detach().clone())
        return out

    def recording_decode(self, latents):
        record["latents"].append(latents.detach().clone())
        return decode(self, latents)

    DreamPosePipeline.encode_image = recording_encode
    DreamPosePipeline.decode_latents = recording_decode
    render = ["render", "--model", str(work / "converted"), "--image", str(work / "key.png")]
    render += [
        "--poses",
        str(work / "poses"),
        "--output",
        str(work / "ours.mp4"),
        "--frames-dir",
        str(work / "ours"),
    ]
    render += ["--image-guidance", "8", "--pose-guidance", "3", "--steps", str(steps), "--seed", str(SEED)]
    render += ["--device", "cpu", "--dtype", "fp32"]
    assert main(render) == 0
    embeddings = torch.cat(record["embeddings"])  # unconditional first, then the subject
    np.savez(
        work / "ours.npz",
        uncond=embeddings[0:1].numpy(),
        cond=embeddings[1:2].numpy(),
        latents=torch.cat(record["latents"]).numpy(),
    )


# --------------------------------------------------------------------------- comparison
def compare(work: Path, first: int) -> dict:
    from PIL import Image

    official, ours = np.load(work / "official.npz"), np.load(work / "ours.npz")
    figures = {}
    for name in ("uncond", "cond"):
        a, b = ours[name][0], official[name][0]
        figures[f"c_I {name} max abs"] = float(np.abs(a - b).max())
        figures[f"c_I {name} rel"] = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    # Ours are numbered from 0 in sorted order; the official ones by their file numbers.
    numbers = range(first, first + FRAMES)
    by_number = dict(zip(official["numbers"].tolist(), official["latents"], strict=True))
    want = np.stack([by_number[n] for n in numbers])
    got = ours["latents"]
    figures["latents max abs"] = float(np.abs(got - want).max())
    figures["latents rel"] = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    figures["latents max |official|"] = float(np.abs(want).max())
    grey, differing = 0, 0
    for n in numbers:
        theirs = np.asarray(Image.open(work / "official" / f"pred_#{n}.png").convert("RGB"), np.int16)
        mine = np.asarray(Image.open(work / "ours" / f"frame_{n - first:05d}.png").convert("RGB"), np.int16)
        grey = max(grey, int(np.abs(theirs - mine).max()))
        differing += int((theirs != mine).sum())
    figures["frames max grey-level difference"] = grey
    figures["frames values differing"] = differing
    figures["frames values"] = FRAMES * HEIGHT * WIDTH * 3
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--official", type=Path, help="a checkout of johannakarras/DreamPose")
    parser.add_argument("--clip-site", type=Path, help="pip --target folder with transformers==4.25.1")
    parser.add_argument("--work", type=Path, default=Path("official-parity"), help="scratch folder (new)")
    parser.add_argument("--steps", type=int, default=100, help="PNDM steps (the official demo: 100)")
    parser.add_argument("--pose-precision", choices=("float16", "float64"), default="float16")
    parser.add_argument("--first-frame", type=int, default=3, help="number of the first pose file")
    parser.add_argument(
        "--canvas-inputs",
        action="store_true",
        help="key frame 512 x 640 and poses 640 x 512, so stretching and letterboxing agree",
    )
    parser.add_argument("--ours-tree", type=Path, default=None, help="render with this checkout instead")
    parser.add_argument("--role", choices=("inputs", "clip", "official", "ours"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work.resolve()
    if args.role == "inputs":
        return make_inputs(work, args.pose_precision, args.first_frame, args.canvas_inputs)
    if args.role == "clip":
        return clip_reference(work)
    if args.role == "official":
        return run_official(work, args.official.resolve(), args.steps)
    if args.role == "ours":
        return run_ours(work, args.steps)

    if args.official is None or args.clip_site is None:
        parser.error("--official and --clip-site are required")
    if any(c.isdigit() for c in str(work)):
        # test.py finds a frame's neighbours by replacing its number everywhere in the path
        parser.error(f"--work {work} contains a digit, which the official test.py would replace too")
    work.mkdir(parents=True)
    here = Path(__file__).resolve()
    repo = here.parents[1]
    base = [sys.executable, str(here), "--work", str(work), "--steps", str(args.steps)]
    base += ["--pose-precision", args.pose_precision, "--first-frame", str(args.first_frame)]
    base += ["--canvas-inputs"] if args.canvas_inputs else []
    base += ["--official", str(args.official.resolve())]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo)}
    ours_env = {**env, "PYTHONPATH": str((args.ours_tree or repo).resolve())}
    clip_env = {**env, "PYTHONPATH": str(args.clip_site.resolve())}
    times = {}
    for role, role_env in (("inputs", env), ("clip", clip_env), ("official", env), ("ours", ours_env)):
        start = time.perf_counter()
        subprocess.run([*base, "--role", role], env=role_env, check=True, stdout=subprocess.DEVNULL)
        times[role] = round(time.perf_counter() - start, 1)
    figures = compare(work, args.first_frame)
    setup = {"steps": args.steps, "pose_precision": args.pose_precision, "first_frame": args.first_frame}
    setup["canvas_inputs"] = args.canvas_inputs
    print(json.dumps({**setup, **figures}, indent=2))
    print("seconds per part:", times)


if __name__ == "__main__":
    main()
