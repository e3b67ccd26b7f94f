"""Automatic setup of the official DreamPose models (`dreampose download`, the app's first start).

- :func:`run_setup` fetches, checks and converts; :class:`SetupOptions` says what.
- :class:`ModelSetup` runs it in the background with a :class:`SetupStatus` snapshot and cancel.
- :func:`installed_model` is the converted base model when it is set up; :func:`auto_download_enabled`
  honours ``--no-download`` / ``$DREAMPOSE_NO_DOWNLOAD``.

Importing this package loads neither torch nor any network code.
"""

from dreampose.setup.install import (
    SetupError,
    SetupOptions,
    SetupResult,
    Step,
    demo_poses_path,
    installed_model,
    model_dir,
    run_setup,
)
from dreampose.setup.job import NO_DOWNLOAD_ENV, ModelSetup, SetupStatus, auto_download_enabled
from dreampose.setup.sources import PARTS, Source, parse_source, source_for

__all__ = [
    "NO_DOWNLOAD_ENV",
    "PARTS",
    "ModelSetup",
    "SetupError",
    "SetupOptions",
    "SetupResult",
    "SetupStatus",
    "Source",
    "Step",
    "auto_download_enabled",
    "demo_poses_path",
    "installed_model",
    "model_dir",
    "parse_source",
    "run_setup",
    "source_for",
]
