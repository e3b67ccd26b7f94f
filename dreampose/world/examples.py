"""The app's bundled examples: three people of the world and three driving clips, with their poses.

``assets/make_examples.py`` calls :func:`write_examples`. Every picture's pose is drawn from the
same geometry as the picture, so the examples never run a pose detector; ``examples.json`` ties
each pose file to its picture by content (a video by the SHA-256 of its bytes, a photo by the
SHA-256 of its pixels, as the app keeps photos) and lists the photo x video pairs the app offers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from dreampose.media.frames import save_png
from dreampose.media.images import pixels_digest
from dreampose.media.video_writer import write_mp4
from dreampose.world.motions import clip
from dreampose.world.people import Person
from dreampose.world.scenes import Background, Scene, pose_sequence, render, render_clip
from dreampose.world.skeleton import SIDES, Limb, Pose

PHOTO_SIZE, VIDEO_SIZE = (256, 192), (160, 128)  # (height, width)
VIDEO_FPS = 8.0
PHOTO_POSE = Pose(arms={side: Limb(abduct=0.45, bend=0.2) for side in SIDES})
VIDEO_FILL = 0.72  # a little smaller than the photo's figure: outstretched arms stay in frame
BACKDROP = Background("vertical", (200, 215, 230), (150, 165, 185), (120, 110, 100))


@dataclass(frozen=True)
class ExamplePhoto:
    file: str
    seed: int  # the person

    @property
    def pose_file(self) -> str:
        return self.file.removesuffix(".png") + "_pose.npz"


@dataclass(frozen=True)
class ExampleVideo:
    file: str
    pose_file: str
    motion: str
    num_frames: int
    seed: int  # who dances it (not one of the photos' people)


PHOTOS = (
    ExamplePhoto("example_photo.png", 11),
    ExamplePhoto("example_photo_2.png", 12),
    ExamplePhoto("example_photo_3.png", 13),
)
VIDEOS = (
    ExampleVideo("example_dance.mp4", "example_poses.npz", "side_steps", 12, 21),
    ExampleVideo("example_walk.mp4", "example_walk_poses.npz", "walk", 12, 22),
    ExampleVideo("example_spin.mp4", "example_spin_poses.npz", "spin", 20, 23),
)  # fmt: skip


def photo_scene(photo: ExamplePhoto) -> Scene:
    return Scene(Person.from_seed(photo.seed), BACKDROP, PHOTO_SIZE)


def video_scene(video: ExampleVideo) -> Scene:
    return Scene(Person.from_seed(video.seed), BACKDROP, VIDEO_SIZE, fill=VIDEO_FILL)


def video_clip(video: ExampleVideo):
    return clip(video.motion, video.num_frames, VIDEO_FPS)


def example_pairs() -> list[list[str]]:
    """Every photo x video pair, in rounds that each show every person and every clip once
    (the page shows one round per page of examples)."""
    n = len(PHOTOS)
    rounds = [[(i, (i + shift) % len(VIDEOS)) for i in range(n)] for shift in range(len(VIDEOS))]
    return [[PHOTOS[p].file, VIDEOS[v].file] for round_ in rounds for p, v in round_]


def write_examples(folder: Path, pictures: bool = True) -> Path:
    """Every example picture (unless ``pictures`` is False), its poses, and ``examples.json``."""
    folder = Path(folder)
    index = {"videos": {}, "photos": {}, "examples": []}
    for photo in PHOTOS:
        frame = render(photo_scene(photo), PHOTO_POSE)
        if pictures:
            save_png(folder / photo.file, frame.rgb)
        pose_sequence([frame], 30.0).save(folder / photo.pose_file)
        index["photos"][pixels_digest(frame.rgb)] = photo.pose_file
    for video in VIDEOS:
        frames, poses = render_clip(video_scene(video), video_clip(video))
        if pictures:
            write_mp4(frames, folder / video.file, VIDEO_FPS)
        poses.save(folder / video.pose_file)
        index["videos"][hashlib.sha256((folder / video.file).read_bytes()).hexdigest()] = video.pose_file
    index["examples"] = example_pairs()
    path = folder / "examples.json"
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path
