"""The pose file: round trip, and validation that names each broken field."""

from __future__ import annotations

import numpy as np
import pytest

from pose_extraction.pose_sequence import FORMAT_VERSION, PoseFileError, PoseSequence

N, H, W = 3, 10, 8


def _fields() -> dict:
    uv = np.zeros((N, 2, H, W), dtype=np.float16)
    uv[:, :, 2:8, 2:6] = np.float16(0.25)
    uv[1, 0, 3, 3] = np.float16(1.0)
    labels = np.zeros((N, H, W), dtype=np.uint8)
    labels[:, 2:8, 2:6] = 24
    return {
        "uv": uv,
        "labels": labels,
        "boxes": np.tile(np.array([2, 2, 6, 8], dtype=np.float32), (N, 1)),
        "scores": np.array([0.9, 0.8, 0.7], dtype=np.float32),
        "missing": np.array([False, True, False]),
        "fps": np.float64(12.5),
        "source_size": np.array([1080, 864], dtype=np.int64),
        "format_version": np.int64(FORMAT_VERSION),
    }


def test_round_trip(tmp_path):
    f = _fields()
    seq = PoseSequence(**{k: v for k, v in f.items() if k != "format_version"})
    path = seq.save(tmp_path / "sub" / "poses.npz")
    back = PoseSequence.load(path)
    for key in ("uv", "labels", "boxes", "scores", "missing"):
        np.testing.assert_array_equal(getattr(back, key), f[key])
        assert getattr(back, key).dtype == f[key].dtype
    assert back.fps == 12.5 and back.source_size == (1080, 864) and back.format_version == FORMAT_VERSION
    assert sorted(p.name for p in path.parent.iterdir()) == ["poses.npz"]  # no temporary left


def _write(tmp_path, **changes):
    fields = _fields()
    for key, value in changes.items():
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    path = tmp_path / "poses.npz"
    np.savez(path, **fields)
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"uv": np.zeros((N, 3, H, W), np.float16)}, r"uv must have shape \(N, 2, H, W\)"),
        ({"uv": np.zeros((N, 2, H, W), np.float32)}, "uv must be float16"),
        ({"uv": np.full((N, 2, H, W), 1.5, np.float16)}, r"uv values must lie in \[0, 1\]"),
        ({"uv": np.full((N, 2, H, W), np.nan, np.float16)}, "uv holds NaN"),
        ({"uv": np.zeros((0, 2, H, W), np.float16)}, "empty"),
        ({"labels": np.zeros((N, H, W), np.int32)}, "labels must be uint8"),
        ({"labels": np.zeros((N, H, W + 1), np.uint8)}, "labels must have shape"),
        ({"labels": np.full((N, H, W), 25, np.uint8)}, "part indices 0..24; found 25"),
        ({"boxes": np.zeros((N, 5), np.float32)}, "boxes must have shape"),
        ({"boxes": np.zeros((N, 4), np.float64)}, "boxes must be float32"),
        ({"scores": np.zeros(N + 1, np.float32)}, "scores must have shape"),
        ({"missing": np.zeros(N, np.uint8)}, "missing must be bool"),
        ({"missing": np.ones(N, bool)}, "no person was detected in any frame"),
        ({"fps": np.float64(0)}, "fps must be a positive number"),
        ({"format_version": np.int64(99)}, "format_version 99 is not supported"),
        ({"uv": None}, "missing uv"),
        ({"labels": None, "fps": None}, "missing labels, fps"),
    ],
)
def test_load_names_what_is_wrong(tmp_path, changes, message):
    path = _write(tmp_path, **changes)
    with pytest.raises(PoseFileError, match=message) as err:
        PoseSequence.load(path)
    assert "poses.npz" in str(err.value)


def test_not_a_pose_file(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"definitely not a zip")
    with pytest.raises(PoseFileError, match="not a readable .npz pose file"):
        PoseSequence.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "obj.npz", uv=np.array([{"x": 1}], dtype=object), labels=np.zeros(1))
    with pytest.raises(PoseFileError):  # object arrays are never unpickled
        PoseSequence.load(tmp_path / "obj.npz")
    with pytest.raises(PoseFileError, match="not found"):
        PoseSequence.load(tmp_path / "absent.npz")
    seq = PoseSequence.from_uv(_fields()["uv"])
    with pytest.raises(PoseFileError, match=r"end in \.npz"):
        seq.save(tmp_path / "poses.npy")


def test_select_keeps_fields():
    f = _fields()
    seq = PoseSequence(**{k: v for k, v in f.items() if k != "format_version"})
    part = seq.select([2, 0])
    assert len(part) == 2 and part.scores.tolist() == pytest.approx([0.7, 0.9])
    assert part.fps == 12.5 and part.source_size == (1080, 864)
