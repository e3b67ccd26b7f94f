"""What a download holds: archives unpacked safely, checkpoints identified by their keys.

Names and layouts of the official downloads are not documented and not trusted: a download may be
one ``.pth``, a ``.zip`` of several (perhaps inside folders), or a folder. :func:`inventory` walks
it, unpacks archives (never outside their folder, within size limits, only checkpoint and data
files, no links, nothing executable) and says for every file what it is, so a missing piece can be
reported exactly ("found a UNet and a VAE, no adapter").
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dreampose.base.downloads import DiskFullError, disk_full_message

# Limits for unpacking: the largest official archive (a subject's three checkpoints) is about 4 GB.
MAX_UNPACKED_BYTES = 64 * 2**30
MAX_MEMBERS = 20_000
MAX_COMPRESSION_RATIO = 200  # more than this, for a member over 1 MB, is a zip bomb, not a checkpoint
MAX_NESTING = 3  # archives inside archives inside archives
# Only these are extracted; anything else (scripts, programs, documents) is skipped and reported.
KEPT_SUFFIXES = frozenset(
    (
        ".pth",
        ".pt",
        ".bin",
        ".ckpt",
        ".safetensors",
        ".npy",
        ".npz",
        ".json",
        ".txt",
        ".zip",
        ".tar",
        ".tgz",
        ".gz",
    )
)
CHECKPOINT_SUFFIXES = frozenset((".pth", ".pt", ".bin", ".ckpt"))
POSE_FRAME = re.compile(r"^frame_(\d+)_densepose\.npy$")
UNPACKED = ".unpacked"  # "<archive><UNPACKED>" is the folder an archive was unpacked into


class UnsafeArchiveError(ValueError):
    """An archive that would write outside its folder, holds links, or is implausibly large."""


@dataclass
class Found:
    """One file of a download and what it turned out to be."""

    path: Path
    shown: str  # its name as the user would see it: "custom-chkpts.zip/unet_epoch_499.pth"
    kind: str | None  # "unet", "adapter", "vae", "pose_frame", "other" or None (unusable)
    detail: str  # "UNet, 14 input channels", "not a PyTorch checkpoint (...)"

    @property
    def corrupt(self) -> bool:
        """A file that should be a checkpoint but does not load."""
        return self.kind is None and self.path.suffix.lower() in CHECKPOINT_SUFFIXES

    def line(self) -> str:
        return f"{self.shown}: {self.detail}"


# ----------------------------------------------------------------------------- archives
def is_torch_zip(path: Path) -> bool:
    """A ``torch.save`` file: a zip whose entries live under one folder with a ``data.pkl``."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in z.namelist()[:4096])
    except (zipfile.BadZipFile, OSError):
        return False


def is_archive(path: Path) -> bool:
    """A zip or tar archive to unpack (a ``torch.save`` zip is a checkpoint, not an archive)."""
    if zipfile.is_zipfile(path):
        return not is_torch_zip(path)
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


@dataclass(frozen=True)
class _Member:
    name: str  # the archive's own name for it
    target: PurePosixPath  # safe relative path
    size: int
    compressed: int


def unpack(archive: Path, into: Path) -> list[str]:
    """Unpack ``archive`` into the new folder ``into`` (atomically); return the names skipped.

    Every member is checked before anything is written: no absolute paths, no ``..``, no links
    or devices, at most :data:`MAX_MEMBERS` members and :data:`MAX_UNPACKED_BYTES`, a plausible
    compression ratio, and enough free disk space. Only :data:`KEPT_SUFFIXES` are extracted, as
    plain non-executable files.
    """
    members, skipped = _plan(archive)
    needed = sum(m.size for m in members)
    into.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(into.parent).free
    if needed > free:
        raise DiskFullError(disk_full_message(into.parent, archive.name, needed, free))
    tmp = into.with_name(f".{into.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for m in members:
                    with z.open(m.name) as src:
                        _write_member(src, tmp, m)
        else:
            with tarfile.open(archive) as t:
                for m in members:
                    src = t.extractfile(m.name)
                    if src is None:
                        raise UnsafeArchiveError(f"{archive.name}: {m.name!r} is not a regular file")
                    with src:
                        _write_member(src, tmp, m)
        shutil.rmtree(into, ignore_errors=True)
        os.replace(tmp, into)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return skipped


def _plan(archive: Path) -> tuple[list[_Member], list[str]]:
    entries: list[
        tuple[str, bool, bool, int, int]
    ] = []  # name, is_file, is_link_or_special, size, compressed
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                mode = info.external_attr >> 16
                special = stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR)  # 0: no type recorded
                entries.append(
                    (info.filename, not info.is_dir(), special, info.file_size, info.compress_size)
                )
    else:
        with tarfile.open(archive) as t:
            for info in t.getmembers():
                special = not (info.isfile() or info.isdir())
                entries.append((info.name, info.isfile(), special, info.size, info.size))
    if len(entries) > MAX_MEMBERS:
        raise UnsafeArchiveError(f"{archive.name} holds {len(entries)} entries, more than {MAX_MEMBERS}")
    members, skipped, total = [], [], 0
    for name, is_file, special, size, compressed in entries:
        target = _safe_name(name, archive)
        if special:
            raise UnsafeArchiveError(
                f"{archive.name} holds {name!r}, a link or device rather than a file; refusing to unpack it"
            )
        if not is_file or "__MACOSX" in target.parts or target.name.startswith("._"):
            continue
        if target.suffix.lower() not in KEPT_SUFFIXES:
            skipped.append(name)
            continue
        if size > 2**20 and compressed > 0 and size / compressed > MAX_COMPRESSION_RATIO:
            raise UnsafeArchiveError(
                f"{archive.name}: {name!r} expands {size / compressed:.0f} times, which no checkpoint does; "
                "refusing to unpack it"
            )
        total += size
        if total > MAX_UNPACKED_BYTES:
            raise UnsafeArchiveError(
                f"{archive.name} would unpack to more than {MAX_UNPACKED_BYTES / 2**30:.0f} GiB; refusing"
            )
        members.append(_Member(name, target, size, compressed))
    return members, skipped


def _safe_name(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", name) or "\0" in name:
        raise UnsafeArchiveError(
            f"{archive.name} holds {name!r}, which would be written outside its folder; refusing to unpack it"
        )
    return PurePosixPath(*[p for p in path.parts if p not in ("", ".")])


def _write_member(src, root: Path, member: _Member) -> None:
    target = root.joinpath(*member.target.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    # O_EXCL: a member listed twice cannot overwrite the first; 0o644: never executable.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            written += len(block)
            if written > member.size:  # the header lied about the size
                raise UnsafeArchiveError(f"{member.name!r} is larger than its archive entry says")
            out.write(block)


# ----------------------------------------------------------------------------- inventory
def inventory(
    root: Path, unpack_root: Path | None = None, *, identify: bool = True, depth: int = 0, shown: str = ""
) -> list[Found]:
    """Every usable file under ``root`` (a file or folder), archives unpacked, each identified.

    Archives inside the cache are unpacked next to themselves (``x.zip.unpacked``); archives
    elsewhere (a user's own files) into ``unpack_root``, so a user's folders are never written to.
    With ``identify=False`` files are only listed (model folders whose weights need no look).
    """
    root = Path(root)
    files = (
        [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and _visible(p, root))
    )
    found: list[Found] = []
    for path in files:
        name = f"{shown}{path.relative_to(root) if path != root else path.name}"
        if is_archive(path):
            if depth >= MAX_NESTING:
                raise UnsafeArchiveError(f"{name} is nested more than {MAX_NESTING} archives deep; refusing")
            target = _unpack_target(path, unpack_root)
            if not target.is_dir():
                skipped = unpack(path, target)
                found += [
                    Found(path, f"{name}/{s}", "other", "skipped (not a checkpoint or data file)")
                    for s in skipped
                ]
            found += inventory(target, unpack_root, identify=identify, depth=depth + 1, shown=f"{name}/")
        else:
            found.append(identify_file(path, name) if identify else Found(path, name, "other", "a file"))
    return found


def _visible(path: Path, root: Path) -> bool:
    """Skip hidden/temporary files and the folders archives were unpacked into (reached via them)."""
    parts = path.relative_to(root).parts
    return not any(p.startswith(".") or p.endswith(UNPACKED) or p == "__MACOSX" for p in parts) and not (
        path.name.endswith((".partial", ".part", ".partial.json"))
    )


def _unpack_target(archive: Path, unpack_root: Path | None) -> Path:
    if unpack_root is None:
        return archive.with_name(archive.name + UNPACKED)
    st = archive.stat()
    tag = hashlib.sha1(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return unpack_root / f"{archive.name}-{tag}{UNPACKED}"


def identify_file(path: Path, shown: str | None = None) -> Found:
    """What one (non-archive) file is, judged by its content; names are only shown, never trusted."""
    shown = shown or path.name
    if POSE_FRAME.match(path.name):
        return Found(path, shown, "pose_frame", "an official pose frame")
    if path.suffix.lower() in (".json", ".txt", ".png", ".jpg", ".jpeg", ".npz", ".npy", ".safetensors"):
        return Found(path, shown, "other", "not a checkpoint")
    from dreampose.model.convert import official_kind, read_official_checkpoint

    try:
        state = read_official_checkpoint(path)
    except ValueError as e:
        return Found(path, shown, None, f"not a PyTorch checkpoint ({_first_line(e)})")
    kind = official_kind(state)
    if kind is None:
        keys = ", ".join(list(state)[:3])
        return Found(path, shown, None, f"{len(state)} tensors but no DreamPose checkpoint (keys {keys}, …)")
    return Found(path, shown, kind, _describe(kind, state))


def _describe(kind: str, state: dict) -> str:
    if kind == "unet":
        channels = state["conv_in.weight"].shape[1]
        poses = f" ({(channels - 4) // 2} poses)" if channels > 4 and (channels - 4) % 2 == 0 else ""
        return f"a DreamPose UNet, {channels} input channels{poses}"
    if kind == "adapter":
        return f"a DreamPose adapter, vae2clip {tuple(state['vae2clip.weight'].shape)}"
    return "a finetuned VAE"


def _first_line(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text if len(text) < 160 else text[:157] + "…"


def pose_folders(found: list[Found]) -> dict[Path, int]:
    """Folders holding official pose frames, with their frame counts."""
    folders: dict[Path, int] = {}
    for f in found:
        if f.kind == "pose_frame":
            folders[f.path.parent] = folders.get(f.path.parent, 0) + 1
    return folders


def listing(found: list[Found], limit: int = 12) -> str:
    """'a.pth: a DreamPose UNet, …; b.txt: not a checkpoint' (long lists shortened)."""
    shown = [f.line() for f in found if f.kind != "pose_frame"]
    frames = sum(f.kind == "pose_frame" for f in found)
    if frames:
        shown.append(f"{frames} official pose frames")
    if not shown:
        return "nothing usable"
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return "; ".join(shown[:limit]) + more
