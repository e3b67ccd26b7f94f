"""Small file-system helpers shared by rendering, finetuning and training."""

from __future__ import annotations

import os
from pathlib import Path


def writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove it is writable, before any long job starts.

    Actually writing a probe file catches what ``os.access`` misses (read-only mounts,
    full disks, network shares), so a run cannot fail at its very end.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"cannot write to the output folder {folder} ({e.strerror}); choose another") from e
    return folder
