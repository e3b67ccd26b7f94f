"""Fitting poses onto the canvas and aligning them to the subject, with hand-computed boxes."""

from __future__ import annotations

import numpy as np
import pytest

from pose_extraction.placement import (
    align_to_subject,
    alignment_between,
    body_box,
    fit_sequence,
    place_on_canvas,
)
from pose_extraction.pose_sequence import PoseSequence


def _sequence(height: int, width: int, boxes: list[tuple[int, int, int, int]]) -> PoseSequence:
    """One frame per box (x0, y0, x1, y1): a body of part 2 with U rising left to right."""
    n = len(boxes)
    uv = np.zeros((n, 2, height, width), dtype=np.float32)
    labels = np.zeros((n, height, width), dtype=np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        labels[i, y0:y1, x0:x1] = 2
        uv[i, 0, y0:y1, x0:x1] = np.linspace(0.1, 0.9, x1 - x0)[None, :]
        uv[i, 1, y0:y1, x0:x1] = 0.5
    seq = PoseSequence.from_uv(uv, fps=10.0, labels=labels)
    return seq


def test_alignment_between_known_boxes():
    a = alignment_between(np.array([100, 100, 150, 300]), np.array([200, 240, 300, 600]))
    # height 200 -> 360: scale 1.8; centre x 125 -> 250; bottom 300 -> 600
    assert a.scale == pytest.approx(1.8)
    assert a.shift_x == pytest.approx(250 - 1.8 * 125)
    assert a.shift_y == pytest.approx(600 - 1.8 * 300)
    assert a.box(np.array([100, 100, 150, 300])).tolist() == pytest.approx([205, 240, 295, 600])


def test_align_maps_known_box_onto_known_box_and_keeps_motion():
    # frame 1: the dancer stepped 10 px right and jumped 20 px up
    seq = _sequence(640, 512, [(100, 100, 150, 300), (110, 80, 160, 280)])
    aligned, alignment = align_to_subject(seq, np.array([200, 240, 300, 600]))
    assert body_box(aligned.labels[0]).tolist() == pytest.approx([205, 240, 295, 600], abs=1)
    # the same transform on frame 1: motion scaled by 1.8 (18 px right, 36 px up), feet above ground
    assert body_box(aligned.labels[1]).tolist() == pytest.approx([223, 204, 313, 564], abs=1)
    assert aligned.boxes[0].tolist() == pytest.approx([205, 240, 295, 600], abs=1)
    assert aligned.uv.dtype == np.float16 and aligned.labels.dtype == np.uint8
    # nearest-neighbour: no U/V value that was not in the input, labels unchanged
    assert set(np.unique(aligned.uv[:, 1])) <= set(np.unique(seq.uv[:, 1]))
    assert set(np.unique(aligned.labels)) == {0, 2}
    assert alignment.scale == pytest.approx(1.8)


def test_shrinking_and_leaving_the_canvas():
    seq = _sequence(100, 80, [(20, 10, 60, 90)])
    aligned, _ = align_to_subject(seq, np.array([60, 50, 80, 90]))  # half the height
    assert body_box(aligned.labels[0]).tolist() == pytest.approx([60, 50, 80, 90], abs=1)
    off, _ = align_to_subject(seq, np.array([70, 50, 110, 130]))  # partly off the right/bottom
    box = body_box(off.labels[0])
    assert box[2] <= 80 and box[3] <= 100  # clipped to the canvas, no error


def test_fit_sequence_letterboxes_without_distortion():
    seq = _sequence(100, 200, [(20, 10, 60, 50)])  # landscape source, 40 x 40 body
    fitted = fit_sequence(seq, 640, 512)
    # scale min(640/100, 512/200) = 2.56; resized 256 high, centred: offset_y (640-256)//2 = 192
    expected = [20 * 2.56, 192 + 10 * 2.56, 60 * 2.56, 192 + 50 * 2.56]
    assert (fitted.height, fitted.width) == (640, 512)
    assert body_box(fitted.labels[0]).tolist() == pytest.approx(expected, abs=1.5)
    assert fitted.boxes[0].tolist() == pytest.approx(expected, abs=0.01)
    box = body_box(fitted.labels[0])
    assert (box[2] - box[0]) == pytest.approx(box[3] - box[1], abs=1)  # still square


def test_place_on_canvas_aligns_to_a_subject_of_another_size():
    driving = _sequence(640, 512, [(100, 100, 150, 300)])
    subject = _sequence(320, 256, [(100, 120, 150, 300)])  # half-size photo: x2 onto the canvas
    placed = place_on_canvas(driving, 640, 512, subject=subject)
    # subject body on the canvas: (200, 240, 300, 600); driving height 200 -> 360, centre 250
    assert body_box(placed.labels[0]).tolist() == pytest.approx([205, 240, 295, 600], abs=1.5)
    unaligned = place_on_canvas(driving, 640, 512, subject=subject, align=False)
    assert body_box(unaligned.labels[0]).tolist() == [100, 100, 150, 300]


def test_alignment_uses_the_first_detected_frame():
    seq = _sequence(200, 100, [(10, 10, 30, 50), (40, 100, 60, 180)])
    seq.missing[0] = True  # frame 0 was filled in: not a real sighting
    aligned, _ = align_to_subject(seq, np.array([40, 20, 60, 100]))
    assert body_box(aligned.labels[1]).tolist() == pytest.approx([40, 20, 60, 100], abs=1)


def test_flat_box_is_refused():
    with pytest.raises(ValueError, match="no height"):
        alignment_between(np.array([0, 5, 10, 5]), np.array([0, 0, 10, 10]))
