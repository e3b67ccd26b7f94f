"""Helpers shared by the tests, imported as ``tests.helpers.<module>``."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root
ASSETS = REPO / "assets"
