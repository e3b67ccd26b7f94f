"""Small forged files that claim to be huge: the cheap uploads that once cost a lot."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from pose_extraction.pose_sequence import PoseSequence
from tests.helpers.poses import make_poses


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A 70-byte PNG whose header claims width x height pixels (a decompression bomb's calling card)."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 0, 0)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR checksum
    path.write_bytes(bytes(data))
    return path


def npy_claiming(shape: tuple[int, ...], dtype: str = "<f2", payload: bytes = b"\0" * 64) -> bytes:
    """A .npy whose header claims ``shape`` but which holds only ``payload``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
    return out.getvalue() + payload


def npz_claiming(path: Path, uv_shape: tuple[int, ...]) -> Path:
    """A 1.5 KB pose file whose ``uv`` header claims ``uv_shape`` (float16); other fields are real."""
    good = PoseSequence.from_uv(make_poses(2), fps=12.0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("uv.npy", npy_claiming(uv_shape))
        fields = {k: getattr(good, k) for k in ("labels", "boxes", "scores", "missing")}
        fields |= {"fps": np.float64(12), "format_version": np.int64(1), "source_size": np.array([64, 64])}
        for name, value in fields.items():
            buffer = io.BytesIO()
            np.save(buffer, value)
            z.writestr(f"{name}.npy", buffer.getvalue())
    return path


def npz_bomb(path: Path, side: int) -> Path:
    """A pose file of one side x side frame that is almost all zeros: about 1 MB deflated for
    every GB it unpacks to (uv float16 and labels: 5 bytes a pixel). Its headers are true and
    its labels show a body pixel, so only a bound on what a frame may unpack to refuses it
    before it is inflated. Written in slices, never held in memory."""
    good = PoseSequence.from_uv(make_poses(1), fps=12.0)
    big = {"uv": ((1, 2, side, side), "<f2"), "labels": ((1, side, side), "|u1")}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, (shape, dtype) in big.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(
                    f, {"descr": dtype, "fortran_order": False, "shape": shape}
                )
                left = int(np.prod(shape)) * np.dtype(dtype).itemsize
                f.write(b"\1" + b"\0" * (2**20 - 1))  # a body pixel (label 1) at the top left
                left -= 2**20
                zeros = b"\0" * 2**24
                while left > 0:
                    f.write(zeros[: min(left, len(zeros))])
                    left -= len(zeros)
        fields = {k: getattr(good, k) for k in ("boxes", "scores", "missing")}
        fields |= {
            "fps": np.float64(12),
            "format_version": np.int64(1),
            "source_size": np.array([side, side]),
        }
        for name, value in fields.items():
            buffer = io.BytesIO()
            np.save(buffer, value)
            z.writestr(f"{name}.npy", buffer.getvalue())
    return path
