"""The model setup as a background job, for the app: start it, poll a status snapshot, cancel it.

The app opens its page at once and runs :class:`ModelSetup` in a thread; the page polls
:meth:`ModelSetup.status` (what is happening, bytes, rate, time left, or the error) and switches
to the model at ``status().model`` once it is ``ready``, with no restart.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from dreampose.base.downloads import DownloadCancelled, format_bytes, format_duration
from dreampose.setup.install import SetupOptions, Step, run_setup

log = logging.getLogger(__name__)

NO_DOWNLOAD_ENV = "DREAMPOSE_NO_DOWNLOAD"


def auto_download_enabled(no_download: bool = False) -> bool:
    """False when ``--no-download`` was given or ``$DREAMPOSE_NO_DOWNLOAD`` is set (offline machines, CI)."""
    flag = os.environ.get(NO_DOWNLOAD_ENV, "").strip().lower()
    return not no_download and flag in ("", "0", "false", "no")


@dataclass(frozen=True)
class SetupStatus:
    """A snapshot of the job. ``state`` is idle, running, ready, failed or cancelled."""

    state: str = "idle"
    what: str = ""  # "getting Stable Diffusion 1.4"
    step: int = 0
    steps: int = 0
    done: int = 0  # bytes of the current transfer
    total: int | None = None
    rate: float = 0.0  # bytes per second
    eta: float | None = None  # seconds left in the current transfer
    error: str | None = None
    model: Path | None = None  # the model to load once ready

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def fraction(self) -> float | None:
        """Share of the current transfer done (None while unknown)."""
        return self.done / self.total if self.total else None

    def text(self) -> str:
        """One line for the page."""
        if self.state == "ready":
            return f"The model is ready: {self.model}"
        if self.state == "failed":
            return f"Setting up the model failed: {self.error}"
        if self.state == "cancelled":
            return "Setting up the model was cancelled; starting it again resumes the downloads."
        if self.state == "idle":
            return "The model is not set up yet."
        line = f"Step {self.step} of {self.steps}: {self.what}"
        if self.done:
            line += f": {format_bytes(self.done)}" + (f" of {format_bytes(self.total)}" if self.total else "")
            if self.rate > 0:
                line += f", {format_bytes(self.rate)}/s"
            if self.eta is not None:
                line += f", about {format_duration(self.eta)} left"
        return line + "…"


class ModelSetup:
    """Runs :func:`~dreampose.setup.install.run_setup` in a background thread.

    Thread-safe: any thread may call :meth:`start`, :meth:`status`, :meth:`cancel` and :meth:`wait`.
    Starting a running or finished job does nothing; starting a failed or cancelled one tries again
    (downloads resume where they stopped).
    """

    def __init__(self, options: SetupOptions | None = None) -> None:
        self.options = options or SetupOptions()
        self._lock = threading.Lock()
        self._status = SetupStatus()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start the setup; False when it is already running or done."""
        with self._lock:
            if self._status.state in ("running", "ready"):
                return False
            self._cancel = threading.Event()
            self._status = SetupStatus(state="running", what="starting")
            self._thread = threading.Thread(target=self._run, name="dreampose-model-setup", daemon=True)
            self._thread.start()
            return True

    def status(self) -> SetupStatus:
        with self._lock:
            return self._status

    def cancel(self) -> None:
        """Ask the job to stop (within about a second); finished and partial downloads are kept."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> SetupStatus:
        """Block until the job ends (or ``timeout`` seconds pass); return the status."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        try:
            result = run_setup(self.options, report=self._on_step, cancel=self._cancel)
        except DownloadCancelled:
            self._set(state="cancelled")
        except Exception as e:  # every failure ends as text on the page, never as a dead thread
            if not isinstance(e, (OSError, ValueError)) and type(e).__name__ != "SetupError":
                log.exception("model setup failed")
            self._set(state="failed", error=_sentence(e))
        else:
            self._set(state="ready", model=result.model, done=0, total=None, rate=0.0, eta=None)

    def _on_step(self, step: Step) -> None:
        t = step.transfer
        self._set(
            what=step.what,
            step=step.index,
            steps=step.count,
            done=t.done if t else 0,
            total=t.total if t else None,
            rate=t.rate if t else 0.0,
            eta=t.eta if t else None,
        )

    def _set(self, **changes) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)


def _sentence(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
