"""Reading ``.npy`` arrays (alone, or inside ``.npz`` and official pose zips) without trusting them.

A ``.npy`` header states the array's shape and type, and ``numpy.load`` allocates that much
memory before it reads a byte of data: a 1 KB pose file whose header claims 391 GiB ends in
a MemoryError, and a 1 MB zip of zeros can unpack to gigabytes. Here every claim is checked
before anything is allocated or decompressed:

- the header's size must fit in the bytes its file or zip entry declares (``size``);
- what will be read must fit in a :class:`Budget` shared by all arrays of one input, sized
  by the caller to what it can use (the app: its pose-frame limit), and one frame in the
  budget's frame limit (the app: 8 MiB);
- only the leading ``max_rows`` entries (frames) are read when the caller needs no more,
  streamed from the file or zip entry;
- object arrays (pickles) are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

_CHUNK = 16 * 2**20  # bytes read at a time: the only temporary copy made while reading


class ArrayFileError(ValueError):
    """A ``.npy`` array that is unreadable, forged, or larger than allowed."""


def amount(nbytes: int) -> str:
    """``"391 GiB"``, ``"12 MB"``, ``"64 bytes"``: a byte count for messages."""
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.3g} GiB"
    if nbytes >= 1e6:
        return f"{nbytes / 1e6:.3g} MB"
    if nbytes >= 1e3:
        return f"{nbytes / 1e3:.3g} kB"
    return f"{nbytes} bytes"


class Budget:
    """How many bytes one input may still unpack into memory, shared by its arrays, and (with
    ``frame_limit``) how many one frame of it may take: a total alone lets one huge frame
    through, as long as the file has few of them."""

    def __init__(self, limit: int, source: str, frame_limit: int | None = None) -> None:
        self.limit = int(limit)
        self.left = int(limit)
        self.source = source
        self.frame_limit = frame_limit

    def check_frame(self, nbytes: int) -> None:
        """Refuse a frame that would unpack to more than ``frame_limit`` bytes (judged from the
        headers, before anything is inflated)."""
        if self.frame_limit is not None and nbytes > self.frame_limit:
            raise ArrayFileError(
                f"{self.source} would unpack to {amount(nbytes)} a frame, more than the "
                f"{self.frame_limit / 2**20:g} MiB a frame allowed; use smaller frames (poses at most "
                "1024 pixels on a side)"
            )

    def take(self, nbytes: int, what: str = "") -> None:
        """Use ``nbytes`` of the budget, or raise ArrayFileError naming the limit."""
        if nbytes > self.left:
            detail = f" ({what} needs {amount(nbytes)})" if what else ""
            raise ArrayFileError(
                f"{self.source} would unpack to more than the {amount(self.limit)} allowed{detail}; "
                "use a shorter sequence or smaller frames"
            )
        self.left -= nbytes


@dataclass(frozen=True)
class ArrayHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int  # bytes before the data

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def rows(self, max_rows: int | None) -> tuple[int, ...]:
        """The shape once cut to the first ``max_rows`` entries (C order only: rows are contiguous)."""
        if max_rows is None or not self.shape or self.shape[0] <= max_rows or self.fortran_order:
            return self.shape
        return (max_rows, *self.shape[1:])

    def bytes_for(self, max_rows: int | None) -> int:
        return math.prod(self.rows(max_rows)) * self.dtype.itemsize

    @property
    def row_bytes(self) -> int:
        """What one entry (frame) along the first axis takes."""
        return math.prod(self.shape[1:]) * self.dtype.itemsize if self.shape else self.nbytes


def read_header(stream: BinaryIO, name: str, size: int) -> ArrayHeader:
    """The header of the ``.npy`` at the start of ``stream`` (``size`` bytes as declared).

    Refuses object arrays and headers claiming more data than ``size`` can hold.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = fmt.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = fmt.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except (ValueError, EOFError, SyntaxError) as e:
        raise ArrayFileError(f"{name} is not a readable .npy array ({e})") from None
    if dtype.hasobject:
        raise ArrayFileError(
            f"{name} is not a readable numeric .npy array: it holds Python objects (a pickle), "
            "refused because loading them could run code"
        )
    header = ArrayHeader(tuple(int(s) for s in shape), dtype, bool(fortran_order), stream.tell())
    if header.nbytes > size - header.offset:
        raise ArrayFileError(
            f"{name} claims {header.shape} {dtype} values ({amount(header.nbytes)}) but holds only "
            f"{amount(max(size - header.offset, 0))}; the file is damaged or forged"
        )
    return header


def read_array(
    stream: BinaryIO, name: str, size: int, budget: Budget, max_rows: int | None = None, frame: bool = False
) -> np.ndarray:
    """The array in ``stream`` (a ``.npy`` of ``size`` bytes), its first ``max_rows`` rows when given.

    The header is checked (:func:`read_header`), also against the budget's frame limit when
    the array is one ``frame``, and the bytes to read are taken from ``budget`` before the
    array is allocated; the data is then streamed in chunks.
    """
    header = read_header(stream, name, size)
    if frame:
        budget.check_frame(header.nbytes)
    shape = header.rows(max_rows)
    budget.take(header.bytes_for(max_rows), name)
    array = np.empty(math.prod(shape), dtype=header.dtype)
    view = memoryview(array.view(np.uint8))
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled : filled + _CHUNK])
        if not got:
            raise ArrayFileError(f"{name} is cut short: the file is truncated or damaged")
        filled += got
    if header.fortran_order:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)
