"""Judging a model by what it renders: held-out world people, their ground truth, and scores.

A held-out case is a person no training video showed (``train_demo`` draws its people from
seeds of a million and up), photographed standing, and a driving clip of the same person in a
performance no training video had. Because the world draws that person in any pose, every
driving frame has its exact target, and the scores compare a render with it:

- ``iou``: the rendered person's silhouette against the target's (pose following);
- ``colour``: per-garment mean colour error in grey levels (appearance: the top on the torso,
  the bottom on the thighs);
- ``l1`` (grey levels) and ``ssim`` against the target;
- ``temporal``: how much more the render changes from frame to frame than the target does
  (flicker, in grey levels; 0 when it moves exactly as the target).

``benchmarks/demo_quality.py`` prints them for the paper's settings and the ablations, and
``tests/test_demo_quality.py`` holds the shipped demo model to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dreampose.world.examples import PHOTO_POSE
from dreampose.world.motions import MOTIONS, clip
from dreampose.world.scenes import Scene, pose_sequence, render
from pose_extraction.pose_sequence import PoseSequence

HELD_OUT_PEOPLE = 500  # the first held-out person's world seed (training people: 1e6 and up)
HELD_OUT_STYLES = 90_000  # the first held-out performance seed (training clips: 1 .. videos)
FOREGROUND_DISTANCE = 40.0  # colour distance from the known background that counts as the person
BACKGROUND_MARGIN = 15  # pixels around the target person left out when measuring a render's backdrop
GARMENTS = {"top": (1, 2), "bottom": (7, 8, 9, 10)}  # DensePose parts: torso; upper legs


@dataclass(frozen=True)
class Case:
    """One held-out person: the photo, a driving clip's poses and every frame's target."""

    scene: Scene
    photo: np.ndarray  # (H, W, 3) uint8: the person standing
    photo_pose: PoseSequence
    poses: PoseSequence  # the driving clip (the same person, so the targets are exact)
    targets: np.ndarray  # (N, H, W, 3) uint8
    background: np.ndarray  # (H, W, 3) uint8

    @property
    def labels(self) -> np.ndarray:
        return self.poses.labels


def held_out_case(k: int, frames: int = 8, fps: float = 8.0, size: tuple[int, int] = (256, 192)) -> Case:
    """Held-out case ``k``: person ``HELD_OUT_PEOPLE + k`` doing motion k mod 5."""
    scene = Scene.from_seed(HELD_OUT_PEOPLE + k, size)
    motion = list(MOTIONS)[k % len(MOTIONS)]
    drawn = [render(scene, pose) for pose in clip(motion, frames, fps, seed=HELD_OUT_STYLES + k).poses]
    photo = render(scene, PHOTO_POSE)
    return Case(
        scene,
        photo.rgb,
        pose_sequence([photo], fps),
        pose_sequence(drawn, fps),
        np.stack([f.rgb for f in drawn]),
        scene.background.image(*size),
    )


def held_out_cases(count: int = 20, **kwargs) -> list[Case]:
    return [held_out_case(k, **kwargs) for k in range(count)]


# =========================================================================== scores
def foreground(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Pixels far in colour from the known background: the person, as a picture shows it."""
    distance = np.linalg.norm(rgb.astype(np.float32) - background.astype(np.float32), axis=-1)
    return distance > FOREGROUND_DISTANCE


def rendered_silhouette(
    rendered: np.ndarray, target_silhouette: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """The person in a render, against the background *as the render has it*: the known
    background shifted by the render's median colour offset well away from the target person.
    A model that draws the backdrop a little off in colour (an appearance error, which L1 and
    SSIM count) would otherwise be scored as all foreground, its pose following unmeasured
    (seen: a demo checkpoint whose figures followed every pose scored IoU 0.18 on a backdrop
    drawn visibly bluer than the photo's)."""
    near = cv2.dilate(target_silhouette.astype(np.uint8), np.ones((BACKGROUND_MARGIN,) * 2, np.uint8)) > 0
    offset = np.median(rendered[~near].astype(np.float32) - background[~near].astype(np.float32), axis=0)
    return foreground(rendered, background.astype(np.float32) + offset)


def silhouette_iou(rendered: np.ndarray, target: np.ndarray, background: np.ndarray) -> float:
    """Pose following: the rendered person's silhouette against the target's."""
    truth = foreground(target, background)
    return iou(rendered_silhouette(rendered, truth, background), truth)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def garment_colour_error(rendered: np.ndarray, target: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the garments in view of |mean colour rendered - mean colour of the target| on
    the target's garment pixels, averaged over R, G, B (grey levels)."""
    errors = []
    for parts in GARMENTS.values():
        region = np.isin(labels, parts)
        if region.sum() < 20:  # hardly in view (a spin's side view)
            continue
        rendered_mean = rendered[region].astype(np.float32).mean(axis=0)
        target_mean = target[region].astype(np.float32).mean(axis=0)
        errors.append(float(np.abs(rendered_mean - target_mean).mean()))
    return float(np.mean(errors)) if errors else 0.0


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in grey levels."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of the luminances (Wang et al. 2004: 11 x 11 Gaussian window, sigma 1.5)."""
    x, y = (cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float64) for im in (a, b))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    return float((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))).mean())


def temporal_error(rendered: np.ndarray, targets: np.ndarray) -> float:
    """Mean |(r_t - r_t-1) - (g_t - g_t-1)|: change from frame to frame that the target does
    not have (grey levels; needs two frames or more)."""
    if len(rendered) < 2:
        return 0.0
    r, g = rendered.astype(np.float32), targets.astype(np.float32)
    return float(np.abs(np.diff(r, axis=0) - np.diff(g, axis=0)).mean())


@dataclass(frozen=True)
class Scores:
    iou: float
    colour: float
    l1: float
    ssim: float
    temporal: float

    @staticmethod
    def mean(scores: list[Scores]) -> Scores:
        return Scores(*(float(np.mean([getattr(s, f) for s in scores])) for f in Scores.__dataclass_fields__))


def score(case: Case, rendered: np.ndarray, frames: list[int]) -> Scores:
    """The scores of ``rendered`` (one image per index in ``frames``) against the case's targets."""
    targets, labels = case.targets[frames], case.labels[frames]
    per_frame = [
        (
            silhouette_iou(r, t, case.background),
            garment_colour_error(r, t, lab),
            l1(r, t),
            ssim(r, t),
        )
        for r, t, lab in zip(rendered, targets, labels, strict=True)
    ]
    means = np.mean(per_frame, axis=0)
    consecutive = np.all(np.diff(frames) == 1)
    return Scores(*map(float, means), temporal_error(rendered, targets) if consecutive else 0.0)


# =========================================================================== rendering
def render_case(
    pipe, case: Case, settings, frames: list[int], poses: PoseSequence | None = None
) -> np.ndarray:
    """``frames`` of the case rendered from its photo with ``settings`` (a RenderSettings) and
    ``poses`` (default: the case's own; the ablations pass shuffled ones): (F, H, W, 3) uint8."""
    from dreampose.rendering.frames import render_frames
    from dreampose.rendering.poses import place_poses

    placed = place_poses(case.poses if poses is None else poses, settings.height, settings.width)
    return np.stack(render_frames(pipe, case.photo, placed, settings, frames).frames)


def render_single_poses(pipe, case: Case, settings, frames: list[int]) -> np.ndarray:
    """The ablation "1 pose instead of 5": each frame rendered from its own pose alone (a
    one-frame sequence, whose window repeats that pose)."""
    return np.concatenate([render_case(pipe, case, settings, [0], case.poses.select([j])) for j in frames])


def shuffled(poses: PoseSequence, seed: int = 0) -> PoseSequence:
    """The poses in another order (no frame keeps its own): pose following must break."""
    n = len(poses)
    order = np.roll(np.random.default_rng(seed).permutation(n), 1) if n > 1 else np.arange(n)
    while n > 1 and (order == np.arange(n)).any():
        order = np.random.default_rng(seed := seed + 1).permutation(n)
    return poses.select(order)
