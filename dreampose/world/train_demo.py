"""The demo model's recipe: a small DreamPose trained from scratch on the drawn world.

    python -m dreampose.world.train_demo --output models/demo

1. The VAE is trained as an autoencoder on world frames (it stands in for Stable Diffusion's
   VAE, which cannot be downloaded here), and its latents are scaled to unit variance.
2. Phase 1 (``dreampose train``'s own code, ``dreampose.training.train``) trains the UNet and
   the adapter on generated videos of world people, with their exact poses.
3. The result is saved in fp16 safetensors as a model folder (``--model <folder>`` loads it),
   with a model card (README.md) recording the command, seed, data, steps, losses, time and
   the SHA-256 of every weight file.

Everything is seeded. The defaults fit the 2-hour budget of a 2-core CPU (the model card
records the machine); ``--vae-steps``, ``--steps``, ``--height`` and friends scale it down
for tests or up for a GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dreampose.base.files import atomic_dir, atomic_file
from dreampose.media.frames import save_png
from dreampose.model.numerics import DREAMPOSE
from dreampose.runtime.references import FINETUNE_FILE
from dreampose.world.motions import MOTIONS, Style, clip
from dreampose.world.scenes import Scene, render, render_clip

LATENT_SCALE_SEEDS = 10**12  # frames for measuring the latent scale: none of the training frames
KL_WEIGHT = 1e-6  # Stable Diffusion's VAE: reconstruction first, a nearly free latent layout
# The colour part of the error (each pixel less its grey level) counts this much more. With plain
# MSE the VAE reconstructed the world in grey for thousands of steps, so every render of the
# second demo run was grey (measured, 128-pixel crops, lr 1e-3: saturation 6-9 of the frames' 43
# after 400-5000 steps, at 1 or 8 norm groups and widths 16 or 64; with this weight 31-38 after
# 300-400 steps). The UNet cannot render colours its VAE cannot decode.
CHROMA_WEIGHT = 10.0
VAE_CROP = 128  # the VAE is convolutional: square crops train it 3x cheaper a step than whole frames
BASE_RECORD = "base.json"  # in the work folder: the finished base model's settings and VAE losses
BASE_FIELDS = ("seed", "height", "width", "vae_steps", "vae_batch", "vae_lr", "vae_channels", "threads")


@dataclass(frozen=True)
class DemoRecipe:
    """Every choice of one demo-model run (the model card records them all)."""

    output: Path
    height: int = 256
    width: int = 192
    seed: int = 0
    videos: int = 150  # generated driving videos (one person each) for phase 1
    frames: int = 8  # frames per video
    fps: float = 8.0
    vae_steps: int = 1500
    vae_batch: int = 8
    vae_lr: float = 1e-3
    steps: int = 3000  # phase-1 optimiser steps
    batch_size: int = 4
    learning_rate: float = 5e-4
    unet_channels: tuple[int, ...] = (48, 96)
    vae_channels: int = 16
    # Subject finetuning's defaults for this model (finetune.json; measured in benchmarks/RESULTS.md)
    subject_unet_steps: int = 40
    subject_unet_lr: float = 1e-4
    subject_vae_steps: int = 40
    subject_vae_lr: float = 1e-3
    threads: int = 1  # torch CPU threads (0: torch's default); one is steadier on a shared 2-core machine
    work: Path | None = None  # dataset, base model and checkpoints (default: OUTPUT.work)
    command: str = field(default="", compare=False)

    @property
    def work_dir(self) -> Path:
        return self.work or self.output.with_name(self.output.name + ".work")


# =========================================================================== data
def world_frame(seed: int, size: tuple[int, int]) -> np.ndarray:
    """One random world picture: a random person in a random moment of a random motion."""
    rng = np.random.default_rng([seed, 5])
    motion = list(MOTIONS)[rng.integers(len(MOTIONS))]
    pose = MOTIONS[motion](rng.uniform(0, 3), Style.from_seed(int(rng.integers(1 << 30))))
    return render(Scene.from_seed(int(rng.integers(1 << 30)), size), pose).rgb


def write_dataset(root: Path, recipe: DemoRecipe) -> Path:
    """``recipe.videos`` world videos in the training layout (frames/ and poses.npz per video).

    Video k shows person ``training_person(seed, k)`` doing motion k mod 5, so the people of the
    demo model's training set are known (held-out people are any other seeds)."""
    size = (recipe.height, recipe.width)
    for k in range(recipe.videos):
        motion = list(MOTIONS)[k % len(MOTIONS)]
        scene = Scene.from_seed(training_person(recipe.seed, k), size)
        frames, poses = render_clip(scene, clip(motion, recipe.frames, recipe.fps, seed=k + 1))
        folder = root / f"{k:04d}_{motion}"
        for i, rgb in enumerate(frames):
            save_png(folder / "frames" / f"frame_{i:05d}.png", rgb)
        poses.save(folder / "poses.npz")
    return root


def training_person(seed: int, k: int) -> int:
    """The world seed of training video k's person: far from the small seeds that examples,
    tests and held-out sets use."""
    return (seed + 1) * 1_000_000 + k


# =========================================================================== models
def base_components(recipe: DemoRecipe) -> dict:
    """A fresh model of the demo's size. The new layers start random, not as the paper's zero
    pose channels and identity adapter: those spare a *pretrained* UNet a shock, and there is
    none here. With the adapter's VAE tokens at zero weight, the photo's colours reached the
    UNet only through the random CLIP stand-in, and 1,500 steps in, renders of different
    people were the same grey figure (measured: swapping the photo moved a render by 19 grey
    levels, a black photo by 5)."""
    from dreampose.model.tiny import tiny_components

    return tiny_components(
        recipe.seed,
        randomize_new_weights=True,
        training_size=(recipe.height, recipe.width),
        unet_channels=recipe.unet_channels,
        vae_channels=recipe.vae_channels,
    )


def train_vae(vae, recipe: DemoRecipe, log=print) -> list[float]:
    """Train ``vae`` to reconstruct world frames; then scale its latents to unit variance."""
    torch.manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, weight_decay=0.0)
    size = (recipe.height, recipe.width)
    crops = np.random.default_rng([recipe.seed, 6])
    losses = []
    vae.train()
    for step in range(recipe.vae_steps):
        images = np.stack(
            [
                random_crop(world_frame(recipe.seed * 10**7 + step * recipe.vae_batch + b, size), crops)
                for b in range(recipe.vae_batch)
            ]
        )
        pixels = DREAMPOSE.adapter_pixels(images)  # the same [-1, 1] input the pipeline gives the VAE
        posterior = vae.encode(pixels).latent_dist
        # The latents' mean, as a plain autoencoder: how the chroma weight above was measured.
        reconstruction = vae.decode(posterior.mode()).sample
        loss = (
            torch.nn.functional.mse_loss(reconstruction, pixels)
            + CHROMA_WEIGHT * torch.nn.functional.mse_loss(chroma(reconstruction), chroma(pixels))
            + KL_WEIGHT * posterior.kl().mean()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == recipe.vae_steps - 1:
            log(f"vae step {step + 1}/{recipe.vae_steps}: loss {loss.item():.4f}")
    vae.eval()
    make_posterior_deterministic(vae)
    vae.register_to_config(scaling_factor=latent_scale(vae, recipe))
    return losses


LOGVAR_MIN = -30.0  # diffusers clamps a posterior's log-variance to [-30, 20]


@torch.no_grad()
def make_posterior_deterministic(vae) -> None:
    """Give the VAE's posterior (almost) zero variance: it was trained as a plain autoencoder
    on its means, so its variance head only ever met the tiny KL term, which holds the variance
    at 1. Phase 1 trains on posterior *samples*, as Stable Diffusion does; with that variance its
    targets were the latents (std 0.7) under noise of std 1.0 (measured on run 3), and the UNet
    learned to render that noise: every demo render was covered in coloured blotches, whatever
    the sampler or guidance, and the loss stayed at 0.4-0.5 from step 500 to 5,500."""
    latent = vae.config.latent_channels  # quant_conv's outputs: the means, then the log-variances
    vae.quant_conv.weight[latent:] = 0.0
    vae.quant_conv.bias[latent:] = LOGVAR_MIN


def random_crop(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A ``VAE_CROP`` square of ``image`` (or all of a side shorter than that)."""
    h, w = min(VAE_CROP, image.shape[0]), min(VAE_CROP, image.shape[1])
    y, x = rng.integers(image.shape[0] - h + 1), rng.integers(image.shape[1] - w + 1)
    return image[y : y + h, x : x + w]


def chroma(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) pixels less their grey level: the colour alone."""
    return pixels - pixels.mean(dim=1, keepdim=True)


@torch.no_grad()
def latent_scale(vae, recipe: DemoRecipe, samples: int = 8) -> float:
    """1 / std of the latents of fresh world frames (SD's 0.18215 was found the same way)."""
    images = np.stack(
        [world_frame(LATENT_SCALE_SEEDS + i, (recipe.height, recipe.width)) for i in range(samples)]
    )
    latents = vae.encode(DREAMPOSE.adapter_pixels(images)).latent_dist.mode()
    return float(1.0 / latents.std().clamp_min(1e-6))


def settings_for(recipe: DemoRecipe):
    from dreampose.training.settings import TrainSettings

    return TrainSettings(
        height=recipe.height,
        width=recipe.width,
        batch_size=recipe.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=recipe.learning_rate,
        max_steps=recipe.steps,
        checkpoint_every=max(recipe.steps // 4, 1),
        keep_checkpoints=1,
        sample_every=0,
        num_workers=0,
        gradient_checkpointing=False,
        seed=recipe.seed,
    )


# =========================================================================== the run
def run(recipe: DemoRecipe, log=print) -> Path:
    """Every stage of the recipe; returns the model folder (which has its model card)."""
    from dreampose.model.pipeline import DreamPosePipeline
    from dreampose.training.train import train

    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    work = recipe.work_dir
    times = {}

    start = time.perf_counter()
    dataset = write_dataset(work / "dataset", recipe)
    times["data"] = time.perf_counter() - start

    base = work / "base"
    vae_losses, times["vae"] = trained_base(base, recipe, log)

    start = time.perf_counter()
    result = train(
        base,
        dataset,
        work / "phase1",
        settings_for(recipe),
        resume=(work / "phase1" / "checkpoints").is_dir(),
        on_step=lambda step, loss: (
            log(f"phase 1 step {step}/{recipe.steps}: loss {loss:.4f}")
            if step % 50 == 0 or step == recipe.steps
            else None
        ),
    )
    times["phase1"] = time.perf_counter() - start

    trained = DreamPosePipeline.from_pretrained(result.output / "model", torch_dtype=torch.float16)
    with atomic_dir(recipe.output) as tmp:
        trained.save_pretrained(tmp, safe_serialization=True)
        forget_work_path(tmp / "model_index.json")
        write_finetune_defaults(tmp, recipe)
        write_model_card(tmp, recipe, vae_losses, result.losses, times, result.start_step)
    log(f"demo model written to {recipe.output}")
    return recipe.output


def trained_base(base: Path, recipe: DemoRecipe, log=print) -> tuple[list[float], float]:
    """The fresh model with its trained VAE, saved in ``base``: (VAE losses, seconds).

    A rerun of the same recipe (to resume phase 1 or train it longer) reuses the base an earlier
    run finished, as recorded in ``BASE_RECORD``: the VAE is a quarter hour on a 2-core CPU, and
    it was always trained again the same, since it is seeded."""
    from dreampose.model.pipeline import DreamPosePipeline

    record_path = base.parent / BASE_RECORD
    wanted = base_settings(recipe)
    if record_path.is_file() and (base / "model_index.json").is_file():
        record = json.loads(record_path.read_text())
        if record["settings"] == wanted:
            log(f"reusing the base model and VAE trained earlier ({base})")
            return record["vae_losses"], record["seconds"]
    start = time.perf_counter()
    components = base_components(recipe)
    losses = train_vae(components["vae"], recipe, log)
    DreamPosePipeline(**components).save_pretrained(base, safe_serialization=True)
    seconds = time.perf_counter() - start
    with atomic_file(record_path) as tmp:  # written last: it vouches for a complete base
        tmp.write_text(json.dumps({"settings": wanted, "vae_losses": losses, "seconds": seconds}))
    return losses, seconds


def base_settings(recipe: DemoRecipe) -> dict:
    """The recipe's choices that make the base model (what a saved base must match)."""
    return {name: getattr(recipe, name) for name in BASE_FIELDS} | {
        "unet_channels": list(recipe.unet_channels),
        "chroma_weight": CHROMA_WEIGHT,
        "vae_crop": VAE_CROP,
        "kl_weight": KL_WEIGHT,
        "posterior_logvar": LOGVAR_MIN,  # bases saved before the fix had a variance of 1
    }


def write_finetune_defaults(folder: Path, recipe: DemoRecipe) -> Path:
    """finetune.json: what `dreampose finetune` and the app use for this model unless told."""
    path = folder / FINETUNE_FILE
    values = {
        "unet_steps": recipe.subject_unet_steps,
        "unet_lr": recipe.subject_unet_lr,
        "vae_steps": recipe.subject_vae_steps,
        "vae_lr": recipe.subject_vae_lr,
    }
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


def forget_work_path(model_index: Path) -> None:
    """diffusers records the folder a model was loaded from; the shipped one names no machine."""
    index = json.loads(model_index.read_text())
    index.pop("_name_or_path", None)
    model_index.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


# =========================================================================== model card
def weight_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every safetensors file in ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.safetensors"))
    }


def loss_summary(losses: list[float]) -> str:
    if not losses:
        return "none"
    tail = losses[-max(len(losses) // 10, 1) :]
    return f"first {losses[0]:.4f}, last {losses[-1]:.4f}, mean of the last {len(tail)} {np.mean(tail):.4f}"


def write_model_card(
    folder: Path, recipe: DemoRecipe, vae_losses, unet_losses, times: dict, resumed_from: int = 0
) -> Path:
    """README.md: what the model is, and everything needed to make it again and check it.
    ``unet_losses`` and the phase-1 time are this run's: after step ``resumed_from``."""
    resumed = (
        f" (resumed after step {resumed_from}: the loss and time are of this run's steps)"
        if resumed_from
        else ""
    )
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"
    )
    digests = "\n".join(f"| `{name}` | `{digest}` |" for name, digest in weight_digests(folder).items())
    settings = {
        k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
        for k, v in asdict(recipe).items()
        if k != "command"
    }
    text = f"""# DreamPose demo model

A small DreamPose trained from scratch on the drawn-people world (`dreampose.world`): it animates
drawn people. Photos of real people need the official model.

- Command: `{recipe.command or "python -m dreampose.world.train_demo"}`
- Seed: {recipe.seed}
- Data: {recipe.videos} generated videos x {recipe.frames} frames at {recipe.height} x {recipe.width}, {recipe.fps:g} fps (people {training_person(recipe.seed, 0)}..{training_person(recipe.seed, recipe.videos - 1)}, motions {", ".join(MOTIONS)}); the VAE saw {recipe.vae_steps * recipe.vae_batch} fresh random frames ({VAE_CROP}-pixel crops, colour error weighted {CHROMA_WEIGHT:g}x)
- VAE (autoencoder): {recipe.vae_steps} steps, batch {recipe.vae_batch}, lr {recipe.vae_lr:g}; loss {loss_summary(vae_losses)}
- Phase 1 (UNet + adapter, `dreampose train`'s code): {recipe.steps} steps, batch {recipe.batch_size}, lr {recipe.learning_rate:g}{resumed}; loss {loss_summary(unet_losses)}
- Time: data {times.get("data", 0):.1f} s, VAE {times.get("vae", 0):.1f} s, phase 1 {times.get("phase1", 0):.1f} s, in all {sum(times.values()) / 60:.1f} min
- Device: {device}
- Weights: fp16 safetensors

| file | SHA-256 |
|---|---|
{digests}

## Recipe settings

```json
{json.dumps(settings, indent=2)}
```
"""
    path = folder / "README.md"
    path.write_text(text)
    return path


# =========================================================================== command line
def parse_args(argv: list[str] | None = None) -> DemoRecipe:
    defaults = DemoRecipe(Path("models/demo"))
    parser = argparse.ArgumentParser(
        prog="python -m dreampose.world.train_demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--output", type=Path, default=defaults.output, help="the model folder to write")
    parser.add_argument(
        "--work", type=Path, default=None, help="dataset, base model and checkpoints (default: OUTPUT.work)"
    )
    for name in (
        "height",
        "width",
        "seed",
        "videos",
        "frames",
        "vae_steps",
        "vae_batch",
        "steps",
        "batch_size",
        "vae_channels",
        "subject_unet_steps",
        "subject_vae_steps",
        "threads",
    ):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("fps", "vae_lr", "learning_rate", "subject_unet_lr", "subject_vae_lr"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--unet-channels", type=int, nargs="+", default=list(defaults.unet_channels))
    args = parser.parse_args(argv)
    values = vars(args)
    values["unet_channels"] = tuple(values["unet_channels"])
    command = "python -m dreampose.world.train_demo " + shlex.join(sys.argv[1:] if argv is None else argv)
    recipe = DemoRecipe(**values, command=command.strip())
    if recipe.height % 64 or recipe.width % 64:
        parser.error(f"--height and --width must be multiples of 64; got {recipe.height} x {recipe.width}")
    if recipe.output.exists():
        parser.error(f"{recipe.output} already exists; choose another --output or remove it")
    return recipe


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
