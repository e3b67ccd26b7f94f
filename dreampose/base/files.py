"""Writing files so that nothing half-written ever looks finished.

Every output of the project (videos, pose files, checkpoints, models, downloads) is
written under a temporary name beside its target and renamed into place only when
complete: a crash, a full disk or Ctrl-C leaves either the old file or none, never a
truncated one that a later run would trust. This module is the one place that does it.

Only the standard library is imported: every layer may use this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Refuse to start a long job with less free space than this where it will write.
MIN_FREE_BYTES = 50 * 2**20


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so tools that look at the
    suffix still work); when the block succeeds, rename it to ``path``; when it fails,
    delete it. ``mode``: the permissions of the finished file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)  # mkstemp makes files private; outputs are meant to be used
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: str | os.PathLike) -> dict:
    """The JSON object in ``path``; {} when there is none, or it is unreadable or not an object
    (for small records a program writes and reads back, never for what a user must fix)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_file`); return the path."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; when the block succeeds, swap it in
    for ``path`` (replacing an existing folder); when it fails, delete it.

    The swap renames ``path`` to ``path.old`` first, so at every instant one complete
    folder exists under one of the two names; :func:`existing_dir` finds it after a crash.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        replace_dir(tmp, path)
    finally:
        remove(tmp)


def replace_dir(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename the finished folder ``source`` to ``target``, replacing it, such that one
    complete folder always exists: ``target`` goes to ``target.old`` first. For folders
    that several processes fill together (``atomic_dir`` serves everyone else)."""
    source, target = Path(source), Path(target)
    old = target.with_name(f"{target.name}.old")
    if target.exists():
        remove(old)
        os.replace(target, old)
    os.replace(source, target)
    remove(old)


def existing_dir(path: str | os.PathLike, marker: str) -> Path | None:
    """``path`` when it holds ``marker``, else ``path.old`` (a crash between the two
    renames of :func:`atomic_dir`) when that does, else None."""
    path = Path(path)
    for candidate in (path, path.with_name(f"{path.name}.old")):
        if (candidate / marker).is_file():
            return candidate
    return None


def remove(path: str | os.PathLike) -> None:
    """Delete a file or a folder tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def writable_folder(folder: str | os.PathLike, min_free_bytes: int = MIN_FREE_BYTES) -> Path:
    """Create ``folder`` if needed and prove it can take the output, before any long job.

    A probe file with real bytes (a 0-byte write succeeds on a full disk) catches read-only
    mounts and full disks that ``os.access`` misses; the free-space check catches a disk
    that would fill up halfway. Raises ValueError saying what to do.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder; choose a folder for the output")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as e:
        raise ValueError(f"cannot write to {folder} ({e.strerror or e}); choose another folder") from e
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        raise ValueError(
            f"only {free / 2**20:.0f} MB are free in {folder}; free some space (at least "
            f"{min_free_bytes / 2**20:.0f} MB) or choose another folder"
        )
    return folder


def writable_file(path: str | os.PathLike, suffixes: tuple[str, ...] = ()) -> Path:
    """Check before a long job that ``path`` can be written as a file: not a folder, the
    expected suffix, a writable folder with free space. Returns ``path`` as a Path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{path} is a folder; give a file name for the output (e.g. {path / 'out'}{''.join(suffixes[:1])})"
        )
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"the output {path.name} must end in {' or '.join(suffixes)}")
    writable_folder(path.parent if str(path.parent) else ".")
    return path
