"""Per-session storage for the Gradio app.

Every browser tab (or ``gradio_client.Client``) gets one :class:`Session`: a private folder
named by an unguessable id that holds everything the user made (the photos, the poses,
the finetuned subject, the rendered frames). Keeping state on disk rather than in Python
objects means it survives errors in later steps and crosses process boundaries (ZeroGPU
runs GPU functions in a forked worker). :class:`SessionStore` removes a session's folder
when the tab closes or after it has been idle for ``ttl_s`` seconds.

Long steps run as *jobs* (:meth:`Session.job`): each step kind has its own cancel event,
so "Cancel rendering" stops the render and nothing else. A session with a running job is
never swept, idleness counts from the end of the last step, and closing a session cancels
its jobs and waits for them to stop before its folder is deleted: nothing is written into
a deleted folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dreampose.app.messages import UserError
from dreampose.app.uploads import AppLimits

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- sessions
class SessionClosed(UserError):
    """The session was closed (tab closed or expired) while one of its jobs ran."""

    def __init__(
        self,
        message: str = "This session has ended (the tab was closed or left idle too long); "
        "reload the page to start again.",
    ) -> None:
        super().__init__(message)


@dataclass
class Session:
    """One user's private folder. File names are fixed here so every step finds the others' work."""

    id: str
    folder: Path
    last_used: float
    jobs: dict[str, threading.Event] = field(default_factory=dict)  # step kind -> its cancel event
    closed: bool = False
    _idle: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def photos_dir(self) -> Path:
        return self.folder / "photos"

    @property
    def poses_path(self) -> Path:  # driving poses placed on the canvas (and aligned)
        return self.folder / "poses.npz"

    @property
    def raw_poses_path(self) -> Path:  # driving poses as extracted or uploaded
        return self.folder / "poses_raw.npz"

    # ------------------------------------------------------------------ jobs
    @contextlib.contextmanager
    def job(self, kind: str):
        """Run a step of ``kind`` (e.g. "render"): yields its cancel event. One job of a kind
        at a time; the session counts as in use until the step ends."""
        with self._idle:
            if self.closed:
                raise SessionClosed
            if kind in self.jobs:
                raise UserError(
                    f"This step ({kind}) is already running in this tab; wait for it or cancel it."
                )
            cancel = threading.Event()
            self.jobs[kind] = cancel
        try:
            yield cancel
        finally:
            with self._idle:
                self.jobs.pop(kind, None)
                self.last_used = time.monotonic()  # idle from the end of the step
                self._idle.notify_all()

    def cancel(self, kind: str | None = None) -> bool:
        """Ask the running job of ``kind`` (or every job) to stop; True if one was running."""
        with self._idle:
            events = (
                list(self.jobs.values()) if kind is None else [self.jobs[kind]] if kind in self.jobs else []
            )
        for event in events:
            event.set()
        return bool(events)

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def retire_if_idle(self, ttl_s: float, now: float) -> bool:
        """Close the session to new jobs if none is running and the last ended more than
        ``ttl_s`` ago; True if it did. Atomic with :meth:`job`, so a step that starts
        meanwhile is never swept from under itself."""
        with self._idle:
            if self.closed or self.jobs or now - self.last_used <= ttl_s:
                return False
            self.closed = True
            return True

    def close(self, wait_s: float = 600.0) -> None:
        """Cancel the jobs, wait for them to end, then delete the folder."""
        with self._idle:
            self.closed = True
        self.cancel()
        with self._idle:
            if not self._idle.wait_for(lambda: not self.jobs, timeout=wait_s):
                log.warning(
                    "session %s: jobs %s did not stop in %.0f s", self.id[:8], list(self.jobs), wait_s
                )
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ files
    def path(self, name: str) -> Path:
        """A file inside this session's folder; refuses names that would leave it."""
        target = (self.folder / name).resolve()
        if self.folder.resolve() not in target.parents:
            raise ValueError(f"{name!r} is not a file name inside the session folder")
        if self.closed:
            raise SessionClosed
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def store_photos(self, photos: list) -> list[Path]:
        """Keep copies of the subject photos (named by content hash, in upload order)."""
        from PIL import Image

        self.photos_dir.mkdir(parents=True, exist_ok=True)
        kept = []
        for i, rgb in enumerate(photos):
            digest = hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()[:16]
            target = self.photos_dir / f"{i:02d}_{digest}.png"
            if not target.exists():
                for old in self.photos_dir.glob(f"{i:02d}_*.png"):
                    old.unlink()
                Image.fromarray(rgb).save(target)
            kept.append(target)
        for extra in sorted(self.photos_dir.glob("*.png"))[len(photos) :]:
            extra.unlink()
        return kept

    def photos(self) -> list[Path]:
        return sorted(self.photos_dir.glob("*.png")) if self.photos_dir.is_dir() else []


class SessionStore:
    """Creates, finds and deletes sessions under one root folder (thread-safe)."""

    def __init__(self, root: str | os.PathLike | None = None, ttl_s: float = AppLimits.session_ttl_s):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="dreampose-sessions-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._stop_sweeping = threading.Event()
        self._closed = False  # close_all ran: the server is stopping

    def get(self, key: str | None) -> Session:
        """The session for ``key`` (Gradio's per-tab ``session_hash``), created on first use.

        The folder gets its own random name, so knowing a key never reveals a path.
        """
        self.sweep()
        key = key or uuid.uuid4().hex
        with self._lock:
            if self._closed:
                raise SessionClosed("The server is stopping; please try again in a moment.")
            session = self._sessions.get(key)
            if session is None:
                folder = self.root / uuid.uuid4().hex
                folder.mkdir(mode=0o700)
                session = Session(key, folder, time.monotonic())
                self._sessions[key] = session
            session.last_used = time.monotonic()
            return session

    def find(self, key: str | None) -> Session | None:
        """The open session for ``key``, without creating one."""
        with self._lock:
            return self._sessions.get(key or "")

    def close(self, session_id: str | None) -> None:
        """Delete a session and its folder (the tab was closed, or it expired), after
        stopping its running jobs."""
        with self._lock:
            session = self._sessions.pop(session_id or "", None)
        if session is not None:
            session.close()
            log.info("closed session %s", session.id[:8])

    def sweep(self) -> None:
        """Delete every session idle for longer than ``ttl_s`` since its last step ended; a
        session with a running job is in use, however long the job takes."""
        now = time.monotonic()
        with self._lock:
            expired = [s for s in self._sessions.values() if s.retire_if_idle(self.ttl_s, now)]
            for session in expired:
                del self._sessions[session.id]
        for session in expired:
            session.close()  # no job can start in it any more: deleted at once
            log.info("expired session %s", session.id[:8])

    def start_sweeping(self, every_s: float | None = None) -> threading.Thread:
        """Sweep from a background thread every ``every_s`` seconds (default: a tenth of the
        TTL, from 1 s to 5 min), so idle sessions go even when no request comes to sweep them.
        Stops at :meth:`close_all`."""
        every_s = every_s or min(max(self.ttl_s / 10, 1.0), 300.0)

        def loop() -> None:
            while not self._stop_sweeping.wait(every_s):
                try:
                    self.sweep()
                except Exception:  # a failed sweep must not end the sweeping
                    log.exception("sweeping sessions failed")

        thread = threading.Thread(target=loop, name="dreampose-session-sweeper", daemon=True)
        thread.start()
        return thread

    def __len__(self) -> int:
        return len(self._sessions)

    def close_all(self) -> None:
        """Close every session (at server shutdown), refuse new ones, and remove the root
        folder if it is empty."""
        self._stop_sweeping.set()
        with self._lock:
            self._closed = True
            keys = list(self._sessions)
        for session_id in keys:
            self.close(session_id)
        with contextlib.suppress(OSError):
            self.root.rmdir()
