"""Downloading one URL into the user's cache: progress, resume, checks, atomic entry (the standard
library and ``files`` only).

The one download helper of the project: the DensePose weights (``pose_extraction.densepose.download``)
and the DreamPose model setup (``dreampose.setup``) both fetch through :func:`download_file`.

A download goes to ``<destination>.partial`` (plus a small ``.partial.json`` naming the URL and the
server's validator), so an interrupted transfer resumes with an HTTP range request, inside one call
(a few retries) or in the next run. The file is checked (SHA-256 when known, then the caller's
``verify``) and only then renamed to ``destination``: a file in the cache is always a complete, checked
one. Failures the user can act on are :class:`DownloadError` subclasses whose message is one sentence
saying what to do.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dreampose.base.files import write_text

CHUNK = 1 << 20
USER_AGENT = "dreampose-downloader"


def cache_dir() -> Path:
    """``$DREAMPOSE_CACHE`` if set, else ``~/.cache/dreampose``."""
    root = os.environ.get("DREAMPOSE_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "dreampose"


def is_url(path_or_url: str | os.PathLike) -> bool:
    return isinstance(path_or_url, str) and urllib.parse.urlparse(path_or_url).scheme in ("http", "https")


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- errors
class DownloadError(OSError):
    """A download failed for a reason the user can act on; the message says how."""

    def __str__(self) -> str:  # OSError would prefix "[Errno …]"; keep the sentence as written
        return str(self.args[0]) if self.args else "download failed"


class OfflineError(DownloadError):
    """The server could not be reached at all (no network, DNS failure, refused connection)."""


class DiskFullError(DownloadError):
    """Not enough free space for the file."""


class DownloadCancelled(Exception):
    """The caller asked to stop; the partial file is kept for the next attempt."""


class CorruptDownloadError(ValueError):
    """The bytes arrived but are not the expected file (checksum or content check failed)."""


# ----------------------------------------------------------------------------- progress
@dataclass(frozen=True)
class Progress:
    """One progress report: ``done`` of ``total`` bytes of ``what``, at ``rate`` bytes/s."""

    what: str
    done: int
    total: int | None
    rate: float = 0.0  # bytes per second over the last few seconds
    eta: float | None = None  # seconds left, when the total and a rate are known

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def describe(self) -> str:
        """'base model: 1.2 GB of 3.4 GB, 25 MB/s, about 1 min left'."""
        amount = format_bytes(self.done) + (f" of {format_bytes(self.total)}" if self.total else "")
        parts = [f"{self.what}: {amount}"]
        if self.rate > 0 and not self.finished:
            parts.append(f"{format_bytes(self.rate)}/s")
        if self.eta is not None and not self.finished:
            parts.append(f"about {format_duration(self.eta)} left")
        return ", ".join(parts)


ProgressCallback = Callable[[Progress], None]


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # unreachable; keeps type checkers calm


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min"``, ``"1 h 20 min"``: how long, for people."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


class RateMeter:
    """Turns byte counts into :class:`Progress` reports with a rate over a sliding window.

    ``update`` is cheap and may be called per chunk; the callback runs at most every
    ``interval`` seconds, and always for the last report (when ``done`` reaches ``total``
    or :meth:`finish` is called).
    """

    def __init__(
        self,
        what: str,
        callback: ProgressCallback | None,
        total: int | None = None,
        window: float = 8.0,
        interval: float = 0.25,
    ) -> None:
        self.what, self.callback, self.total = what, callback, total
        self.window, self.interval = window, interval
        self._samples: deque[tuple[float, int]] = deque()
        self._last_report = 0.0
        self.done = 0

    def start(self, done: int, total: int | None) -> None:
        """(Re)start counting at ``done`` bytes (a resumed transfer) of ``total``."""
        self.done, self.total = done, total
        self._samples.clear()
        self._samples.append((time.monotonic(), done))
        self._report(force=True)

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.popleft()
        self._report(force=self.total is not None and done >= self.total)

    def finish(self) -> None:
        self._report(force=True)

    def snapshot(self) -> Progress:
        rate = 0.0
        if len(self._samples) >= 2:
            (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
            if t1 > t0:
                rate = (b1 - b0) / (t1 - t0)
        eta = None
        if self.total is not None and rate > 0:
            eta = max(self.total - self.done, 0) / rate
        return Progress(self.what, self.done, self.total, rate, eta)

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.callback is None or (not force and now - self._last_report < self.interval):
            return
        self._last_report = now
        self.callback(self.snapshot())


def console_progress(stream=None, every: float = 5.0) -> ProgressCallback:
    """A callback that shows progress on the terminal: one rewritten line on a TTY, else a line
    every ``every`` seconds (logs stay short)."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    state = {"last": 0.0, "width": 0}

    def report(p: Progress) -> None:
        line = p.describe()
        if tty:
            stream.write("\r" + line.ljust(state["width"]))
            state["width"] = len(line)
            if p.finished:
                stream.write("\n")
                state["width"] = 0
        elif p.finished or time.monotonic() - state["last"] >= every:
            stream.write(line + "\n")
            state["last"] = time.monotonic()
        stream.flush()

    return report


def _as_callback(progress: bool | ProgressCallback | None) -> ProgressCallback | None:
    if progress is True:
        return console_progress()
    return progress or None


# ----------------------------------------------------------------------------- the download
@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    size: int


class _Incomplete(Exception):
    """The response ended before the announced size (a dropped connection)."""


def download_file(
    url: str,
    destination: str | os.PathLike,
    *,
    what: str | None = None,
    sha256: str | None = None,
    verify: Callable[[Path], None] | None = None,
    progress: bool | ProgressCallback | None = True,
    timeout: float = 60.0,
    retries: int = 3,
    cancel: threading.Event | None = None,
) -> Downloaded:
    """Download ``url`` to ``destination``; resume a ``.partial`` left by an earlier attempt.

    ``what`` names the file in progress reports and errors. ``sha256`` (when known) and then
    ``verify(path)`` (which should raise on a bad file) check the bytes before the rename; a file
    that fails them is deleted, so the next attempt starts clean. Transfers that break off midway are
    resumed up to ``retries`` times; setting ``cancel`` stops between chunks (``DownloadCancelled``)
    and keeps the partial file.
    """
    destination = Path(destination)
    what = what or destination.name
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    meta_path = destination.with_name(destination.name + ".partial.json")
    meter = RateMeter(what, _as_callback(progress))
    attempt = 0
    while True:
        _check_cancel(cancel)
        try:
            digest, size = _transfer(url, partial, meta_path, what, meter, timeout, cancel)
            break
        except (_Incomplete, ConnectionError, TimeoutError, http.client.HTTPException) as e:
            attempt += 1
            if attempt > retries:
                have = partial.stat().st_size if partial.exists() else 0
                raise DownloadError(
                    f"the download of {what} from {_host(url)} broke off after {format_bytes(have)} "
                    f"({_reason(e)}); run the same command again to resume it"
                ) from e
            _sleep(min(2.0**attempt, 10.0), cancel)
        except urllib.error.URLError as e:
            if isinstance(e.reason, (ConnectionResetError, TimeoutError)):
                attempt += 1
                if attempt <= retries:
                    _sleep(min(2.0**attempt, 10.0), cancel)
                    continue
            raise OfflineError(
                f"could not reach {_host(url)} to download {what} ({_reason(e)}); check the internet "
                "connection (or proxy) and run the same command again"
            ) from e
    meter.finish()
    if sha256 is not None and digest != sha256.lower():
        _discard(partial, meta_path)
        raise CorruptDownloadError(
            f"the download of {what} from {url} is corrupted: sha256 {digest}, expected {sha256.lower()}; "
            "it was deleted, run the same command again to fetch it anew"
        )
    if verify is not None:
        try:
            verify(partial)
        except BaseException:
            _discard(partial, meta_path)
            raise
    os.replace(partial, destination)
    meta_path.unlink(missing_ok=True)
    return Downloaded(destination, digest, size)


def download(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    verify: Callable[[Path], None] | None = None,
    progress: bool | ProgressCallback | None = True,
    timeout: float = 60.0,
) -> Path:
    """:func:`download_file`, returning just the path (the DensePose weights use this)."""
    return download_file(
        url, destination, sha256=sha256, verify=verify, progress=progress, timeout=timeout
    ).path


def _transfer(
    url, partial: Path, meta_path: Path, what, meter: RateMeter, timeout, cancel
) -> tuple[str, int]:
    """One HTTP request: resume ``partial`` if the server allows it, else start over."""
    meta = _read_meta(meta_path)
    if partial.exists() and meta.get("url") != url:
        _discard(partial, meta_path)  # a partial of another URL: never splice
        meta = {}
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        if meta.get("validator"):
            request.add_header("If-Range", meta["validator"])  # a changed file comes back whole (200)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the partial is not a prefix of this file: start over
            _discard(partial, meta_path)
            raise _Incomplete("the server refused to resume") from e
        raise _http_error(e, url, what) from e
    with response:
        total = _total_size(response, offset)
        if response.status != 206:
            offset = 0  # the server sent the whole file
        validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
        _write_meta(meta_path, {"url": url, "validator": validator, "total": total})
        if total is not None:
            _check_space(partial.parent, total - offset, what)
        hasher = hashlib.sha256()
        if offset:
            with open(partial, "rb") as f:
                for block in iter(lambda: f.read(CHUNK), b""):
                    hasher.update(block)
        meter.start(offset, total)
        done = offset
        try:
            with open(partial, "ab" if offset else "wb") as out:
                for block in iter(lambda: response.read(CHUNK), b""):
                    _check_cancel(cancel)
                    out.write(block)
                    hasher.update(block)
                    done += len(block)
                    meter.update(done)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(disk_full_message(partial.parent, what)) from e
            raise
        if total is not None and done < total:
            raise _Incomplete(f"got {done} of {total} bytes")
    return hasher.hexdigest(), done


def _total_size(response, offset: int) -> int | None:
    """The full file size from Content-Range (206) or Content-Length (200)."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        start, _, total = content_range.removeprefix("bytes ").partition("/")
        if not start.startswith(f"{offset}-"):
            raise _Incomplete(f"the server resumed at the wrong place ({content_range!r})")
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _http_error(e: urllib.error.HTTPError, url: str, what: str) -> DownloadError:
    if e.code in (403, 429):
        return DownloadError(
            f"{_host(url)} refused the download of {what} (HTTP {e.code}: {e.reason}), often a daily "
            "quota; try again later or download the file by hand"
        )
    return DownloadError(
        f"{_host(url)} answered HTTP {e.code} ({e.reason}) for {what} at {url}; check the URL"
    )


def _check_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DiskFullError(disk_full_message(folder, what, needed, free))


def disk_full_message(folder: Path, what: str, needed: int | None = None, free: int | None = None) -> str:
    """One sentence for a full disk; also used by callers that copy or unpack."""
    amount = f" ({format_bytes(needed)} needed, {format_bytes(free)} free)" if needed is not None else ""
    return (
        f"the disk holding {folder} is full{amount} while saving {what}; free some space or point "
        "DREAMPOSE_CACHE at a larger disk, then run the same command again"
    )


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_meta(path: Path, meta: dict) -> None:
    write_text(path, json.dumps(meta))


def _discard(partial: Path, meta_path: Path) -> None:
    partial.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled("download cancelled; the partial file is kept and resumes next time")


def _sleep(seconds: float, cancel: threading.Event | None) -> None:
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        _check_cancel(cancel)


def _host(url: str) -> str:
    return urllib.parse.urlparse(url).netloc or url


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or e
    return str(reason) or type(reason).__name__
