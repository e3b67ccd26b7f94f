"""A posed person as DensePose body parts: the regions, their part labels and their colours.

Part indices are DensePose's own (1-24; "right" and "left" are the person's), so a drawn pose is
read by everything downstream exactly as a detected one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dreampose.world.draw import Canvas, Region, band, disk
from dreampose.world.people import Person, plain
from dreampose.world.skeleton import LEFT, RIGHT, SIDES, Camera, Joints, faces_viewer

TORSO = {"back": 1, "front": 2}
HAND = {RIGHT: 3, LEFT: 4}
FOOT = {LEFT: 5, RIGHT: 6}
THIGH = {("back", RIGHT): 7, ("back", LEFT): 8, ("front", RIGHT): 9, ("front", LEFT): 10}
SHIN = {("back", RIGHT): 11, ("back", LEFT): 12, ("front", RIGHT): 13, ("front", LEFT): 14}
UPPER_ARM = {("back", LEFT): 15, ("back", RIGHT): 16, ("front", LEFT): 17, ("front", RIGHT): 18}
LOWER_ARM = {("back", LEFT): 19, ("back", RIGHT): 20, ("front", LEFT): 21, ("front", RIGHT): 22}
HEAD = {RIGHT: 23, LEFT: 24}
FRONT_PARTS = frozenset({2, 9, 10, 13, 14, 17, 18, 21, 22})
BACK_PARTS = frozenset({1, 7, 8, 11, 12, 15, 16, 19, 20})

# Painting order among parts at the same depth (body heights): legs, feet, skirt, torso, arms, head.
_TIE = {
    "leg": 0.0,
    "foot": 0.0005,
    "skirt": 0.0007,
    "torso": 0.0008,
    "arm": 0.0015,
    "hand": 0.0017,
    "head": 0.002,
}


@dataclass
class Part:
    """One paintable piece: its depth towards the viewer and how to paint it."""

    depth: float
    paint: Callable[[Canvas], None]


def draw_person(canvas: Canvas, person: Person, joints: Joints, camera: Camera) -> None:
    """Paint ``person`` posed as ``joints`` on ``canvas``, far parts first."""
    size = canvas.labels.shape
    parts = legs(person, joints, camera, size) + [torso(person, joints, camera, size)]
    parts += arms(person, joints, camera, size) + [head(person, joints, camera, size)]
    if person.skirt:
        parts.append(skirt(person, joints, camera, size))
    for part in sorted(parts, key=lambda p: p.depth):
        part.paint(canvas)


def _facing(joints: Joints) -> str:
    return "front" if faces_viewer(joints.yaw) else "back"


def _limb(camera, start, end, r0, r1, size, label, look, depth) -> Part:
    """A rounded segment between two 3D joints, painted with one label and the colour ``look(region)``."""
    region = band(
        camera.project(start), camera.project(end), r0 * camera.scale, r1 * camera.scale, size, True
    )

    def paint(canvas: Canvas) -> None:
        if region is not None:
            canvas.paint(region, label, look(region))

    return Part(depth, paint)


def _skin(person: Person, camera: Camera):
    return lambda region: plain(person.skin).colour_of(region, camera.scale)


def _wearing(garment, camera: Camera):
    return lambda region: garment.colour_of(region, camera.scale)


def _mid_depth(a, b, tie: str) -> float:
    return float(a[2] + b[2]) / 2 + _TIE[tie]


def legs(person: Person, joints: Joints, camera: Camera, size) -> list[Part]:
    body, facing = person.body, _facing(joints)
    r = body.leg_radius
    trousers = _skin(person, camera) if person.skirt else _wearing(person.bottom, camera)
    shoes = _wearing(plain(person.shoes), camera)
    parts = []
    for side in SIDES:
        hip, knee, ankle, toe = joints.hip[side], joints.knee[side], joints.ankle[side], joints.toe[side]
        parts += [
            _limb(camera, hip, knee, r, 0.85 * r, size, THIGH[facing, side], trousers, _mid_depth(hip, knee, "leg")),
            _limb(camera, knee, ankle, 0.85 * r, 0.62 * r, size, SHIN[facing, side], trousers, _mid_depth(knee, ankle, "leg")),
            _limb(camera, ankle, toe, 0.6 * r, 0.55 * r, size, FOOT[side], shoes, _mid_depth(ankle, toe, "foot")),
        ]  # fmt: skip
    return parts


def arms(person: Person, joints: Joints, camera: Camera, size) -> list[Part]:
    body, facing = person.body, _facing(joints)
    r = body.arm_radius
    sleeve = _wearing(person.top, camera)
    forearm = sleeve if person.long_sleeves else _skin(person, camera)
    parts = []
    for side in SIDES:
        shoulder, elbow, wrist = joints.shoulder[side], joints.elbow[side], joints.wrist[side]
        reach = wrist - elbow
        fingers = wrist + reach / max(float(np.linalg.norm(reach)), 1e-6) * body.hand_radius
        parts += [
            _limb(camera, shoulder, elbow, 1.1 * r, 0.95 * r, size, UPPER_ARM[facing, side], sleeve, _mid_depth(shoulder, elbow, "arm")),
            _limb(camera, elbow, wrist, 0.95 * r, 0.8 * r, size, LOWER_ARM[facing, side], forearm, _mid_depth(elbow, wrist, "arm")),
            _limb(camera, wrist, fingers, body.hand_radius, 0.8 * body.hand_radius, size, HAND[side], _skin(person, camera), _mid_depth(wrist, fingers, "hand")),
        ]  # fmt: skip
    return parts


def _seen_width(half_width: float, half_depth: float, yaw: float) -> float:
    """Half the width a body of this width and depth shows turned by ``yaw``."""
    return math.hypot(half_width * math.cos(yaw), half_depth * math.sin(yaw))


def torso(person: Person, joints: Joints, camera: Camera, size) -> Part:
    body = person.body
    top = _seen_width(body.shoulder_width + 0.6 * body.arm_radius, body.torso_depth, joints.yaw)
    bottom = _seen_width(body.hip_width + body.leg_radius, body.torso_depth * 0.9, joints.yaw)
    start, end = camera.project(joints.neck), camera.project(joints.pelvis)
    region = band(start, end, top * camera.scale, bottom * camera.scale, size, False)
    label = TORSO[_facing(joints)]

    def paint(canvas: Canvas) -> None:
        if region is not None:
            _swap_uv(region)  # DensePose's torso chart: U across, V down
            canvas.paint(region, label, person.top.colour_of(region, camera.scale))

    return Part(float(joints.pelvis[2]) + _TIE["torso"], paint)


def _swap_uv(region: Region) -> None:
    region.u, region.v = region.v, region.u


def skirt(person: Person, joints: Joints, camera: Camera, size) -> Part:
    """A skirt (or a dress's) from the waist to above the knees, split into the two thighs' labels."""
    body = person.body
    waist = joints.pelvis + np.array([0.0, -0.03, 0.0])
    knees = (joints.knee[LEFT] + joints.knee[RIGHT]) / 2
    hem = joints.pelvis + 0.8 * (knees - joints.pelvis)
    spread = abs(joints.knee[LEFT][0] - joints.knee[RIGHT][0]) / 2
    top = _seen_width(body.hip_width + body.leg_radius * 1.1, body.torso_depth, joints.yaw)
    flare = max(top * 1.35, spread + body.leg_radius * 1.3)
    region = band(
        camera.project(waist), camera.project(hem), top * camera.scale, flare * camera.scale, size, False
    )
    facing = _facing(joints)
    # The person's left is on the viewer's right when they face the viewer, on the left when not.
    viewer_right = LEFT if facing == "front" else RIGHT

    def paint(canvas: Canvas) -> None:
        if region is None:
            return
        on_right = region.across < 0  # the band runs downwards: its normal points to the viewer's left
        labels = np.where(on_right, THIGH[facing, viewer_right], THIGH[facing, -viewer_right]).astype(
            np.uint8
        )
        canvas.paint(region, labels, person.bottom.colour_of(region, camera.scale))

    depth = max(_mid_depth(joints.hip[s], joints.knee[s], "skirt") for s in SIDES)
    return Part(depth, paint)


def head(person: Person, joints: Joints, camera: Camera, size) -> Part:
    """The head as a sphere: split into its right and left halves, with face and hair from the
    sphere point each pixel shows, turned into the body's frame."""
    radius = person.body.head_radius * camera.scale
    drawn = disk(camera.project(joints.head), radius, size)

    def paint(canvas: Canvas) -> None:
        if drawn is None:
            return
        region, (x, y, z) = drawn
        c, s = math.cos(joints.yaw), math.sin(joints.yaw)
        lx, lz = x * c - z * s, x * s + z * c  # the body's frame: lx to the person's left, lz forward
        region.u = (np.arctan2(lx, lz) + math.pi) / (2 * math.pi)  # wraps behind, where the halves meet
        region.v = (y + 1) / 2
        labels = np.where(lx < 0, HEAD[RIGHT], HEAD[LEFT]).astype(np.uint8)
        canvas.paint(region, labels, _head_colour(person, lx, y, lz, z))

    return Part(float(joints.head[2]) + _TIE["head"], paint)


def _head_colour(person: Person, lx, ly, lz, facing_viewer) -> np.ndarray:
    skin = np.float32(person.skin) * (0.7 + 0.3 * facing_viewer)[..., None]
    hairline = 0.45 if person.long_hair else 0.2
    hair = (ly < -0.3 + 0.25 * np.abs(lx)) | (
        (lz < -0.1) & (ly < hairline + (0.5 if person.long_hair else 0.0))
    )
    hair |= person.long_hair & (np.abs(lx) > 0.75) & (ly < 0.6)
    eyes = (np.hypot(np.abs(lx) - 0.36, ly + 0.02) < 0.13) & (lz > 0.5)
    mouth = (np.abs(lx) < 0.22) & (np.abs(ly - 0.48) < 0.06) & (lz > 0.5)
    rgb = np.where(hair[..., None], np.float32(person.hair) * (0.8 + 0.2 * facing_viewer)[..., None], skin)
    rgb = np.where(eyes[..., None], np.float32((35, 30, 35)), rgb)
    return np.where(mouth[..., None], np.float32((150, 60, 60)), rgb)
