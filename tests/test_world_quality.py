"""The scores that judge a model by what it renders (``dreampose.world.quality``), checked on
pictures whose answer is known: a held-out case's own targets, other frames, a grey figure."""

from __future__ import annotations

import numpy as np
import pytest

from dreampose.world.quality import (
    foreground,
    garment_colour_error,
    held_out_case,
    iou,
    l1,
    score,
    shuffled,
    ssim,
    temporal_error,
)
from dreampose.world.train_demo import training_person

SIZE = (128, 96)
FRAMES = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def case():
    return held_out_case(1, frames=6, size=SIZE)


def test_held_out_people_are_no_training_person_and_the_photo_shows_the_pose_it_has(case):
    seeds = {training_person(0, k) for k in range(150)}
    assert all(500 + k not in seeds for k in range(20))
    assert (foreground(case.photo, case.background) == (case.photo_pose.labels[0] > 0)).mean() > 0.98


def test_the_targets_score_perfectly_against_themselves(case):
    perfect = score(case, case.targets[FRAMES], FRAMES)
    assert perfect.iou == 1.0 and perfect.colour == 0.0 and perfect.l1 == 0.0 and perfect.temporal == 0.0
    assert perfect.ssim == pytest.approx(1.0)


def test_other_frames_score_lower_pose_following_and_move_otherwise(case):
    """What a model that ignored the poses would render: frames of another moment."""
    other_moments = case.targets[np.roll(np.arange(len(case.targets)), 1)]
    moved = score(case, other_moments[FRAMES], FRAMES)
    assert moved.iou < 0.9 and moved.l1 > 1.0 and moved.temporal > 0.5


def test_a_figure_in_the_right_place_but_grey_loses_only_the_colour_scores(case):
    target = case.targets[0]
    body = case.labels[0] > 0
    grey = target.copy()
    grey[body] = target[body].mean(axis=-1, keepdims=True).astype(np.uint8)
    assert iou(foreground(grey, case.background), foreground(target, case.background)) > 0.8
    assert (
        garment_colour_error(grey, target, case.labels[0])
        > 10
        > garment_colour_error(target, target, case.labels[0])
    )
    assert l1(grey, target) > 1.0 and ssim(grey, target) < 1.0


def test_flicker_counts_change_the_target_does_not_have(case):
    steady = case.targets[FRAMES]
    noisy = steady.astype(np.int16) + np.where(np.arange(len(FRAMES)) % 2, 20, -20)[:, None, None, None]
    assert temporal_error(steady, steady) == 0.0
    assert temporal_error(np.clip(noisy, 0, 255).astype(np.uint8), steady) > 15


def test_shuffled_poses_leave_no_frame_in_its_place(case):
    order = shuffled(case.poses)
    assert len(order) == len(case.poses)
    assert not any((a == b).all() for a, b in zip(order.labels, case.poses.labels, strict=True))


def test_a_backdrop_drawn_off_in_colour_costs_appearance_not_pose_following(case):
    """The silhouette is found against the render's own backdrop: a whole-picture colour shift
    leaves pose following intact (L1 counts it), a figure in another pose still scores low."""
    shift = np.array([-35, 0, -35], np.int16)
    tinted = np.clip(case.targets[FRAMES].astype(np.int16) + shift, 0, 255).astype(np.uint8)
    assert foreground(tinted[0], case.background).mean() > 0.9  # the known backdrop: all "person"
    scored = score(case, tinted, FRAMES)
    assert scored.iou > 0.95 and scored.l1 > 15
    other = np.clip(case.targets[np.roll(np.arange(len(case.targets)), 1)][FRAMES] + shift, 0, 255)
    assert score(case, other.astype(np.uint8), FRAMES).iou < 0.9
