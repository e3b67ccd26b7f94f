"""Scenes: a person on a background, seen by a camera; frames, clips and their exact poses.

Every frame comes with its pose in the project's pose file format (DensePose part labels and
per-part U, V), made from the same regions as the picture, so a driving clip drawn here is its
own ground truth: the same person drawn in any pose is the target for that pose.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from dreampose.world.draw import Canvas
from dreampose.world.motions import Clip
from dreampose.world.parts import draw_person
from dreampose.world.people import Person
from dreampose.world.skeleton import Camera, Pose, pose_joints
from pose_extraction.pose_sequence import PoseSequence

BACKGROUNDS = ("plain", "vertical", "horizontal")


@dataclass(frozen=True)
class Background:
    """A plain colour or a two-colour gradient, with an optional darker floor."""

    kind: str
    top: tuple[int, int, int]
    bottom: tuple[int, int, int]
    floor: tuple[int, int, int] | None = None

    @classmethod
    def from_seed(cls, seed: int) -> Background:
        rng = np.random.default_rng([seed, 3])
        kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
        hue = rng.random()
        top = _soft_colour(hue, rng)
        bottom = _soft_colour((hue + rng.uniform(-0.15, 0.15)) % 1, rng)
        floor = _soft_colour(rng.random(), rng, value=0.45) if rng.random() < 0.5 else None
        return cls(kind, top, top if kind == "plain" else bottom, floor)

    def image(self, height: int, width: int) -> np.ndarray:
        """The background as (H, W, 3) uint8."""
        top, bottom = np.float32(self.top), np.float32(self.bottom)
        if self.kind == "horizontal":
            t = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
        else:
            t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        image = np.broadcast_to((1 - t) * top + t * bottom, (height, width, 3))
        image = np.rint(image).astype(np.uint8)
        if self.floor is not None:
            image[int(height * 0.9) :] = self.floor
        return image


def _soft_colour(hue: float, rng: np.random.Generator, value: float | None = None) -> tuple[int, int, int]:
    """A pale, low-saturation colour (a wall or a sky): people stand out against it."""
    v = rng.uniform(0.7, 0.95) if value is None else value
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, rng.uniform(0.05, 0.3), v))


@dataclass(frozen=True)
class Scene:
    """One person on one background in a frame of ``size`` (height, width) pixels."""

    person: Person
    background: Background
    size: tuple[int, int]
    fill: float = 0.82  # how much of the frame's height the standing person fills

    @classmethod
    def from_seed(cls, seed: int, size: tuple[int, int] = (256, 192)) -> Scene:
        """A random person on a random background, the same for the same seed."""
        return cls(Person.from_seed(seed), Background.from_seed(seed), tuple(size))

    @property
    def camera(self) -> Camera:
        height, width = self.size
        scale = self.fill * height
        head_and_torso = 2 * self.person.body.head_radius + self.person.body.neck + self.person.body.torso
        top = (1 - self.fill) * height * 0.45
        return Camera((width / 2, top + scale * head_and_torso), scale)


@dataclass(frozen=True)
class Frame:
    """A drawn picture and its exact pose."""

    rgb: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) uint8, DensePose part index, 0 = background
    uv: np.ndarray  # (2, H, W) float32, U and V in [0, 1], 0 off the body


def render(scene: Scene, pose: Pose) -> Frame:
    """The scene's person drawn in ``pose``, and that pose's part labels and U, V."""
    canvas = Canvas.over(scene.background.image(*scene.size))
    draw_person(canvas, scene.person, pose_joints(scene.person.body, pose), scene.camera)
    return Frame(canvas.picture(), canvas.labels, canvas.uv)


def render_clip(scene: Scene, clip: Clip) -> tuple[list[np.ndarray], PoseSequence]:
    """Every frame of ``clip`` and the clip's pose sequence (boxes from the drawn body)."""
    frames = [render(scene, pose) for pose in clip.poses]
    return [f.rgb for f in frames], pose_sequence(frames, clip.fps)


def pose_sequence(frames: list[Frame], fps: float) -> PoseSequence:
    """The pose file contents of drawn frames."""
    labels = np.stack([f.labels for f in frames])
    boxes = [_body_box(lab) for lab in labels]
    n = len(frames)
    return PoseSequence(
        uv=np.stack([f.uv for f in frames]).astype(np.float16),
        labels=labels,
        boxes=np.asarray(boxes, np.float32).reshape(n, 4),
        scores=np.ones(n, np.float32),
        missing=np.zeros(n, bool),
        fps=fps,
        source_size=frames[0].labels.shape,
    )


def _body_box(labels: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(labels)
    if len(xs) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
