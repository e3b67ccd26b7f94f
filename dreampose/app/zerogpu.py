"""Hugging Face ZeroGPU: a Space borrows a GPU only while a decorated function runs."""

from __future__ import annotations

import contextlib


def gpu(duration: int = 120):
    """``spaces.GPU(duration=...)`` on ZeroGPU Spaces (the ``spaces`` package is installed
    there), a no-op elsewhere. ``duration``: the most seconds the step may hold the GPU."""
    with contextlib.suppress(ImportError):
        import spaces

        return spaces.GPU(duration=duration)
    return lambda fn: fn
