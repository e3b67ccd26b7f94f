"""Regenerate the app's example inputs: a drawn figure "photo", a short "dance" video, and their poses.

Both pictures are synthetic drawings made here (no photos of real people): a figure with a head,
a red shirt, blue trousers and skin-coloured arms on a soft gradient, and the same figure
waving its arms and stepping sideways. Their poses are drawn from the same geometry, not
detected, so the example needs no pose detector: each drawn part gets one DensePose part index
and smooth U, V coordinates across it (a stand-in for DensePose's own surface charts, which a
stick figure does not have). ``examples.json`` ties each pose file to the picture it belongs to.

    python assets/make_examples.py               # pictures, poses and index
    python assets/make_examples.py --poses-only  # poses and index for the pictures already here
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SKIN, SHIRT, TROUSERS, HAIR = (224, 172, 140), (220, 30, 30), (40, 60, 150), (60, 40, 30)
PHOTO_SIZE, VIDEO_SIZE = (256, 192), (160, 128)  # (height, width)
VIDEO_FRAMES, VIDEO_FPS = 12, 8.0

# One DensePose part index per drawn part (front and back halves of a part are not told apart).
# "Right" is the figure's right, which is on the viewer's left (x < centre): it faces the viewer.
TORSO, HEAD_RIGHT, HEAD_LEFT = 2, 23, 24
UPPER_LEG = {-1: 7, 1: 8}
LOWER_LEG = {-1: 11, 1: 12}
UPPER_ARM = {-1: 16, 1: 15}
LOWER_ARM = {-1: 20, 1: 19}


@dataclass(frozen=True)
class FigurePose:
    cx: float  # centre, in pixels
    arm_angle: float  # radians the arms are raised
    leg_spread: float  # figure units the feet are apart beyond the hips


@dataclass(frozen=True)
class Geometry:
    """Every drawn shape of one figure, in pixels (what both the picture and its pose are drawn from)."""

    thick: int
    legs: dict[int, tuple[tuple[int, int], tuple[int, int]]]  # side -> (hip, foot)
    arms: dict[int, tuple[tuple[int, int], tuple[int, int]]]  # side -> (shoulder, hand)
    torso: tuple[tuple[int, int], tuple[int, int]]
    head: tuple[tuple[int, int], int]  # centre, radius
    hair: tuple[tuple[int, int], tuple[int, int]]  # centre, axes (upper half ellipse)


def geometry(height: int, pose: FigurePose) -> Geometry:
    unit = height / 100  # the figure is about 80 units tall
    x = lambda v: int(round(pose.cx + v * unit))  # noqa: E731
    y = lambda v: int(round(v * unit))  # noqa: E731
    ex = 6 + 18 * math.cos(pose.arm_angle)
    ey = 22 + 18 * math.sin(pose.arm_angle)
    return Geometry(
        thick=max(2, int(4 * unit)),
        legs={s: ((x(s * 3), y(55)), (x(s * (5 + pose.leg_spread)), y(85))) for s in (-1, 1)},
        arms={s: ((x(s * 7), y(22)), (x(s * ex), y(ey))) for s in (-1, 1)},
        torso=((x(-8), y(20)), (x(8), y(56))),
        head=((x(0), y(13)), int(7 * unit)),
        hair=((x(0), y(9)), (int(7 * unit), int(4 * unit))),
    )


def background(height: int, width: int) -> np.ndarray:
    """A vertical grey-blue gradient with a darker floor."""
    t = np.linspace(0, 1, height)[:, None, None]
    sky = (1 - t) * np.array([200, 215, 230]) + t * np.array([150, 165, 185])
    image = np.broadcast_to(sky, (height, width, 3)).astype(np.uint8).copy()
    image[int(height * 0.85) :] = (120, 110, 100)
    return image


def draw_figure(image: np.ndarray, cx: float, arm_angle: float, leg_spread: float) -> np.ndarray:
    """A simple standing figure centred at x=cx (pixels), arms raised by ``arm_angle`` radians."""
    g = geometry(image.shape[0], FigurePose(cx, arm_angle, leg_spread))
    for side in (-1, 1):
        cv2.line(image, *g.legs[side], TROUSERS, g.thick + 1, cv2.LINE_AA)
    for side in (-1, 1):
        cv2.line(image, *g.arms[side], SKIN, g.thick, cv2.LINE_AA)
    cv2.rectangle(image, *g.torso, SHIRT, -1)
    cv2.circle(image, g.head[0], g.head[1], SKIN, -1, cv2.LINE_AA)
    cv2.ellipse(image, g.hair[0], g.hair[1], 0, 180, 360, HAIR, -1, cv2.LINE_AA)
    return image


# ----------------------------------------------------------------------------- poses
def draw_pose(height: int, width: int, pose: FigurePose) -> tuple[np.ndarray, np.ndarray]:
    """Part labels (H, W) uint8 and UV (2, H, W) float32 of the figure, in the drawing's order.

    Shapes are filled without anti-aliasing (labels are indices); U runs along each limb from
    its root and across torso and head, V across each limb, both kept in [0.02, 1] so a body
    pixel is never exactly 0 (the background value).
    """
    g = geometry(height, pose)
    labels = np.zeros((height, width), np.uint8)
    uv = np.zeros((2, height, width), np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)

    def paint(mask: np.ndarray, part: int, u: np.ndarray, v: np.ndarray) -> None:
        labels[mask] = part
        uv[0][mask] = 0.02 + 0.98 * np.clip(u[mask], 0, 1)
        uv[1][mask] = 0.02 + 0.98 * np.clip(v[mask], 0, 1)

    def limb(start, end, thickness: int, part: int) -> None:
        mask = cv2.line(np.zeros_like(labels), start, end, 1, thickness, cv2.LINE_8).astype(bool)
        d = np.subtract(end, start, dtype=np.float32)
        length2 = max(float(d @ d), 1e-6)
        qx, qy = xs - start[0], ys - start[1]
        along = (qx * d[0] + qy * d[1]) / length2
        across = (d[0] * qy - d[1] * qx) / math.sqrt(length2) / (thickness / 2)
        paint(mask, part, along, (across + 1) / 2)

    for side in (-1, 1):
        hip, foot = g.legs[side]
        knee = _midpoint(hip, foot)
        limb(hip, knee, g.thick + 1, UPPER_LEG[side])
        limb(knee, foot, g.thick + 1, LOWER_LEG[side])
    for side in (-1, 1):
        shoulder, hand = g.arms[side]
        elbow = _midpoint(shoulder, hand)
        limb(shoulder, elbow, g.thick, UPPER_ARM[side])
        limb(elbow, hand, g.thick, LOWER_ARM[side])
    (x0, y0), (x1, y1) = g.torso
    torso = cv2.rectangle(np.zeros_like(labels), (x0, y0), (x1, y1), 1, -1).astype(bool)
    paint(torso, TORSO, (xs - x0) / max(x1 - x0, 1), (ys - y0) / max(y1 - y0, 1))
    (hx, hy), radius = g.head
    head = cv2.circle(np.zeros_like(labels), (hx, hy), radius, 1, -1, cv2.LINE_8)
    head = cv2.ellipse(head, g.hair[0], g.hair[1], 0, 180, 360, 1, -1, cv2.LINE_8).astype(bool)
    angle = (np.arctan2(ys - hy, xs - hx) + math.pi) / (2 * math.pi)
    distance = np.hypot(xs - hx, ys - hy) / max(radius, 1)
    paint(head & (xs < hx), HEAD_RIGHT, angle, distance)
    paint(head & (xs >= hx), HEAD_LEFT, angle, distance)
    return labels, uv


def _midpoint(a, b) -> tuple[int, int]:
    return (int(round((a[0] + b[0]) / 2)), int(round((a[1] + b[1]) / 2)))


def photo_pose() -> FigurePose:
    return FigurePose(PHOTO_SIZE[1] / 2, math.radians(70), 2)


def video_poses(frames: int = VIDEO_FRAMES, width: int = VIDEO_SIZE[1]) -> list[FigurePose]:
    poses = []
    for i in range(frames):
        phase = 2 * math.pi * i / frames
        poses.append(
            FigurePose(
                width / 2 + 10 * math.sin(phase),
                math.radians(10 + 70 * (0.5 + 0.5 * math.sin(phase))),
                3 * abs(math.sin(phase)),
            )
        )
    return poses


def pose_sequence(size: tuple[int, int], poses: list[FigurePose], fps: float):
    """A DreamPose pose file's contents for these figure poses (boxes from the drawn body)."""
    from pose_extraction.pose_sequence import PoseSequence

    drawn = [draw_pose(*size, p) for p in poses]
    labels = np.stack([lab for lab, _ in drawn])
    uv = np.stack([u for _, u in drawn]).astype(np.float16)
    boxes = []
    for lab in labels:
        ys, xs = np.nonzero(lab)
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    n = len(poses)
    return PoseSequence(
        uv=uv,
        labels=labels,
        boxes=np.asarray(boxes, np.float32),
        scores=np.ones(n, np.float32),
        missing=np.zeros(n, bool),
        fps=fps,
        source_size=size,
    )


# ----------------------------------------------------------------------------- files
def make_photo(path: Path, height: int = PHOTO_SIZE[0], width: int = PHOTO_SIZE[1]) -> Path:
    p = photo_pose()
    image = draw_figure(background(height, width), p.cx, p.arm_angle, p.leg_spread)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def make_video(
    path: Path,
    frames: int = VIDEO_FRAMES,
    fps: float = VIDEO_FPS,
    height: int = VIDEO_SIZE[0],
    width: int = VIDEO_SIZE[1],
) -> Path:
    from dreampose.media.video_writer import write_mp4

    video = [
        draw_figure(background(height, width), p.cx, p.arm_angle, p.leg_spread)
        for p in video_poses(frames, width)
    ]
    return write_mp4(video, path, fps)


def make_poses(folder: Path = HERE) -> Path:
    """The two pose files and ``examples.json``, which ties them to the pictures by content."""
    from PIL import Image

    pose_sequence(VIDEO_SIZE, video_poses(), VIDEO_FPS).save(folder / "example_poses.npz")
    pose_sequence(PHOTO_SIZE, [photo_pose()], 30.0).save(folder / "example_photo_pose.npz")
    photo = np.asarray(Image.open(folder / "example_photo.png").convert("RGB"))
    index = {
        "videos": {
            hashlib.sha256((folder / "example_dance.mp4").read_bytes()).hexdigest(): "example_poses.npz"
        },
        "photos": {pixels_digest(photo): "example_photo_pose.npz"},
    }
    path = folder / "examples.json"
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path


def pixels_digest(rgb: np.ndarray) -> str:
    """The SHA-256 of a picture's pixels (the app keeps photos under this digest, whatever the file)."""
    return hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # run as a script from anywhere
    if "--poses-only" not in sys.argv:
        print(make_photo(HERE / "example_photo.png"))
        print(make_video(HERE / "example_dance.mp4"))
    print(make_poses(HERE))
