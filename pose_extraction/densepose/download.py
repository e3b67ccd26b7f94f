"""Fetching the official DensePose weights into the user's cache, on first use only (never at import).

The transfer itself (progress, resume, checks, atomic rename) is ``dreampose.base.downloads``, the project's
one download helper; this module only knows where the DensePose weights come from and go.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from dreampose.base.downloads import DownloadError, ProgressCallback, cache_dir, download, is_url, sha256_of

__all__ = [
    "DEFAULT_WEIGHTS_URL",
    "cache_dir",
    "cached_path",
    "download",
    "is_url",
    "resolve_weights",
    "sha256_of",
]

DEFAULT_WEIGHTS_URL = (
    "https://dl.fbaipublicfiles.com/densepose/densepose_rcnn_R_50_FPN_s1x/165712039/model_final_162be9.pkl"
)
# Known sha256 of downloadable files. The model zoo publishes none for model_final_162be9.pkl and we
# could not download it to measure one, so it is not listed: that file is verified by loading it and
# checking every key and shape against the model before it is moved into the cache.
KNOWN_SHA256: dict[str, str] = {}


def cached_path(url: str, root: Path | None = None) -> Path:
    """Where ``url`` lives in the cache: ``<cache>/densepose/<file name>``."""
    name = Path(urllib.parse.urlparse(url).path).name or "weights.pkl"
    return (root or cache_dir()) / "densepose" / name


def resolve_weights(
    path_or_url: str | os.PathLike | None,
    *,
    verify: Callable[[Path], None] | None = None,
    progress: bool | ProgressCallback | None = True,
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
        raise DownloadError(
            f"could not download the DensePose weights from {url}: {e}. Download the file yourself and pass "
            f"its path (--densepose-weights PATH), or place it at {destination}."
        ) from e
