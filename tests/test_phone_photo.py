"""A phone photo stored sideways with an EXIF orientation tag is upright everywhere:
pose extraction, rendering and finetuning read it through the one photo loader."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from dreampose.cli import main
from dreampose.media.canvas import fit_image
from dreampose.media.images import read_image
from dreampose.training.finetune import prepare_subject
from pose_extraction.pose_sequence import PoseSequence
from tests.helpers.poses import SIZE, RedBoxExtractor, make_poses

UPRIGHT = (96, 64)  # height, width as the photo is meant to be seen
EXIF_ORIENTATION = 0x0112
ROTATE_90_CW_TO_DISPLAY = 6


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """phone.jpg: stored sideways with orientation 6, as phones save portrait photos;
    upright.png: the same picture as a viewer shows it (decoded by Pillow itself)."""
    root = tmp_path_factory.mktemp("phone")
    upright = np.full((*UPRIGHT, 3), 235, np.uint8)
    upright[20:90, 22:42] = (255, 0, 0)  # the "person" RedBoxExtractor finds
    upright[2:10, 2:20] = (0, 0, 255)  # a marker in the top-left corner
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # sideways, 64 tall
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW_TO_DISPLAY
    stored.save(root / "phone.jpg", quality=95, exif=exif)
    with Image.open(root / "phone.jpg") as img:
        ImageOps.exif_transpose(img).save(root / "upright.png")
    PoseSequence.from_uv(make_poses(3), fps=10.0).save(root / "dance.npz")
    assert main(["tiny-model", "--output", str(root / "model")]) == 0
    return root


def test_the_loader_turns_it_upright(photos):
    rgb = read_image(photos / "phone.jpg")
    assert rgb.shape == (*UPRIGHT, 3)
    assert rgb[5, 10, 2] > 200 and rgb[5, 10, 0] < 60, "the marker is back in the top-left corner"
    np.testing.assert_array_equal(rgb, read_image(photos / "upright.png"))


def test_extract_poses_finds_the_upright_body(photos, monkeypatch):
    import dreampose.cli.extract_poses as command

    monkeypatch.setattr(command, "_load_extractor", lambda args: RedBoxExtractor())
    assert main(["extract-poses", str(photos / "phone.jpg"), "--output", str(photos / "pose.npz")]) == 0
    pose = PoseSequence.load(photos / "pose.npz")
    assert (pose.height, pose.width) == UPRIGHT
    rows, cols = np.nonzero(pose.labels[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == pytest.approx((20, 89, 22, 41), abs=1)


def test_finetuning_pairs_it_with_its_own_pose(photos, monkeypatch):
    """Read sideways, the photo would not fit its pose ("not made from this photo")."""
    import dreampose.cli.extract_poses as command

    monkeypatch.setattr(command, "_load_extractor", lambda args: RedBoxExtractor())
    assert main(["extract-poses", str(photos / "phone.jpg"), "--output", str(photos / "own.npz")]) == 0
    subject = prepare_subject([str(photos / "phone.jpg")], str(photos / "own.npz"), SIZE, SIZE)
    np.testing.assert_array_equal(
        subject.images[0], fit_image(read_image(photos / "upright.png"), SIZE, SIZE)
    )
    body = subject.uv[0].any(axis=0)
    red = (subject.images[0][..., 0] > 200) & (subject.images[0][..., 1] < 60)
    assert (body & red).sum() > 0.8 * red.sum(), "the pose lies on the person in the photo"


def test_rendering_sees_what_a_viewer_sees(photos):
    common = ["--model", str(photos / "model"), "--poses", str(photos / "dance.npz"), "--steps", "2"]
    common += ["--height", str(SIZE), "--width", str(SIZE), "--frame", "1"]
    assert (
        main(["preview", *common, "--image", str(photos / "phone.jpg"), "--output", str(photos / "a.png")])
        == 0
    )
    assert (
        main(["preview", *common, "--image", str(photos / "upright.png"), "--output", str(photos / "b.png")])
        == 0
    )
    np.testing.assert_array_equal(
        np.asarray(Image.open(photos / "a.png")), np.asarray(Image.open(photos / "b.png"))
    )
