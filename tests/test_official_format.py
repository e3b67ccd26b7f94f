"""The official DreamPose layout: frame_N_densepose.npy per frame, folders and zips."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from pose_extraction.official import export_official, import_official
from pose_extraction.pose_sequence import PoseSequence


def _sequence(n: int = 3, height: int = 12, width: int = 10) -> PoseSequence:
    rng = np.random.default_rng(0)
    uv = np.zeros((n, 2, height, width), dtype=np.float32)
    for i in range(n):
        uv[i, :, 2 + i : 9, 3:7] = rng.uniform(0.05, 1.0, size=(2, 7 - i, 4))
    labels = (uv != 0).any(axis=1).astype(np.uint8) * 7
    return PoseSequence.from_uv(uv, fps=24.0, labels=labels)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_export_writes_the_official_files(tmp_path):
    seq = _sequence()
    out = export_official(seq, tmp_path / "poses")
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i}_densepose.npy" for i in range(3)]
    frame1 = np.load(out / "frame_1_densepose.npy")
    assert frame1.shape == (2, 12, 10) and frame1.dtype == np.float32
    assert frame1[:, 0, 0].tolist() == [0.0, 0.0]  # background is 0
    np.testing.assert_array_equal(frame1, seq.uv[1].astype(np.float32))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_round_trip_folder_and_zip(tmp_path):
    seq = _sequence()
    folder = export_official(seq, tmp_path / "poses")
    back = import_official(folder, fps=24.0)
    np.testing.assert_array_equal(back.uv, seq.uv)
    np.testing.assert_array_equal(back.labels, (seq.labels > 0).astype(np.uint8))  # parts become "body"
    assert back.fps == 24.0 and len(back) == 3 and not back.missing.any()

    with zipfile.ZipFile(tmp_path / "poses.zip", "w") as z:
        for i in range(3):  # reversed order and a subfolder, like a zipped folder from a file manager
            name = f"frame_{2 - i}_densepose.npy"
            z.write(folder / name, f"my_poses/{name}")
        z.writestr("__MACOSX/my_poses/._frame_0_densepose.npy", b"junk")
        z.writestr("my_poses/readme.txt", "hi")
    zipped = import_official(tmp_path / "poses.zip", fps=12)
    np.testing.assert_array_equal(zipped.uv, seq.uv)
    assert zipped.fps == 12


def test_numbering_is_numeric_not_alphabetical(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    for i in range(11):  # frame_10 sorts before frame_2 alphabetically
        a = np.zeros((2, 4, 4), dtype=np.float32)
        a[0, 0, 0] = (i + 1) / 16
        np.save(folder / f"frame_{i}_densepose.npy", a)
    seq = import_official(folder)
    assert [float(seq.uv[i, 0, 0, 0]) for i in range(11)] == [(i + 1) / 16 for i in range(11)]


def test_zip_slip_is_refused(tmp_path):
    good = np.zeros((2, 4, 4), dtype=np.float32)
    good[0, 1, 1] = 0.5
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("frame_0_densepose.npy", _npy(good))
        z.writestr("../../frame_1_densepose.npy", _npy(good))
    with pytest.raises(ValueError, match="unsafe path"):
        import_official(tmp_path / "evil.zip")
    assert not (tmp_path.parent / "frame_1_densepose.npy").exists()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((2, 4, 4), 2.0, dtype=np.float32), r"values in \[2, 2\].*\[0, 1\]"),
        (np.zeros((4, 4, 2), dtype=np.float32), r"shape \(2, H, W\)"),
        (np.zeros((2, 4, 4), dtype=np.uint8), "floating-point"),
        (np.full((2, 4, 4), np.nan, dtype=np.float32), "NaN"),
    ],
)
def test_bad_frames_are_named(tmp_path, array, message):
    np.save(tmp_path / "frame_0_densepose.npy", array)
    with pytest.raises(ValueError, match="frame_0_densepose.npy"):
        import_official(tmp_path)
    with pytest.raises(ValueError, match=message):
        import_official(tmp_path)


def test_gaps_sizes_pickles_and_empty_folders(tmp_path):
    a = np.zeros((2, 4, 4), dtype=np.float32)
    a[0, 0, 0] = 0.5
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no frame_N_densepose.npy"):
        import_official(tmp_path / "empty")
    gap = tmp_path / "gap"
    gap.mkdir()
    np.save(gap / "frame_0_densepose.npy", a)
    np.save(gap / "frame_2_densepose.npy", a)
    with pytest.raises(ValueError, match="missing frame_1_densepose.npy"):
        import_official(gap)
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    np.save(sizes / "frame_0_densepose.npy", a)
    np.save(sizes / "frame_1_densepose.npy", np.zeros((2, 5, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="frame_1_densepose.npy .* share one size"):
        import_official(sizes)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    np.save(pickled / "frame_0_densepose.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a readable numeric .npy"):
        import_official(pickled)


def test_export_refuses_to_clobber(tmp_path):
    seq = _sequence()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        export_official(seq, other)
    out = export_official(seq, tmp_path / "poses")
    with pytest.raises(ValueError, match="overwrite=True"):
        export_official(seq, out)
    export_official(seq.select([0]), out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["frame_0_densepose.npy"]
