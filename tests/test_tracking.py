"""Choosing and following one person, and filling the frames without them."""

from __future__ import annotations

import numpy as np
import pytest

from pose_extraction.tracking import (
    PersonTracker,
    box_iou,
    format_frame_list,
    nearest_found,
)
from tests.helpers.poses import person


def track_person(frames):
    """The tracked person of each frame, as extraction feeds the tracker frame by frame."""
    tracker = PersonTracker()
    return [tracker.update(people) for people in frames]


def test_box_iou_known_values():
    assert box_iou(np.array([0, 0, 10, 10]), np.array([0, 0, 10, 10])) == 1.0
    assert box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10])) == pytest.approx(50 / 150)
    assert box_iou(np.array([0, 0, 10, 10]), np.array([20, 20, 30, 30])) == 0.0


def test_keeps_the_same_person_when_a_higher_scoring_one_appears():
    dancer = [person((10 + 2 * t, 20, 30, 80), score=0.8) for t in range(6)]
    star = person((150, 20, 30, 80), score=0.99)  # walks in from frame 2, more confident
    frames = [[dancer[0]], [dancer[1]], [star, dancer[2]], [star, dancer[3]], [star, dancer[4]], [dancer[5]]]
    chosen = track_person(frames)
    assert [c.box_xywh for c in chosen] == [d.box_xywh for d in dancer]


def test_first_choice_is_the_highest_score_of_the_first_frame():
    low, high = person((0, 0, 20, 40), 0.6), person((100, 0, 20, 40), 0.95)
    chosen = track_person([[low, high], [person((0, 0, 20, 40), 0.99), person((101, 0, 20, 40), 0.5)]])
    assert chosen[0] is high
    assert chosen[1].box_xywh == (101, 0, 20, 40)  # followed by overlap, not by score


def test_someone_else_alone_in_the_frame_is_not_taken():
    tracker = PersonTracker()
    assert tracker.update([person((0, 0, 20, 40), 0.9)]) is not None
    assert tracker.update([person((200, 0, 20, 40), 0.99)]) is None  # a stranger elsewhere
    assert tracker.update([]) is None
    back = person((2, 0, 20, 40), 0.7)
    assert tracker.update([back]) is back  # our person again, near the last sighting


def test_frames_before_the_first_sighting_are_missing():
    p = person((0, 0, 20, 40), 0.9)
    assert track_person([[], [], [p]]) == [None, None, p]


def test_nearest_found_fills_gaps():
    found = [False, True, False, False, False, True, False, False]
    #        0      1     2      3      4      5     6      7
    # 0 -> 1 (only neighbour); 2 -> 1; 3 -> 1 (tie between 1 and 5: earlier wins); 4 -> 5; 6, 7 -> 5
    assert nearest_found(found).tolist() == [1, 1, 1, 1, 5, 5, 5, 5]
    assert nearest_found([True, True]).tolist() == [0, 1]


def test_nobody_at_all_is_an_error():
    with pytest.raises(ValueError, match="no person was detected in any of the 3 frames"):
        nearest_found([False, False, False])


def test_format_frame_list():
    assert format_frame_list([9, 3, 4, 5, 12, 13]) == "3-5, 9, 12-13"
    assert format_frame_list([]) == ""
