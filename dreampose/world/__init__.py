"""A world of drawn people: seeded people, motion clips and, for every frame, its exact pose.

The same person can be drawn in any pose, so every driving frame has its ground-truth target.
It stands in for real videos where no data or model can be downloaded (tests, the demo model).

    from dreampose.world import Scene, clip, render_clip
    frames, poses = render_clip(Scene.from_seed(3, (256, 192)), clip("spin", 24, 12.0))
"""

from dreampose.world.motions import MOTIONS, Clip, clip
from dreampose.world.people import Person
from dreampose.world.scenes import Background, Frame, Scene, render, render_clip
from dreampose.world.skeleton import Limb, Pose

__all__ = [
    "MOTIONS",
    "Background",
    "Clip",
    "Frame",
    "Limb",
    "Person",
    "Pose",
    "Scene",
    "clip",
    "render",
    "render_clip",
]
