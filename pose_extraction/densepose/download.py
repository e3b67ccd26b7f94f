"""Fetching the official DensePose weights into the user's cache, on first use only (never at import)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

DEFAULT_WEIGHTS_URL = (
    "https://dl.fbaipublicfiles.com/densepose/densepose_rcnn_R_50_FPN_s1x/165712039/model_final_162be9.pkl"
)
# Known sha256 of downloadable files. The model zoo publishes none for model_final_162be9.pkl and we
# could not download it to measure one, so it is not listed: that file is verified by loading it and
# checking every key and shape against the model before it is moved into the cache.
KNOWN_SHA256: dict[str, str] = {}

CHUNK = 1 << 20


def cache_dir() -> Path:
    """``$DREAMPOSE_CACHE`` if set, else ``~/.cache/dreampose``."""
    root = os.environ.get("DREAMPOSE_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "dreampose"


def is_url(path_or_url: str | os.PathLike) -> bool:
    return isinstance(path_or_url, str) and urllib.parse.urlparse(path_or_url).scheme in ("http", "https")


def cached_path(url: str, root: Path | None = None) -> Path:
    """Where ``url`` lives in the cache: ``<cache>/densepose/<file name>``."""
    name = Path(urllib.parse.urlparse(url).path).name or "weights.pkl"
    return (root or cache_dir()) / "densepose" / name


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    verify: Callable[[Path], None] | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``destination`` atomically, with a progress bar.

    The bytes go to a temporary file next to ``destination``; it is checked (``sha256`` when known,
    then ``verify``, which should raise on a bad file) and only then renamed, so an interrupted or
    bad download never leaves a file that looks complete.
    """
    from tqdm.auto import tqdm

    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=destination.name + ".", suffix=".partial", dir=destination.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=destination.name, disable=not progress
            ) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
        if sha256 is not None and (actual := sha256_of(tmp)) != sha256.lower():
            raise ValueError(f"download of {url} is corrupted: sha256 {actual}, expected {sha256}")
        if verify is not None:
            verify(tmp)
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return destination


def resolve_weights(
    path_or_url: str | os.PathLike | None,
    *,
    verify: Callable[[Path], None] | None = None,
    progress: bool = True,
) -> Path:
    """A local weights path: the given file, or the cached download of a URL (default: the model zoo).

    Network access happens only here, and only when the URL is not cached yet.
    """
    if path_or_url is None:
        path_or_url = DEFAULT_WEIGHTS_URL
    if not is_url(path_or_url):
        path = Path(path_or_url).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"DensePose weights not found: {path} (give a .pkl or .safetensors file)")
        return path
    url = str(path_or_url)
    destination = cached_path(url)
    if destination.is_file():
        return destination
    try:
        return download(url, destination, sha256=KNOWN_SHA256.get(url), verify=verify, progress=progress)
    except OSError as e:
        raise OSError(
            f"could not download the DensePose weights from {url}: {e}. Download the file yourself and pass "
            f"its path (--densepose-weights PATH), or place it at {destination}."
        ) from e
