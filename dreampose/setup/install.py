"""Fetch, check and convert the official DreamPose models into the user's cache.

:func:`run_setup` is what `dreampose download` and the app's background setup run. It is idempotent:
parts whose result is already in the cache are skipped without any network access, so a second run
finishes at once. Layout of the cache (``$DREAMPOSE_CACHE``, default ``~/.cache/dreampose``)::

    official/base/                 the base-model download, as downloaded (archives unpacked beside)
    official/subject/, poses/      the demo subject's checkpoints and poses
    official/.incoming-<part>/     a download in progress (resumed by the next run)
    official/manifest.json         SHA-256 of every downloaded file, recorded on first success
    models/base/                   the converted base model (what `--model` takes)
    models/demo-subject/           the converted demo subject
    poses/demo-subject.npz         the demo subject's poses as a DreamPose pose file

Stable Diffusion 1.4 and CLIP go to the usual Hugging Face cache (``HF_HOME``), so copies already
there are reused. Each finished piece enters the cache by a rename, never half-written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dreampose.base.downloads import (
    CorruptDownloadError,
    DiskFullError,
    DownloadCancelled,
    DownloadError,
    Progress,
    cache_dir,
    disk_full_message,
    format_bytes,
    sha256_of,
)
from dreampose.base.files import write_text
from dreampose.setup.contents import (
    Found,
    UnsafeArchiveError,
    inventory,
    listing,
    pose_folders,
)
from dreampose.setup.fetch import (
    fetch_drive_file,
    fetch_drive_folder,
    fetch_hub,
    fetch_url,
)
from dreampose.setup.sources import PARTS, Source, source_for

MARKER = "dreampose_setup.json"  # written last into a converted model: its presence means "complete"
MODEL_FOLDERS = {"base": "base", "subject": "demo-subject"}
DEMO_POSES = Path("poses") / "demo-subject.npz"
DEMO_POSES_FPS = 30.0  # the official pose frames carry no frame rate
_MANIFEST_LOCK = threading.Lock()


class SetupError(Exception):
    """A download that does not hold what it should; the message lists what it holds and what to do."""


@dataclass(frozen=True)
class SetupOptions:
    """What to set up. ``sources`` maps part names (see ``sources.PARTS``) to overrides."""

    cache: Path | None = None  # default: $DREAMPOSE_CACHE or ~/.cache/dreampose
    base: bool = True
    demo_subject: bool = False
    convert: bool = True
    numerics: str = "official"
    verify: bool = False  # re-hash cached downloads against the manifest
    sources: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 60.0

    def root(self) -> Path:
        return Path(self.cache).expanduser() if self.cache else cache_dir()


@dataclass(frozen=True)
class Step:
    """Progress of the setup: step ``index`` of ``count`` is ``what``; ``transfer`` while bytes move."""

    index: int
    count: int
    what: str
    transfer: Progress | None = None


Reporter = Callable[[Step], None]


@dataclass
class SetupResult:
    cache: Path
    base_model: Path | None = None
    subject_model: Path | None = None
    demo_poses: Path | None = None
    downloads: dict[str, dict[str, Path]] = field(default_factory=dict)  # part -> kind -> file
    changed: bool = False  # False: everything asked for was in the cache already
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> Path | None:
        """The model to open: the base model, else the demo subject."""
        return self.base_model or self.subject_model


# ----------------------------------------------------------------------------- where things are
def model_dir(part: str, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "models" / MODEL_FOLDERS[part]


def demo_poses_path(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / DEMO_POSES


def is_complete_model(folder: Path) -> bool:
    return (folder / "model_index.json").is_file() and (folder / MARKER).is_file()


def installed_model(cache: Path | None = None) -> Path | None:
    """The converted base model in the cache, if `dreampose download` finished it."""
    folder = model_dir("base", cache)
    return folder if is_complete_model(folder) else None


def download_dir(part: str, source: Source, cache: Path) -> Path:
    """Where a finished download of ``source`` lives: ``official/<part>``, plus a tag for overrides."""
    name = part if source == PARTS[part].default else f"{part}-{_tag(source.key)}"
    return cache / "official" / name


# ----------------------------------------------------------------------------- the run
def run_setup(
    options: SetupOptions = SetupOptions(),
    report: Reporter | None = None,
    cancel: threading.Event | None = None,
) -> SetupResult:
    """Set up what ``options`` ask for; return where everything is.

    Raises ``SetupError`` (missing or wrong checkpoints), ``DownloadError`` subclasses (network,
    Drive quota, disk full), ``CorruptDownloadError``, ``UnsafeArchiveError`` or ``DownloadCancelled``,
    each with a message for the user.
    """
    root = options.root()
    sources = {part: source_for(part, options.sources.get(part)) for part in PARTS}
    run = _Run(options, root, sources, report or (lambda step: None), cancel)
    return run.execute()


class _Run:
    def __init__(self, options: SetupOptions, root: Path, sources: dict[str, Source], report, cancel) -> None:
        self.options, self.root, self.sources = options, root, sources
        self.report, self.cancel = report, cancel
        self.result = SetupResult(root)
        self.found: dict[str, dict[str, Found]] = {}
        self.folders: dict[str, Path] = {}
        self.step, self.count, self.current = 0, 0, ""

    # ------------------------------------------------------------------ plan
    def execute(self) -> SetupResult:
        plan = self._plan()
        self.count = len(plan)
        for what, action in plan:
            self._check_cancel()
            self.step, self.current = self.step + 1, what
            self.report(Step(self.step, self.count, what))
            action()
        self.result.changed = bool(plan)
        if self.options.base and self.options.convert:
            self.result.base_model = model_dir("base", self.root)
        if self.options.demo_subject:
            if self.options.convert:
                self.result.subject_model = model_dir("subject", self.root)
            self.result.demo_poses = demo_poses_path(self.root)
        self.result.downloads = {p: {k: f.path for k, f in kinds.items()} for p, kinds in self.found.items()}
        return self.result

    def _plan(self) -> list[tuple[str, Callable[[], None]]]:
        o, root = self.options, self.root
        parts = []  # checkpoint parts to fetch (and convert unless --no-convert)
        if o.base and (not is_complete_model(model_dir("base", root)) or not o.convert or o.verify):
            parts.append("base")
        if o.demo_subject and (
            not is_complete_model(model_dir("subject", root)) or not o.convert or o.verify
        ):
            parts.append("subject")
        plan: list[tuple[str, Callable[[], None]]] = []
        for part in parts:
            plan.append((f"getting {PARTS[part].label}", lambda p=part: self._checkpoints(p)))
        if o.demo_subject and (not demo_poses_path(root).is_file() or o.verify):
            plan.append((f"getting {PARTS['poses'].label}", self._poses))
        needs_conversion = o.convert and any(not is_complete_model(model_dir(p, root)) for p in parts)
        if needs_conversion:
            for part in ("stable_diffusion", "clip"):
                plan.append((f"getting {PARTS[part].label}", lambda p=part: self._folder_part(p)))
        for part in parts:
            if o.convert and not is_complete_model(model_dir(part, root)):
                plan.append((f"converting {PARTS[part].label}", lambda p=part: self._convert(p)))
        return plan

    # ------------------------------------------------------------------ steps
    def _checkpoints(self, part: str) -> None:
        found = self._obtain(part)
        chosen: dict[str, Found] = {}
        missing = []
        for kind in PARTS[part].needs:
            candidates = [f for f in found if f.kind == kind]
            if not candidates:
                missing.append(kind)
                continue
            chosen[kind] = max(candidates, key=lambda f: (_number_in(f.path.name), f.shown))
            if len(candidates) > 1:
                others = ", ".join(f.shown for f in candidates if f is not chosen[kind])
                self.result.notes.append(
                    f"{PARTS[part].label}: several {kind} checkpoints; using {chosen[kind].shown} "
                    f"(highest number in its name), not {others}"
                )
        if missing:
            from dreampose.model.convert import SIGNATURES

            keys = ", ".join(SIGNATURES[k] for k in missing)
            raise SetupError(
                f"{PARTS[part].label} from {self.sources[part].describe()} is incomplete: it holds "
                f"{listing(found)}; no {' or '.join(missing)} checkpoint (with {keys}) is among them. "
                + _manual_route(part, self.sources[part])
            )
        self.found[part] = chosen

    def _poses(self) -> None:
        from pose_extraction.official import import_official

        found = self._obtain("poses")
        folders = pose_folders(found)
        if not folders:
            raise SetupError(
                f"{PARTS['poses'].label} from {self.sources['poses'].describe()} hold no frame_N_densepose.npy "
                f"files; found {listing(found)}. " + _manual_route("poses", self.sources["poses"])
            )
        folder = max(folders, key=folders.get)  # the longest sequence
        if len(folders) > 1:
            self.result.notes.append(
                f"several pose sequences found; using {folder.name} ({folders[folder]} frames)"
            )
        try:
            poses = import_official(folder, fps=DEMO_POSES_FPS)
        except ValueError as e:
            raise SetupError(f"{PARTS['poses'].label} could not be read: {e}") from e
        poses.save(demo_poses_path(self.root))  # atomic

    def _folder_part(self, part: str) -> None:
        """Stable Diffusion or CLIP: a folder in the hub layout (from the hub, a folder or an archive)."""
        source, choose = self.sources[part], CHOOSERS[part]
        if source.kind == "hub":
            try:
                self.folders[part] = fetch_hub(source, choose, PARTS[part].label, self._progress, self.cancel)
            except (DownloadError, ValueError) as e:
                raise _with_manual_route(e, part, source) from e
            return
        found = self._obtain(part, identify=False)
        folder = model_folder_in(found, choose)
        if folder is None:
            try:
                choose([f.shown for f in found])
                problem = "its files are spread over several folders"
            except ValueError as e:
                problem = str(e)
            raise SetupError(
                f"{PARTS[part].label} from {source.describe()} is not a model folder ({problem}). "
                + _manual_route(part, source)
            )
        self.folders[part] = folder

    def _convert(self, part: str) -> None:
        from dreampose.model.convert import convert_official

        files = self.found[part]
        target = model_dir(part, self.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        needed = sum(f.path.stat().st_size for f in files.values()) + _folder_size(
            self.folders["stable_diffusion"]
        )
        free = shutil.disk_usage(target.parent).free
        if needed > free:
            raise DiskFullError(disk_full_message(target.parent, PARTS[part].label, needed, free))
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            pipe = convert_official(
                str(self.folders["stable_diffusion"]),
                str(self.folders["clip"]),
                files["unet"].path,
                files["adapter"].path,
                files["vae"].path if "vae" in files else None,
                numerics=self.options.numerics,
            )
            self._check_cancel()
            pipe.save_pretrained(tmp, safe_serialization=True)
            record = {
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "numerics": self.options.numerics,
                "checkpoints": {kind: f.shown for kind, f in files.items()},
                "sources": {p: self.sources[p].key for p in (part, "stable_diffusion", "clip")},
            }
            (tmp / MARKER).write_text(json.dumps(record, indent=2))
            shutil.rmtree(target, ignore_errors=True)  # an unfinished earlier attempt
            os.replace(tmp, target)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(disk_full_message(target.parent, PARTS[part].label)) from e
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # ------------------------------------------------------------------ obtaining a part
    def _obtain(self, part: str, identify: bool = True) -> list[Found]:
        """The part's files on disk, checked, and what each holds."""
        source = self.sources[part]
        try:
            if source.kind == "path":
                found = inventory(
                    Path(source.location), self.root / "official" / "unpacked", identify=identify
                )
                _refuse_corrupt(found, part, source, delete=False)
                return found
            return self._obtain_remote(part, source, identify)
        except (DownloadError, CorruptDownloadError, UnsafeArchiveError) as e:
            raise _with_manual_route(e, part, source) from e

    def _obtain_remote(self, part: str, source: Source, identify: bool) -> list[Found]:
        done = download_dir(part, source, self.root)
        manifest = Manifest(self.root / "official" / "manifest.json")
        if done.is_dir():
            converting = self.options.convert and part in MODEL_FOLDERS
            if self.options.verify or (converting and not is_complete_model(model_dir(part, self.root))):
                self.report(Step(self.step, self.count, f"checking the cached {PARTS[part].label}"))
                changed = manifest.compare(source, _hashes(done))
                if changed:
                    raise CorruptDownloadError(
                        f"the cached {', '.join(changed)} in {done} changed since it was downloaded (its SHA-256 "
                        f"differs from the one recorded in {manifest.path}); delete {done} and run again"
                    )
            return inventory(done, identify=identify)
        incoming = done.with_name(f".incoming-{done.name}")
        label = PARTS[part].label
        if source.kind == "url":
            fetch_url(source.location, incoming, label, self._progress, self.cancel)
        elif source.kind == "drive_file":
            fetch_drive_file(source.location, incoming, label, self._progress, self.cancel)
        elif source.kind == "drive_folder":
            fetch_drive_folder(source.location, incoming, label, self._progress, self.cancel)
        else:
            raise ValueError(f"cannot download a {source.kind} source for {label}")
        self._check_cancel()
        self.report(Step(self.step, self.count, f"checking {label}"))
        hashes = _hashes(incoming)
        changed = manifest.compare(source, hashes)
        if changed:
            for name in changed:
                (incoming / name).unlink(missing_ok=True)
            raise CorruptDownloadError(
                f"{', '.join(changed)} downloaded from {source.describe()} differs from the copy first downloaded "
                f"(SHA-256 recorded in {manifest.path}); it was deleted, run again to fetch it anew (or delete the "
                "manifest if the source was updated on purpose)"
            )
        try:
            found = inventory(incoming, identify=identify)
        except UnsafeArchiveError:
            shutil.rmtree(incoming, ignore_errors=True)  # never keep a hostile archive in the cache
            raise
        _refuse_corrupt(found, part, source, delete=True)
        done.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming, done)
        manifest.record(source, hashes)
        for f in found:
            f.path = done / f.path.relative_to(incoming)
        return found

    # ------------------------------------------------------------------ helpers
    def _progress(self, transfer: Progress) -> None:
        self._check_cancel()
        self.report(Step(self.step, self.count, self.current, transfer))

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(
                "the setup was cancelled; finished downloads are kept and resume next time"
            )


# ----------------------------------------------------------------------------- checks
def _refuse_corrupt(found: list[Found], part: str, source: Source, delete: bool) -> None:
    bad = [f for f in found if f.corrupt]
    if not bad:
        return
    if delete:
        for f in bad:
            f.path.unlink(missing_ok=True)
    action = "they were deleted, run the same command again to fetch them anew" if delete else "replace them"
    raise CorruptDownloadError(
        f"{PARTS[part].label} from {source.describe()}: {'; '.join(f.line() for f in bad)}; the file(s) are "
        f"damaged or incomplete, {action}"
    )


class Manifest:
    """SHA-256 of every downloaded file, recorded on its first successful check, compared later."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def compare(self, source: Source, hashes: dict[str, tuple[str, int]]) -> list[str]:
        """Names whose SHA-256 differs from the one recorded for this source (none recorded: [])."""
        recorded = self._load().get("sources", {}).get(source.key, {}).get("files", {})
        return sorted(n for n, (sha, _) in hashes.items() if n in recorded and recorded[n]["sha256"] != sha)

    def record(self, source: Source, hashes: dict[str, tuple[str, int]]) -> None:
        with _MANIFEST_LOCK:
            data = self._load()
            entry = data.setdefault("sources", {}).setdefault(source.key, {"files": {}})
            for name, (sha, size) in hashes.items():
                entry["files"].setdefault(
                    name, {"sha256": sha, "size": size, "recorded": time.strftime("%Y-%m-%d")}
                )
            data["format"] = 1
            write_text(self.path, json.dumps(data, indent=2, sort_keys=True))


def _hashes(folder: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and size of each downloaded file (not the unpacked copies, not partial files)."""
    from dreampose.setup.contents import _visible

    return {
        p.relative_to(folder).as_posix(): (sha256_of(p), p.stat().st_size)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and _visible(p, folder)
    }


# ----------------------------------------------------------------------------- hub layouts
def _first_present(files: set[str], candidates: tuple[str, ...], what: str) -> str:
    for name in candidates:
        if name in files:
            return name
    raise ValueError(f"no {what} weights ({' or '.join(candidates)})")


def stable_diffusion_files(files: list[str]) -> list[str]:
    """What converting an official checkpoint needs of a Stable Diffusion 1.x repository: the
    VAE, the scheduler and the UNet's config, safetensors when the repository has them. Not the
    UNet's weights (the official checkpoint replaces every one of them: 3.4 GB saved), the text
    encoder, the safety checker or a single-file .ckpt."""
    present = set(files)
    wanted = ["scheduler/scheduler_config.json", "vae/config.json", "unet/config.json"]
    missing = [w for w in wanted if w not in present]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    stem = "vae/diffusion_pytorch_model"
    return [*wanted, _first_present(present, (f"{stem}.safetensors", f"{stem}.bin"), "vae")]


def clip_files(files: list[str]) -> list[str]:
    """What DreamPose needs of a CLIP repository: the vision tower's config, weights and processor."""
    present = set(files)
    wanted = ["config.json", "preprocessor_config.json"]
    missing = [w for w in wanted if w not in present]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    return [*wanted, _first_present(present, ("model.safetensors", "pytorch_model.bin"), "CLIP")]


CHOOSERS = {"stable_diffusion": stable_diffusion_files, "clip": clip_files}


def model_folder_in(found: list[Found], choose: Callable[[list[str]], list[str]]) -> Path | None:
    """The shallowest folder among ``found`` that holds everything ``choose`` needs (a download may
    wrap the model folder in one or two more), judged from the listed files only."""
    candidates = sorted({parent for f in found for parent in f.path.parents[:3]}, key=lambda p: len(p.parts))
    for folder in candidates:
        inside = [f.path.relative_to(folder).as_posix() for f in found if folder in f.path.parents]
        try:
            choose(inside)
            return folder
        except ValueError:
            continue
    return None


# ----------------------------------------------------------------------------- messages
def _manual_route(part: str, source: Source) -> str:
    flag = PARTS[part].flag
    if part == "base":
        return (
            f"By hand: download {source.browser_url()} in a browser, then run `dreampose download {flag} "
            "FILE_OR_FOLDER`, or `dreampose convert --unet unet_epoch_20.pth --adapter adapter_20.pth "
            "--output models/dreampose`."
        )
    if part == "subject":
        return (
            f"By hand: download {source.browser_url()} in a browser, then run `dreampose download --demo-subject "
            f"{flag} FOLDER`, or `dreampose convert --unet unet_epoch_499.pth --adapter adapter_499.pth "
            "--vae vae_1499.pth --output models/demo-subject`."
        )
    if part == "poses":
        return (
            f"By hand: download {source.browser_url()} in a browser, then run `dreampose download --demo-subject "
            f"{flag} FOLDER_OR_ZIP`."
        )
    revision = f" --revision {source.revision}" if source.revision else ""
    repo = source.location if source.kind == "hub" else PARTS[part].default.location
    return (
        f"By hand: on a machine with access, run `hf download {repo}{revision}` (or copy the model folder), "
        f"then pass the folder with `dreampose download {flag} FOLDER`."
    )


def _with_manual_route(error: BaseException, part: str, source: Source) -> BaseException:
    """The same kind of error, with how to do this part by hand appended (not for a full disk)."""
    if isinstance(error, (DiskFullError, DownloadCancelled)) or "By hand:" in str(error):
        return error
    text = str(error).rstrip(".")
    try:
        return type(error)(f"{text}. {_manual_route(part, source)}")
    except TypeError:  # an exception type with another signature: keep it as it is
        return error


def _number_in(name: str) -> int:
    digits = "".join(c if c.isdigit() else " " for c in name).split()
    return int(digits[-1]) if digits else -1


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _tag(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def describe_result(result: SetupResult) -> list[str]:
    """Lines for the terminal: where each finished piece is."""
    lines = [f"DreamPose cache: {result.cache}"]
    if result.base_model:
        lines.append(f"  base model (UBC Fashion):  {result.base_model}")
    if result.subject_model:
        lines.append(f"  demo subject:              {result.subject_model}")
    if result.demo_poses:
        lines.append(f"  demo subject's poses:      {result.demo_poses}")
    for part, kinds in result.downloads.items():
        for kind, path in kinds.items():
            lines.append(f"  official {part} {kind}: {path} ({format_bytes(path.stat().st_size)})")
    lines += [f"  note: {n}" for n in result.notes]
    return lines
