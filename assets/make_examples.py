"""Regenerate the app's example inputs: a drawn figure "photo" and a short "dance" video.

Both are synthetic drawings made here (no photos of real people): a figure with a head,
a red shirt, blue trousers and skin-coloured arms on a soft gradient, and the same figure
waving its arms and stepping sideways. Run ``python assets/make_examples.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SKIN, SHIRT, TROUSERS, HAIR = (224, 172, 140), (220, 30, 30), (40, 60, 150), (60, 40, 30)


def background(height: int, width: int) -> np.ndarray:
    """A vertical grey-blue gradient with a darker floor."""
    t = np.linspace(0, 1, height)[:, None, None]
    sky = (1 - t) * np.array([200, 215, 230]) + t * np.array([150, 165, 185])
    image = np.broadcast_to(sky, (height, width, 3)).astype(np.uint8).copy()
    image[int(height * 0.85) :] = (120, 110, 100)
    return image


def draw_figure(image: np.ndarray, cx: float, arm_angle: float, leg_spread: float) -> np.ndarray:
    """A simple standing figure centred at x=cx (pixels), arms raised by ``arm_angle`` radians."""
    h = image.shape[0]
    unit = h / 100  # the figure is about 80 units tall
    x = lambda v: int(round(cx + v * unit))  # noqa: E731
    y = lambda v: int(round(v * unit))  # noqa: E731
    thick = max(2, int(4 * unit))
    for side in (-1, 1):  # legs
        cv2.line(
            image, (x(side * 3), y(55)), (x(side * (5 + leg_spread)), y(85)), TROUSERS, thick + 1, cv2.LINE_AA
        )
    for side in (-1, 1):  # arms, from the shoulders
        ex = 6 + 18 * math.cos(arm_angle)
        ey = 22 + 18 * math.sin(arm_angle)
        cv2.line(image, (x(side * 7), y(22)), (x(side * ex), y(ey)), SKIN, thick, cv2.LINE_AA)
    cv2.rectangle(image, (x(-8), y(20)), (x(8), y(56)), SHIRT, -1)  # torso
    cv2.circle(image, (x(0), y(13)), int(7 * unit), SKIN, -1, cv2.LINE_AA)  # head
    cv2.ellipse(image, (x(0), y(9)), (int(7 * unit), int(4 * unit)), 0, 180, 360, HAIR, -1, cv2.LINE_AA)
    return image


def make_photo(path: Path, height: int = 256, width: int = 192) -> Path:
    image = draw_figure(background(height, width), width / 2, math.radians(70), 2)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def make_video(path: Path, frames: int = 12, fps: float = 8.0, height: int = 160, width: int = 128) -> Path:
    from pose_extraction.video_writer import write_mp4

    video = []
    for i in range(frames):
        phase = 2 * math.pi * i / frames
        image = background(height, width)
        cx = width / 2 + 10 * math.sin(phase)
        video.append(
            draw_figure(
                image, cx, math.radians(10 + 70 * (0.5 + 0.5 * math.sin(phase))), 3 * abs(math.sin(phase))
            )
        )
    return write_mp4(video, path, fps)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(HERE.parent))  # run as a script from anywhere
    print(make_photo(HERE / "example_photo.png"))
    print(make_video(HERE / "example_dance.mp4"))
