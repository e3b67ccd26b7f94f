"""Folders that cannot be written: read-only, or on a full disk, for the output-check tests.

Where the tests run as root (containers), chmod does not stop writes, so a small tmpfs is
mounted instead when the machine allows it; otherwise the test is skipped (read-only) or
the full disk is simulated by reporting no free space (full).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount_tmpfs(folder: Path, options: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, timeout=30
    )
    return result.returncode == 0


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """``folder``, existing and read-only (a read-only tmpfs as root; chmod 555 otherwise)."""
    folder.mkdir(parents=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    if not _mount_tmpfs(folder, "size=1m,ro"):
        pytest.skip("running as root and cannot mount a read-only tmpfs here")
    try:
        yield folder
    finally:
        _unmount(folder)


@contextlib.contextmanager
def full_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``folder`` on a full disk: a 1 MB tmpfs filled to the last byte when mounting is
    allowed; else a plain folder whose disk reports no free space."""
    folder.mkdir(parents=True)
    if _mount_tmpfs(folder, "size=1m"):
        try:
            with contextlib.suppress(OSError), open(folder / "filler", "wb") as f:  # closing may fail too
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
            with pytest.raises(OSError) as full, open(folder / "probe", "wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
            assert full.value.errno == errno.ENOSPC
            yield folder
        finally:
            _unmount(folder)
        return
    real_disk_usage = shutil.disk_usage

    def disk_usage(path):
        usage = real_disk_usage(path)
        inside = Path(path).resolve() == folder.resolve() or folder.resolve() in Path(path).resolve().parents
        return usage._replace(free=0) if inside else usage

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    yield folder
