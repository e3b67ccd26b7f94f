"""Reading and writing DensePose weights: the official model-zoo ``.pkl`` and a safetensors copy.

The model-zoo file is a pickle of numpy arrays. A pickle can name any importable callable, so
``pickle.load`` on an untrusted file can run code. ``SafeUnpickler`` resolves only the handful of
names such a weights file needs; anything else (``os.system``, ``builtins.eval``, ...) is refused
before it is called.
"""

from __future__ import annotations

import codecs
import collections
import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dreampose.base.files import atomic_file

logger = logging.getLogger(__name__)

# The globals a numpy-array pickle refers to. ``_reconstruct`` and ``scalar`` are taken from numpy's
# own reducers, so the spellings of numpy 1.x (numpy.core) and 2.x (numpy._core) map to the same
# functions. ``_codecs.encode`` is how Python 3 pickles bytes at protocol 2 (numpy's array data).
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_SCALAR = np.float32(0).__reduce__()[0]
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,
}

# Keys that older detectron2 checkpoints may carry and that the model does not use: the pixel
# normalisation constants and the cell anchors (always recomputed, never read from a file).
IGNORED_KEYS = ("pixel_mean", "pixel_std")
IGNORED_PREFIXES = ("proposal_generator.anchor_generator.",)

SAFETENSORS_MAGIC_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """The weights file is not a usable densepose_rcnn_R_50_FPN_s1x checkpoint."""


class UnsafePickleError(CheckpointError):
    """The pickle asks for a callable outside the allow-list, so loading it could run code."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``ALLOWED_GLOBALS`` and refuses everything else."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to unpickle '{module}.{name}': a DensePose weights file contains only numpy arrays, "
                "and unpickling this name could run code. The file is not the official model-zoo checkpoint; "
                "do not load it with pickle."
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise UnsafePickleError("refused to unpickle a persistent id: DensePose weights pickles have none")


def load_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a model-zoo ``.pkl`` safely; returns {name: ndarray} (the ``"model"`` entry when present)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f, encoding="latin1").load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise CheckpointError(
            f"{path} is not a readable weights pickle (truncated or corrupted?): {e}"
        ) from e
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a dict of weights")
    arrays = {}
    for name, value in obj.items():
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            raise CheckpointError(
                f"{path}: entry {name!r} is a {type(value).__name__}"
                f"{' of dtype ' + str(value.dtype) if isinstance(value, np.ndarray) else ''}, not a numeric array"
            )
        arrays[str(name)] = value
    return arrays


def is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte little-endian header length and then '{'."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return 0 < header_len < SAFETENSORS_MAGIC_MAX_HEADER and head[8:9] == b"{"


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read weights from a ``.pkl`` or ``.safetensors`` file (told apart by content) as float32 tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DensePose weights not found: {path}")
    if is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except SafetensorError as e:
            raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from e
        return {k: v.float() for k, v in tensors.items()}
    arrays = load_pickle(path)
    # Copy: arrays from a pickle may be read-only, and torch wants writable memory.
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in arrays.items()}


def _describe(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def is_ignored_key(name: str) -> bool:
    return name in IGNORED_KEYS or name.startswith(IGNORED_PREFIXES)


def match_state_dict(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Check ``state_dict`` against the model's keys and shapes; return the entries to load.

    Known extra keys are dropped silently, other extra keys with a warning. A FrozenBN layer without
    running statistics gets mean 0 / variance 1, as detectron2 does for such (Caffe2-era) files.
    Missing or mis-shaped keys raise ``CheckpointError`` naming them.
    """
    expected = model.state_dict()
    result = {k: v for k, v in state_dict.items() if k in expected}
    for name, ref in expected.items():
        if name not in result and name.endswith((".norm.running_mean", ".norm.running_var")):
            result[name] = torch.zeros_like(ref) if name.endswith("mean") else torch.ones_like(ref)
    missing = [k for k in expected if k not in result]
    misshaped = [
        f"{k} (file {tuple(result[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected
        if k in result and result[k].shape != expected[k].shape
    ]
    unknown = [k for k in state_dict if k not in expected and not is_ignored_key(k)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_describe(missing)}")
    if misshaped:
        problems.append(f"{len(misshaped)} key(s) with the wrong shape: {_describe(misshaped)}")
    if problems:
        raise CheckpointError(
            "these weights do not fit densepose_rcnn_R_50_FPN_s1x: "
            + "; ".join(problems)
            + ". Use the model-zoo file model_final_162be9.pkl or a safetensors copy of it."
        )
    if unknown:
        logger.warning(
            "ignoring %d unknown key(s) in the DensePose weights: %s", len(unknown), _describe(unknown)
        )
    return result


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Write float32 weights to ``path`` atomically (temporary file in the same folder, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state_dict.items()}
    with atomic_file(path) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt", "model": "densepose_rcnn_R_50_FPN_s1x"})
    return path
