"""Getting one source onto the disk: a URL, a Google Drive file or folder, or a Hugging Face snapshot.

Plain URLs go through ``dreampose.base.downloads`` (the project's one download helper). Google Drive goes
through gdown, which knows Drive's large-file confirmation page and folder listings; since gdown 6.4
it also reports progress through a callback, resumes ``.part`` files and can be cancelled, so we use
it as it is (no private API, no tqdm patching) and feed its ``(bytes, total)`` callback into the same
:class:`~dreampose.base.downloads.RateMeter` as our own downloads. Hugging Face repositories go through
``huggingface_hub`` into its usual cache (so a Stable Diffusion already there is reused); its per-file
progress comes from the ``tqdm_class`` hook of ``hf_hub_download`` when the installed version has one.

Every function raises :class:`~dreampose.base.downloads.DownloadError` subclasses with one sentence for the
user, or :class:`~dreampose.base.downloads.DownloadCancelled`.
"""

from __future__ import annotations

import errno
import inspect
import os
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from dreampose.base.downloads import (
    DiskFullError,
    DownloadCancelled,
    DownloadError,
    OfflineError,
    ProgressCallback,
    RateMeter,
    disk_full_message,
    download_file,
)
from dreampose.setup.sources import Source

GDOWN_RETRIES = 3


class DriveRefusedError(DownloadError):
    """Google Drive answered, but would not hand out the file (quota, permissions, changed page)."""


def fetch_url(
    url: str, folder: Path, what: str, progress: ProgressCallback | None, cancel: threading.Event | None
) -> Path:
    """A plain http(s) download into ``folder`` (named after the URL's last path part)."""
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    return download_file(url, folder / name, what=what, progress=progress, cancel=cancel).path


# ----------------------------------------------------------------------------- Google Drive
def fetch_drive_file(
    file: str,
    folder: Path,
    what: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    *,
    name: str | None = None,
    cookies_file: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download a Drive file (an id, or any URL gdown accepts) into ``folder``.

    The file keeps Drive's own name unless ``name`` is given. gdown writes ``<name>XXXXXXXX.part``
    beside it and picks it up again on the next call (resume).
    """
    import gdown

    meter = RateMeter(what, progress)
    started = False

    def on_chunk(done: int, total: int | None) -> None:
        nonlocal started
        if not started:
            meter.start(done, total)
            started = True
        meter.total = total
        meter.update(done)

    folder.mkdir(parents=True, exist_ok=True)
    target = str(folder / name) if name else str(folder) + os.sep
    where = {"url": file} if "://" in file else {"id": file}
    options = {"cookies_file": cookies_file} if cookies_file else {}
    try:
        path = gdown.download(
            **where,
            output=target,
            quiet=True,
            resume=True,
            progress=on_chunk,
            cancel=cancel,
            timeout=timeout,
            retries=GDOWN_RETRIES,
            **options,
        )
    except gdown.DownloadCancelled as e:
        raise DownloadCancelled("download cancelled; the partial file is kept and resumes next time") from e
    except gdown.exceptions.FileURLRetrievalError as e:
        raise drive_refused(e, what, file) from e
    except OSError as e:
        raise _os_error(e, folder, what) from e
    except Exception as e:
        raise _transfer_error(e, what, file) from e
    meter.finish()
    return Path(path)


def fetch_drive_folder(
    folder_id: str,
    folder: Path,
    what: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    *,
    timeout: float = 60.0,
) -> Path:
    """Download every file of a Drive folder into ``folder``, one by one (each resumable)."""
    import gdown

    try:
        listing = gdown.download_folder(id=folder_id, skip_download=True, quiet=True, timeout=timeout)
    except gdown.exceptions.FileURLRetrievalError as e:
        raise drive_refused(e, what, folder_id) from e
    except gdown.exceptions.DownloadError as e:
        raise drive_refused(e, what, folder_id) from e
    except OSError as e:
        raise _os_error(e, folder, what) from e
    except Exception as e:
        raise _transfer_error(e, what, folder_id) from e
    if not listing:
        raise DriveRefusedError(f"the Google Drive folder {folder_id} with {what} looks empty")
    root = folder.resolve()
    for i, item in enumerate(listing, 1):
        target = (folder / item.path).resolve()
        if root not in target.parents:
            raise DriveRefusedError(f"the Drive folder with {what} names a file {item.path!r} outside itself")
        if target.is_file():
            continue  # finished in an earlier run
        label = f"{what} ({i} of {len(listing)}: {Path(item.path).name})"
        fetch_drive_file(item.id, target.parent, label, progress, cancel, name=target.name, timeout=timeout)
    return folder


def drive_refused(error: BaseException, what: str, drive_id: str) -> DriveRefusedError:
    """One sentence for gdown's 'cannot retrieve the file' family of errors."""
    text = " ".join(str(error).split())
    if "too many users" in text.lower() or "quota" in text.lower():
        return DriveRefusedError(
            f"Google Drive is refusing to hand out {what} right now: its download quota for the file is "
            "used up (this resets within a day); try again later, or open the link in a browser"
        )
    return DriveRefusedError(
        f"Google Drive did not hand out {what} (gdown: {text[:200]}); the file may have moved or need "
        "other permissions, so open the link in a browser"
    )


def _transfer_error(e: BaseException, what: str, where: str) -> DownloadError:
    """gdown/requests errors: connection problems become OfflineError, the rest a DownloadError."""
    if _is_connection_problem(e) and "broke off" not in str(e) and "incomplete" not in str(e).lower():
        return OfflineError(
            f"could not reach Google Drive to download {what} ({_connection_reason(e)}); check the internet "
            "connection (or proxy) and run the same command again"
        )
    return DownloadError(
        f"the download of {what} broke off ({_short(e)}); run the same command again to resume it"
    )


def _os_error(e: OSError, folder: Path, what: str) -> DownloadError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(disk_full_message(folder, what))
    if isinstance(e, DownloadError):
        return e
    return DownloadError(f"could not save {what} in {folder} ({e.strerror or e})")


# ----------------------------------------------------------------------------- Hugging Face
def hub_files(source: Source, choose: Callable[[list[str]], list[str]]) -> list[str]:
    """The files of a hub repository that ``choose`` picks (one listing request); ``choose`` raises
    ``ValueError`` naming what the repository lacks."""
    from huggingface_hub import HfApi

    try:
        files = HfApi().list_repo_files(source.location, revision=source.revision)
    except Exception as e:
        raise _hub_error(e, source) from e
    try:
        return choose(files)
    except ValueError as e:
        raise DownloadError(f"{source.describe()} does not hold what DreamPose needs: {e}") from e


def fetch_hub(
    source: Source,
    choose: Callable[[list[str]], list[str]],
    what: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> Path:
    """The local snapshot folder of ``source`` holding the files ``choose`` picks from its listing.

    Files already in the Hugging Face cache are used without any request (so an offline machine
    that has them works); otherwise they are downloaded into it, resumably.
    """
    from huggingface_hub import hf_hub_download, snapshot_download

    try:  # everything cached already? (no network at all)
        folder = Path(snapshot_download(source.location, revision=source.revision, local_files_only=True))
        if choose_cached(folder, choose):
            return folder
    except Exception:
        pass
    files = hub_files(source, choose)
    meter = RateMeter(what, progress)
    state = {"done": 0}

    def on_bytes(n: int) -> None:
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled("download cancelled; the partial file is kept and resumes next time")
        state["done"] += n
        meter.update(state["done"])

    meter.start(0, _hub_total(source, files))
    extra = {"tqdm_class": _reporting_tqdm(on_bytes)} if _accepts(hf_hub_download, "tqdm_class") else {}
    folder = None
    for name in files:
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled("download cancelled; finished files are kept")
        try:
            path = Path(hf_hub_download(source.location, name, revision=source.revision, **extra))
        except DownloadCancelled:
            raise
        except Exception as e:
            raise _hub_error(e, source) from e
        folder = path.parents[len(Path(name).parts) - 1]
    meter.finish()
    assert folder is not None
    return folder


def choose_cached(folder: Path, choose: Callable[[list[str]], list[str]]) -> bool:
    """Whether ``folder`` already holds everything ``choose`` needs (it raises when something is missing)."""
    present = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    try:
        return bool(choose(present))
    except ValueError:
        return False


def _hub_total(source: Source, files: list[str]) -> int | None:
    try:
        from huggingface_hub import HfApi

        infos = HfApi().get_paths_info(source.location, files, revision=source.revision)
        return sum(int(getattr(i, "size", 0) or 0) for i in infos) or None
    except Exception:  # sizes are only for the progress bar
        return None


def _reporting_tqdm(on_bytes: Callable[[int], None]):
    """A silent tqdm class that forwards every update to ``on_bytes`` (hf_hub_download's hook)."""
    from tqdm.auto import tqdm

    class ReportingTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            on_bytes(int(n or 0))
            return super().update(n)

    return ReportingTqdm


def _accepts(function, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _hub_error(e: BaseException, source: Source) -> DownloadError:
    repo = source.location + (f" (revision {source.revision[:10]})" if source.revision else "")
    names = {type(x).__name__ for x in _chain(e)}
    if "OfflineModeIsEnabled" in names or os.environ.get("HF_HUB_OFFLINE", "").lower() in (
        "1",
        "true",
        "yes",
    ):
        return OfflineError(
            f"{repo} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; unset it on a "
            "machine with internet access and run the same command again"
        )
    if _is_connection_problem(e):
        return OfflineError(
            f"could not reach the Hugging Face Hub for {repo} ({_connection_reason(e)}); check the internet "
            "connection (or HF_ENDPOINT / proxy) and run the same command again"
        )
    if names & {"RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError", "GatedRepoError"}:
        return DownloadError(f"the Hugging Face Hub has no {repo} ({_short(e)})")
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(
            disk_full_message(Path(os.environ.get("HF_HOME", "~")).expanduser(), source.describe())
        )
    return DownloadError(
        f"downloading {repo} from the Hugging Face Hub failed ({_short(e)}); run the same command again"
    )


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _is_connection_problem(e: BaseException) -> bool:
    """True for 'could not connect at all' errors of urllib, requests, httpx and sockets."""
    import socket

    for x in _chain(e):
        if isinstance(x, (ConnectionRefusedError, socket.gaierror)):
            return True
        name = type(x).__name__
        if name in ("ConnectError", "ConnectTimeout", "NameResolutionError", "NewConnectionError"):
            return True
        if name == "ConnectionError" and "Max retries" in str(x):
            return True
    return False


def _connection_reason(e: BaseException) -> str:
    """The root cause of a connection failure in a few words."""
    import socket

    for x in _chain(e):
        if isinstance(x, socket.gaierror) or type(x).__name__ == "NameResolutionError":
            return "the server name could not be resolved"
        if isinstance(x, ConnectionRefusedError):
            return "the connection was refused"
        if isinstance(x, TimeoutError) or "Timeout" in type(x).__name__:
            return "the connection timed out"
    return _short(e)


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) < 200 else text[:197] + "…"
