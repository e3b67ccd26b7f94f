"""People of the world: body proportions, skin, hair and garments, all drawn from one seed."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace

import numpy as np

from dreampose.world.draw import Region
from dreampose.world.skeleton import Proportions

PATTERNS = ("plain", "stripes", "checks", "dots")
SKIN_TONES = ((255, 219, 190), (236, 188, 150), (210, 158, 120), (170, 116, 80), (120, 80, 55), (90, 60, 42))
HAIR_COLOURS = ((30, 24, 20), (70, 45, 30), (120, 80, 40), (200, 160, 90), (150, 60, 30), (110, 110, 110))
SHOE_COLOURS = ((35, 35, 40), (90, 60, 40), (230, 230, 230), (120, 30, 30))


@dataclass(frozen=True)
class Garment:
    """A colour, an accent colour and the pattern that mixes them (sized in pixels per body height)."""

    colour: tuple[int, int, int]
    accent: tuple[int, int, int]
    pattern: str = "plain"
    period: float = 0.05  # body heights between stripes, checks or dots

    def colour_of(self, region: Region, scale: float) -> np.ndarray:
        """The garment's colour on every pixel of ``region`` (h, w, 3), shaded across the part."""
        period = max(self.period * scale, 3.0)
        a, c = region.along / period, region.across / period
        if self.pattern == "stripes":
            accent = np.floor(a) % 2 == 1
        elif self.pattern == "checks":
            accent = (np.floor(a) + np.floor(c)) % 2 == 1
        elif self.pattern == "dots":
            accent = np.hypot(a - np.round(a), c - np.round(c)) < 0.28
        else:
            accent = np.zeros(region.mask.shape, bool)
        rgb = np.where(accent[..., None], np.float32(self.accent), np.float32(self.colour))
        return rgb * shading(region)[..., None]


def shading(region: Region) -> np.ndarray:
    """Darker towards the sides of a part, as if lit from the front (a round limb, not a flat strip)."""
    return 0.72 + 0.28 * np.sin(np.pi * np.clip(region.v, 0, 1))


def plain(colour) -> Garment:
    return Garment(tuple(colour), tuple(colour))


@dataclass(frozen=True)
class Person:
    """Everything that makes one person look like themselves, in any pose."""

    body: Proportions
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    long_hair: bool
    top: Garment  # shirt, or the dress when ``dress``
    bottom: Garment  # trousers or skirt (the dress's own garment when ``dress``)
    dress: bool  # the top and a skirt of one piece
    skirt: bool  # a skirt over the thighs instead of trousers
    long_sleeves: bool
    shoes: tuple[int, int, int]

    @classmethod
    def from_seed(cls, seed: int) -> Person:
        """A person drawn at random, the same for the same seed."""
        rng = np.random.default_rng([seed, 20])
        dress = bool(rng.random() < 0.25)
        skirt = dress or bool(rng.random() < 0.2)
        top = random_garment(rng)
        bottom = top if dress else random_garment(rng)
        return cls(
            body=random_proportions(rng),
            skin=SKIN_TONES[rng.integers(len(SKIN_TONES))],
            hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))],
            long_hair=bool(rng.random() < 0.4),
            top=top,
            bottom=bottom,
            dress=dress,
            skirt=skirt,
            long_sleeves=bool(rng.random() < 0.5),
            shoes=SHOE_COLOURS[rng.integers(len(SHOE_COLOURS))],
        )

    def wearing(self, **changes) -> Person:
        """The same person with some things changed (``top=...``, ``skin=...``)."""
        return replace(self, **changes)


def random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated or muted colour of any hue (never a washed-out grey: garments must stand out)."""
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.45, 0.95), rng.uniform(0.35, 0.95))
    return tuple(int(round(255 * c)) for c in rgb)


def random_garment(rng: np.random.Generator) -> Garment:
    colour = random_colour(rng)
    accent = random_colour(rng)
    pattern = PATTERNS[rng.choice(len(PATTERNS), p=(0.4, 0.25, 0.2, 0.15))]
    return Garment(colour, accent, pattern, float(rng.uniform(0.035, 0.07)))


def random_proportions(rng: np.random.Generator) -> Proportions:
    """Body proportions within a plausible spread around the average figure."""
    base = Proportions()
    build = rng.uniform(0.85, 1.2)  # slim to broad
    legs = rng.uniform(0.93, 1.07)
    return Proportions(
        head_radius=base.head_radius * rng.uniform(0.92, 1.1),
        neck=base.neck,
        torso=base.torso * rng.uniform(0.95, 1.05),
        shoulder_width=base.shoulder_width * build,
        hip_width=base.hip_width * rng.uniform(0.85, 1.2),
        torso_depth=base.torso_depth * build,
        upper_arm=base.upper_arm * legs,
        lower_arm=base.lower_arm * legs,
        arm_radius=base.arm_radius * build,
        hand_radius=base.hand_radius,
        thigh=base.thigh * legs,
        shin=base.shin * legs,
        leg_radius=base.leg_radius * build,
        foot=base.foot,
    )
