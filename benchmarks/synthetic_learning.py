"""Evidence that the whole DreamPose training chain learns, on CPU in a few minutes.

No real weights exist here, so we make a world where the truth is known: videos of textured
figures sliding across a grey canvas, with *exact* pose maps (U, V = the figure's own
normalised coordinates, 0 off the figure). Then:

0. The tiny VAE is trained briefly as an autoencoder on these frames. It stands in for
   Stable Diffusion's pretrained VAE, which DreamPose always starts from and keeps frozen
   in phase 1; a random VAE would make every decoded frame noise.
1. Phase 1 with ``dreampose.training.train.train`` (the code behind ``dreampose train``), on the
   training videos: UNet + adapter, condition dropout 5/5/5 %.
2. Held-out videos: render every frame from the first frame and the true poses, and again
   with the poses shuffled in time. Report the foreground IoU between the rendered figure
   (pixels far from the grey background) and the *target* pose's silhouette. If the model
   follows the pose, correct poses must score clearly higher than shuffled ones.
3. Phase 2 with ``dreampose.training.finetune.finetune`` on the first frame of each held-out video,
   and L1 / SSIM of the rendered frames against the true frames before and after.

Run: ``python benchmarks/synthetic_learning.py [--train-steps 600]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dreampose.model.conditioning import vae_pixels
from dreampose.model.pipeline import DreamPosePipeline
from dreampose.model.tiny import tiny_pipeline
from dreampose.training.finetune import finetune
from dreampose.training.settings import FinetuneSettings, TrainSettings
from dreampose.training.train import train
from pose_extraction.pose_sequence import PoseSequence

SIZE = 64
BACKGROUND = 128
FOREGROUND_THRESHOLD = 40  # max channel distance from the background grey


# =========================================================================== the world
def make_video(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured figure sliding sideways (and bobbing): RGB (N, S, S, 3), exact UV (N, 2, S, S)."""
    w, h = int(rng.integers(12, 20)), int(rng.integers(28, 40))
    colours = rng.integers(0, 256, (3, 3))
    colours[np.abs(colours - BACKGROUND).max(axis=1) < 80] = [230, 40, 40]  # keep figures visible
    ys, xs = np.mgrid[0:h, 0:w]
    period = int(rng.integers(3, 7))
    pattern = np.where(((ys // period) % 2)[..., None] == 1, colours[0], colours[1])
    pattern[: h // 4] = colours[2]  # a "head" band of another colour
    start, end = rng.integers(2, SIZE - w - 2, 2)
    images = np.full((frames, SIZE, SIZE, 3), BACKGROUND, np.uint8)
    uv = np.zeros((frames, 2, SIZE, SIZE), np.float32)
    for f in range(frames):
        t = f / max(frames - 1, 1)
        x0 = int(round(start + (end - start) * t))
        y0 = int(round((SIZE - h) / 2 + 6 * np.sin(2 * np.pi * t)))
        images[f, y0 : y0 + h, x0 : x0 + w] = pattern
        uv[f, 0, y0 : y0 + h, x0 : x0 + w] = (xs + 1) / w
        uv[f, 1, y0 : y0 + h, x0 : x0 + w] = (ys + 1) / h
    return images, uv


def write_dataset(root: Path, videos: list[tuple[np.ndarray, np.ndarray]]) -> Path:
    for v, (images, uv) in enumerate(videos):
        folder = root / f"video{v:03d}"
        (folder / "frames").mkdir(parents=True)
        for f, image in enumerate(images):
            Image.fromarray(image).save(folder / "frames" / f"{f:06d}.png")
        PoseSequence.from_uv(uv).save(folder / "poses.npz")
    return root


# =========================================================================== metrics
def foreground(images: np.ndarray) -> np.ndarray:
    return np.abs(images.astype(np.int16) - BACKGROUND).max(axis=-1) > FOREGROUND_THRESHOLD


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two RGB uint8 images (Gaussian window 7, sigma 1.5), on the luminance."""
    weights = np.array([0.299, 0.587, 0.114])
    x = torch.tensor(a @ weights, dtype=torch.float64)[None, None]
    y = torch.tensor(b @ weights, dtype=torch.float64)[None, None]
    g = torch.exp(-((torch.arange(7, dtype=torch.float64) - 3) ** 2) / (2 * 1.5**2))
    window = (g[:, None] * g[None, :] / g.sum() ** 2)[None, None]

    def blur(t):
        return F.conv2d(t, window)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


# =========================================================================== stages
def pretrain_vae(pipe: DreamPosePipeline, frames: np.ndarray, steps: int, seed: int) -> float:
    """Stage 0: the tiny VAE as an autoencoder (L1 + a small KL), standing in for SD's VAE."""
    vae = pipe.vae
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = frames[torch.randint(0, len(frames), (8,), generator=generator).numpy()]
        pixels = vae_pixels(batch)
        posterior = vae.encode(pixels).latent_dist
        decoded = vae.decode(posterior.sample(generator)).sample
        loss = (decoded - pixels).abs().mean() + 1e-6 * posterior.kl().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    vae.eval()
    vae.requires_grad_(False)
    return float(loss.detach())


def phase1_settings(steps: int, seed: int) -> TrainSettings:
    """Phase 1 on the tiny figures: large batches and a high learning rate, since the model is
    tiny and the data simple; one checkpoint at the end, no samples on the way."""
    return TrainSettings(
        height=SIZE,
        width=SIZE,
        batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        max_steps=steps,
        gradient_checkpointing=False,
        checkpoint_every=steps,
        sample_every=0,
        num_workers=0,
        seed=seed,
    )


def render(pipe: DreamPosePipeline, subject: np.ndarray, uv: np.ndarray, steps: int, seed: int) -> np.ndarray:
    return pipe(
        subject,
        uv,
        image_guidance_scale=1.0,  # plain conditional prediction eps(c_I, c_P)
        pose_guidance_scale=1.0,
        num_inference_steps=steps,
        height=SIZE,
        width=SIZE,
        frame_batch_size=len(uv),
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).frames


def evaluate(pipe, videos, steps: int, seed: int) -> dict[str, float]:
    """Correct vs time-shuffled poses: foreground IoU with the target silhouette; L1, SSIM."""
    rng = np.random.default_rng(seed)
    scores = {"iou_correct": [], "iou_shuffled": [], "l1": [], "ssim": []}
    for images, uv in videos:
        targets = range(1, len(images))  # frame 0 is the subject
        shuffled = rng.permutation(len(images))
        while np.any(shuffled == np.arange(len(images))):
            shuffled = rng.permutation(len(images))
        correct = render(pipe, images[0], uv, steps, seed)
        wrong = render(pipe, images[0], uv[shuffled], steps, seed)
        for f in targets:
            silhouette = (uv[f] > 0).any(axis=0)
            scores["iou_correct"].append(iou(foreground(correct[f]), silhouette))
            scores["iou_shuffled"].append(iou(foreground(wrong[f]), silhouette))
            scores["l1"].append(float(np.abs(correct[f].astype(float) - images[f]).mean()))
            scores["ssim"].append(ssim(correct[f], images[f]))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-videos", type=int, default=24)
    parser.add_argument("--test-videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--vae-steps", type=int, default=300)
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--finetune-steps", type=int, default=100, help="per stage")
    parser.add_argument("--sample-steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    videos = [make_video(rng, args.frames) for _ in range(args.train_videos + args.test_videos)]
    train_videos, test_videos = videos[: args.train_videos], videos[args.train_videos :]
    timings = {}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.monotonic()
        pipe = tiny_pipeline(args.seed)
        vae_loss = pretrain_vae(pipe, np.concatenate([v[0] for v in train_videos]), args.vae_steps, args.seed)
        pipe.save_pretrained(tmp / "base")
        timings["stage 0 (VAE autoencoder)"] = time.monotonic() - t

        t = time.monotonic()
        before_training = evaluate(pipe, test_videos, args.sample_steps, args.seed)
        dataset = write_dataset(tmp / "data", train_videos)
        settings = phase1_settings(args.train_steps, args.seed)
        result = train(tmp / "base", dataset, tmp / "run", settings)
        timings["phase 1 (train)"] = time.monotonic() - t
        base = DreamPosePipeline.from_pretrained(tmp / "run" / "model")
        base.set_progress_bar_config(disable=True)
        after_training = evaluate(base, test_videos, args.sample_steps, args.seed)

        t = time.monotonic()
        finetuned_scores = []
        for v, (images, uv) in enumerate(test_videos):
            subject = DreamPosePipeline.from_pretrained(tmp / "run" / "model")
            subject.set_progress_bar_config(disable=True)
            ft = FinetuneSettings(
                unet_steps=args.finetune_steps,
                vae_steps=args.finetune_steps,
                unet_lr=1e-4,
                vae_lr=1e-4,
                height=SIZE,
                width=SIZE,
                crop_min_scale=0.85,
                gradient_checkpointing=False,
                checkpoint_every=10**6,
            )
            finetune(
                subject, [images[0]], tmp / f"subject{v}", poses=PoseSequence.from_uv(uv[:1]), settings=ft
            )
            finetuned_scores.append(evaluate(subject, [(images, uv)], args.sample_steps, args.seed))
        after_finetune = {k: float(np.mean([s[k] for s in finetuned_scores])) for k in finetuned_scores[0]}
        timings["phase 2 (finetune, all test videos)"] = time.monotonic() - t

    print(
        f"VAE autoencoder final L1 {vae_loss:.3f}; phase 1 loss {np.mean(result.losses[:20]):.3f} -> "
        f"{np.mean(result.losses[-20:]):.3f} over {result.step} steps"
    )
    print("\n| model | IoU correct poses | IoU shuffled poses | L1 (0-255) | SSIM |")
    print("|---|---|---|---|---|")
    for name, s in (
        ("before phase 1 (random UNet)", before_training),
        ("after phase 1", after_training),
        ("after phase 2 (subject finetune)", after_finetune),
    ):
        print(
            f"| {name} | {s['iou_correct']:.3f} | {s['iou_shuffled']:.3f} | {s['l1']:.1f} | {s['ssim']:.3f} |"
        )
    print()
    for name, seconds in timings.items():
        print(f"- {name}: {seconds:.0f} s")


if __name__ == "__main__":
    main()
