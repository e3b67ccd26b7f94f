"""A 3D stick skeleton posed by joint angles and projected to 2D.

The body frame has its origin at the pelvis, ``x`` towards the person's left, ``y`` down and
``z`` forward. The world turns the body by ``yaw`` about the vertical axis and looks along
``-z`` (orthographic), so yaw 0 faces the viewer and yaw pi shows the back. Lengths are in
body heights; :func:`project` turns them into pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

RIGHT, LEFT = -1, 1  # the person's sides (body x is negative on the right)
SIDES = (RIGHT, LEFT)


@dataclass(frozen=True)
class Proportions:
    """Segment lengths and widths, in body heights."""

    head_radius: float = 0.065
    neck: float = 0.035
    torso: float = 0.30
    shoulder_width: float = 0.11  # half the width between the shoulders
    hip_width: float = 0.07  # half the width between the hip joints
    torso_depth: float = 0.06  # half the body's depth (what a side view shows)
    upper_arm: float = 0.17
    lower_arm: float = 0.15
    arm_radius: float = 0.022
    hand_radius: float = 0.026
    thigh: float = 0.235
    shin: float = 0.225
    leg_radius: float = 0.032
    foot: float = 0.07


@dataclass(frozen=True)
class Limb:
    """Joint angles of one arm or leg, in radians.

    ``abduct`` swings the limb out to the side (an arm at pi/2 points sideways), ``flex`` swings
    it forward, ``bend`` bends the elbow forward or the knee backward.
    """

    abduct: float = 0.0
    flex: float = 0.0
    bend: float = 0.0


def _rest_arms() -> dict[int, Limb]:
    return {side: Limb(abduct=0.12) for side in SIDES}


def _rest_legs() -> dict[int, Limb]:
    return {side: Limb(abduct=0.03) for side in SIDES}


@dataclass(frozen=True)
class Pose:
    """Where the body stands and how it is articulated."""

    yaw: float = 0.0  # turn about the vertical axis (0 faces the viewer)
    x: float = 0.0  # sideways shift, body heights
    bounce: float = 0.0  # vertical shift, body heights (negative is up)
    lean: float = 0.0  # sideways lean of the upper body, radians (positive to the person's left)
    arms: dict[int, Limb] = field(default_factory=_rest_arms)
    legs: dict[int, Limb] = field(default_factory=_rest_legs)


@dataclass(frozen=True)
class Joints:
    """3D joint positions in the world frame (body heights, pelvis of the rest pose at the origin)."""

    pelvis: np.ndarray
    neck: np.ndarray
    head: np.ndarray
    shoulder: dict[int, np.ndarray]
    elbow: dict[int, np.ndarray]
    wrist: dict[int, np.ndarray]
    hip: dict[int, np.ndarray]
    knee: dict[int, np.ndarray]
    ankle: dict[int, np.ndarray]
    toe: dict[int, np.ndarray]
    yaw: float


def limb_direction(side: int, abduct: float, flex: float) -> np.ndarray:
    """The unit direction of a limb segment hanging down, swung out by ``abduct`` and forward by ``flex``."""
    return np.array(
        [side * math.sin(abduct), math.cos(abduct) * math.cos(flex), math.cos(abduct) * math.sin(flex)]
    )


def _roll(angle: float) -> np.ndarray:
    """Rotation about the forward axis: positive tilts the top towards the person's left."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _turn(yaw: float) -> np.ndarray:
    """Body frame to world frame: a turn about the vertical axis."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def pose_joints(body: Proportions, pose: Pose) -> Joints:
    """Forward kinematics: every joint of ``body`` in ``pose``, in the world frame."""
    lean = _roll(pose.lean)
    neck = lean @ np.array([0.0, -body.torso, 0.0])
    head = neck + lean @ np.array([0.0, -(body.neck + body.head_radius), 0.0])
    shoulder, elbow, wrist, hip, knee, ankle, toe = ({} for _ in range(7))
    for side in SIDES:
        arm, leg = pose.arms[side], pose.legs[side]
        shoulder[side] = neck + lean @ np.array([side * body.shoulder_width, 0.02, 0.0])
        elbow[side] = shoulder[side] + body.upper_arm * (lean @ limb_direction(side, arm.abduct, arm.flex))
        forearm = limb_direction(side, arm.abduct, arm.flex + arm.bend)
        wrist[side] = elbow[side] + body.lower_arm * (lean @ forearm)
        hip[side] = np.array([side * body.hip_width, 0.0, 0.0])
        knee[side] = hip[side] + body.thigh * limb_direction(side, leg.abduct, leg.flex)
        ankle[side] = knee[side] + body.shin * limb_direction(side, leg.abduct, leg.flex - leg.bend)
        toe[side] = ankle[side] + body.foot * np.array([0.0, 0.25, 0.97])
    turn = _turn(pose.yaw)
    offset = np.array([pose.x, pose.bounce, 0.0])

    def world(p):
        return turn @ p + offset

    def each(d):
        return {s: world(p) for s, p in d.items()}

    return Joints(
        pelvis=world(np.zeros(3)),
        neck=world(neck),
        head=world(head),
        shoulder=each(shoulder),
        elbow=each(elbow),
        wrist=each(wrist),
        hip=each(hip),
        knee=each(knee),
        ankle=each(ankle),
        toe=each(toe),
        yaw=pose.yaw,
    )


@dataclass(frozen=True)
class Camera:
    """Orthographic view: body heights to pixels, the rest pose's pelvis at ``centre``."""

    centre: tuple[float, float]  # (x, y) pixels
    scale: float  # pixels per body height

    def project(self, point: np.ndarray) -> tuple[float, float]:
        return (self.centre[0] + self.scale * float(point[0]), self.centre[1] + self.scale * float(point[1]))


def faces_viewer(yaw: float) -> bool:
    """Whether the front of the body is seen (DensePose tells front and back parts apart)."""
    return math.cos(yaw) >= 0.0
