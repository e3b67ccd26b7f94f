"""The drawn-people world: its pictures and their poses agree pixel for pixel, and its poses
go through everything downstream (loading, placement, pose windows, the official format)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreampose.model.pose_window import pose_condition, pose_window
from dreampose.world import MOTIONS, Pose, Scene, clip, render, render_clip
from dreampose.world.parts import BACK_PARTS, FRONT_PARTS, HEAD
from dreampose.world.people import Garment, Person
from dreampose.world.skeleton import LEFT, RIGHT
from pose_extraction.official import export_official, import_official
from pose_extraction.placement import place_on_canvas
from pose_extraction.pose_sequence import PoseSequence

SIZE = (128, 96)


def drawn_pixels(scene: Scene, rgb: np.ndarray) -> np.ndarray:
    """Pixels of a picture that are not its background, judged from the picture alone."""
    return (rgb != scene.background.image(*scene.size)).any(axis=2)


@pytest.mark.parametrize("seed, motion", list(enumerate(MOTIONS)))
def test_the_pose_labels_the_person_exactly_where_the_picture_shows_them(seed, motion):
    scene = Scene.from_seed(seed, SIZE)
    frames, poses = render_clip(scene, clip(motion, 5, 4.0))
    for rgb, labels in zip(frames, poses.labels, strict=True):
        drawn, body = drawn_pixels(scene, rgb), labels > 0
        assert body.sum() > 0.05 * body.size  # a person, not a speck
        assert not (drawn & ~body).any()  # nothing drawn outside the pose
        assert (
            drawn & body
        ).sum() >= 0.98 * body.sum()  # body pixels are drawn (a rare exact match with the background aside)


def test_uv_lie_in_range_on_the_body_and_change_smoothly_within_a_part():
    scene = Scene.from_seed(4, (256, 192))
    for pose in clip("side_steps", 4, 3.0).poses + clip("spin", 4, 3.0).poses:
        frame = render(scene, pose)
        body = frame.labels > 0
        assert (frame.uv[:, ~body] == 0).all()
        assert (frame.uv[:, body] >= 0.02).all() and (frame.uv[:, body] <= 1).all()
        for step in (np.s_[1:, :], np.s_[:, 1:]):  # down and across: U and V of one part hardly jump
            back = np.s_[:-1, :] if step == np.s_[1:, :] else np.s_[:, :-1]
            same = (frame.labels[step] == frame.labels[back]) & (frame.labels[step] > 0)
            jump = np.abs(frame.uv[(slice(None), *step)] - frame.uv[(slice(None), *back)]).max(axis=0)
            assert same.sum() > 1000 and (jump[same] > 0.2).mean() < 0.01, (jump[same] > 0.2).mean()


def test_a_spin_shows_the_back_parts_and_turns_the_head_halves_round():
    scene = Scene.from_seed(2, SIZE)
    poses = clip("spin", 12, 5.0).poses  # 2.4 s: one full turn
    front, back = render(scene, poses[0]), render(scene, poses[6])
    assert set(np.unique(front.labels)) & FRONT_PARTS and not set(np.unique(front.labels)) & BACK_PARTS
    assert set(np.unique(back.labels)) & BACK_PARTS and not set(np.unique(back.labels)) & FRONT_PARTS

    def columns(frame, part):
        return np.nonzero(frame.labels == part)[1].mean()

    # Facing the viewer the person's right half of the head is on the viewer's left; from behind, on the right.
    assert columns(front, HEAD[RIGHT]) < columns(front, HEAD[LEFT])
    assert columns(back, HEAD[RIGHT]) > columns(back, HEAD[LEFT])


def test_the_same_seed_draws_the_same_pixels_and_another_seed_someone_else():
    a, b = render(Scene.from_seed(7, SIZE), Pose()), render(Scene.from_seed(7, SIZE), Pose())
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.labels, b.labels) and np.array_equal(a.uv, b.uv)
    assert Person.from_seed(7) == Person.from_seed(7) != Person.from_seed(8)
    assert not np.array_equal(a.rgb, render(Scene.from_seed(8, SIZE), Pose()).rgb)
    assert clip("walk", 6, 8.0, seed=3) == clip("walk", 6, 8.0, seed=3) != clip("walk", 6, 8.0, seed=4)


def test_a_motion_is_the_same_movement_at_any_fps_and_it_moves():
    slow, fast = clip("sway", 6, 4.0), clip("sway", 12, 8.0)
    assert slow.poses == fast.poses[::2]
    scene = Scene.from_seed(1, SIZE)
    for motion in MOTIONS:
        _, poses = render_clip(scene, clip(motion, 4, 3.0))
        assert not np.array_equal(poses.labels[0], poses.labels[2]), motion
    with pytest.raises(ValueError, match="unknown motion 'moonwalk'; choose one of walk"):
        clip("moonwalk", 4, 8.0)


def test_every_driving_pose_has_its_ground_truth_frame():
    person = Scene.from_seed(5, SIZE)
    motion = clip("arm_raises", 6, 4.0)
    frames, poses = render_clip(person, motion)
    assert len(frames) == len(poses) == len(motion) == 6 and poses.fps == 4.0
    for i, pose in enumerate(motion.poses):
        truth = render(person, pose)
        assert np.array_equal(truth.rgb, frames[i]) and np.array_equal(truth.labels, poses.labels[i])
    # Garments change the picture, never the pose.
    redressed = Scene(
        person.person.wearing(top=Garment((10, 200, 10), (200, 10, 10), "checks")), person.background, SIZE
    )
    again = render(redressed, motion.poses[3])
    assert np.array_equal(again.labels, poses.labels[3]) and not np.array_equal(again.rgb, frames[3])


@pytest.mark.parametrize("pattern", ["stripes", "checks", "dots"])
def test_a_patterned_shirt_shows_both_of_its_colours(pattern):
    person = Person.from_seed(0).wearing(
        top=Garment((200, 20, 20), (20, 20, 200), pattern, 0.05), long_sleeves=True
    )
    frame = render(Scene(person, Scene.from_seed(0).background, (256, 192)), Pose())
    shirt = frame.rgb[frame.labels == 2].astype(int)
    reds, blues = (shirt[:, 0] > shirt[:, 2] + 60).mean(), (shirt[:, 2] > shirt[:, 0] + 60).mean()
    assert reds > 0.1 and blues > 0.1, (reds, blues)


def test_the_poses_go_through_loading_placement_pose_windows_and_the_official_format(tmp_path):
    scene = Scene.from_seed(3, SIZE)
    _, poses = render_clip(scene, clip("walk", 6, 8.0))
    loaded = PoseSequence.load(poses.save(tmp_path / "walk.npz"))
    assert np.array_equal(loaded.uv, poses.uv) and np.array_equal(loaded.labels, poses.labels)
    assert loaded.source_size == SIZE and not loaded.missing.any()

    photo = render(Scene.from_seed(9, (256, 192)), Pose())  # another person, another size
    from dreampose.world.scenes import pose_sequence

    subject = pose_sequence([photo], 30.0)
    placed = place_on_canvas(loaded, 64, 48, subject=subject)
    assert (placed.height, placed.width) == (64, 48) and (placed.labels > 0).any(axis=(1, 2)).all()

    condition = pose_condition(torch.from_numpy(placed.uv_float()), [0, 5], (8, 6))
    assert condition.shape == (2, 10, 8, 6) and pose_window(5, len(placed)) == [3, 4, 5, 5, 5]
    assert condition.abs().sum() > 0

    back = import_official(export_official(loaded, tmp_path / "official"), fps=8.0)
    assert np.array_equal(back.uv, loaded.uv) and np.array_equal(back.labels > 0, loaded.labels > 0)
