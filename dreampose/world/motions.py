"""Motion clips: a named movement sampled at any frame rate, as one skeleton pose per frame.

Each motion is a function of time in seconds, so the same clip at 8 or 30 fps is the same
movement; a seed varies its amplitude, tempo and starting phase a little.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dreampose.world.skeleton import LEFT, RIGHT, Limb, Pose


@dataclass(frozen=True)
class Style:
    """How one performance of a motion differs from another: bigger or smaller, faster or slower."""

    amplitude: float = 1.0
    tempo: float = 1.0
    phase: float = 0.0

    @classmethod
    def from_seed(cls, seed: int) -> Style:
        if seed == 0:
            return cls()
        rng = np.random.default_rng([seed, 7])
        return cls(rng.uniform(0.75, 1.15), rng.uniform(0.85, 1.2), rng.uniform(0, 2 * math.pi))


def walk(t: float, style: Style) -> Pose:
    """Walking on the spot: legs and the opposite arms swing, the knee bends as the leg comes through."""
    p = 2 * math.pi * t * style.tempo / 1.1 + style.phase
    a = style.amplitude
    legs, arms = {}, {}
    for side, sign in ((LEFT, 1), (RIGHT, -1)):
        swing = sign * math.sin(p)
        legs[side] = Limb(abduct=0.03, flex=0.45 * a * swing, bend=0.5 * a * max(0.0, math.cos(p) * sign))
        arms[side] = Limb(abduct=0.12, flex=-0.5 * a * swing, bend=0.3 + 0.15 * swing)
    # Seen three-quarter on: straight at the viewer, a swing towards them hardly shows.
    return Pose(yaw=0.6, bounce=-0.01 * a * abs(math.cos(p)), arms=arms, legs=legs)


def sway(t: float, style: Style) -> Pose:
    """Swaying from side to side, arms loose and a little out."""
    p = 2 * math.pi * t * style.tempo / 2.0 + style.phase
    a = style.amplitude
    lean = 0.18 * a * math.sin(p)
    arms = {s: Limb(abduct=0.35 + s * 0.2 * a * math.sin(p), flex=0.1, bend=0.4) for s in (LEFT, RIGHT)}
    legs = {s: Limb(abduct=0.06 - s * 0.04 * math.sin(p)) for s in (LEFT, RIGHT)}
    return Pose(x=0.03 * a * math.sin(p), lean=lean, arms=arms, legs=legs)


def arm_raises(t: float, style: Style) -> Pose:
    """Both arms raised sideways to above the head and lowered, one slightly after the other."""
    p = 2 * math.pi * t * style.tempo / 1.8 + style.phase
    a = style.amplitude
    arms = {}
    for side, delay in ((LEFT, 0.0), (RIGHT, 0.6)):
        raised = 0.5 - 0.5 * math.cos(p - delay)
        arms[side] = Limb(abduct=0.15 + 2.4 * a * raised, flex=0.1, bend=0.2 * (1 - raised))
    legs = {s: Limb(abduct=0.05) for s in (LEFT, RIGHT)}
    return Pose(arms=arms, legs=legs)


def side_steps(t: float, style: Style) -> Pose:
    """Stepping sideways and back: the legs open and close, the body travels, the arms lift."""
    p = 2 * math.pi * t * style.tempo / 1.6 + style.phase
    a = style.amplitude
    open_ = abs(math.sin(p))
    legs = {s: Limb(abduct=0.03 + 0.28 * a * open_, bend=0.1 * open_) for s in (LEFT, RIGHT)}
    arms = {s: Limb(abduct=0.2 + 0.9 * a * open_, bend=0.3) for s in (LEFT, RIGHT)}
    return Pose(x=0.12 * a * math.sin(p), bounce=-0.01 * open_, arms=arms, legs=legs)


def spin(t: float, style: Style) -> Pose:
    """A turn on the spot with the arms out: the back comes into view half way round."""
    yaw = 2 * math.pi * t * style.tempo / 2.4 + style.phase
    arms = {s: Limb(abduct=1.0 * style.amplitude, flex=0.15, bend=0.3) for s in (LEFT, RIGHT)}
    return Pose(yaw=yaw, arms=arms)


MOTIONS: dict[str, Callable[[float, Style], Pose]] = {
    "walk": walk,
    "sway": sway,
    "arm_raises": arm_raises,
    "side_steps": side_steps,
    "spin": spin,
}


@dataclass(frozen=True)
class Clip:
    """``len(poses)`` frames of one motion at ``fps``."""

    motion: str
    poses: tuple[Pose, ...]
    fps: float

    def __len__(self) -> int:
        return len(self.poses)


def clip(motion: str, num_frames: int, fps: float, seed: int = 0) -> Clip:
    """The motion ``motion`` sampled at ``fps`` for ``num_frames`` frames (seeded variation)."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    if num_frames < 1 or not fps > 0:
        raise ValueError(
            f"a clip needs at least one frame and a positive fps; got {num_frames} frames at {fps} fps"
        )
    style = Style.from_seed(seed)
    move = MOTIONS[motion]
    return Clip(motion, tuple(move(i / fps, style) for i in range(num_frames)), float(fps))
