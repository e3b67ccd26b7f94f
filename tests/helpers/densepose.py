"""The shared DensePose parity fixture (``../shared/densepose-parity``) and its regenerable weights.

The weights are deterministic random weights in the model-zoo format, calibrated so that the model
"finds people" on the fixture's person images; ``make_weights.py`` regenerates them (about 2 s,
256 MB). They are never committed: the ``parity_weights`` fixture in ``conftest.py`` writes them once
per test session into a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

SHARED = Path(os.environ.get("DREAMPOSE_SHARED") or REPO.parent / "shared")
PARITY = SHARED / "densepose-parity"
MISSING_REASON = f"DensePose parity fixture not found at {PARITY} (set DREAMPOSE_SHARED to the shared folder)"


def make_parity_weights(out: Path) -> Path:
    """Regenerate the fixture weights into ``out`` (the script checks their content digest)."""
    subprocess.run(
        [sys.executable, str(PARITY / "make_weights.py"), "--out", str(out)], check=True, capture_output=True
    )
    return out
