"""Per-session storage for the Gradio app.

Every browser tab (or ``gradio_client.Client``) gets one :class:`Session`: a private folder
named by an unguessable id that holds everything the user made (the photos, the poses,
the finetuned subject, the rendered frames). Keeping state on disk rather than in Python
objects means it survives errors in later steps and crosses process boundaries (ZeroGPU
runs GPU functions in a forked worker). :class:`SessionStore` removes a session's folder
when the tab closes or after it has been idle for ``ttl_s`` seconds.

Every file of a session is named here, with the helpers that read and write it (photos,
poses, what the session remembers about its inputs, each step's status line, the current
subject, the last guidance grid, renders), so the steps find each other's work; every
write is atomic (``dreampose.base.files``).

Only what cannot be a file lives in memory (:class:`Memo`): the subject's encodings and
pose windows that previews reuse, tensors of the loaded model; a process that lacks them
(a ZeroGPU worker) makes them again.

Long steps run as *jobs* (:meth:`Session.job`): each step kind has its own cancel event,
so "Cancel rendering" stops the render and nothing else. A session with a running job is
never swept, idleness counts from the end of the last step, and closing a session cancels
its jobs and waits for them to stop before its folder is deleted: nothing is written into
a deleted folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

from dreampose.app.messages import UserError
from dreampose.app.uploads import AppLimits
from dreampose.base.files import atomic_file, read_json, write_text

Clock = Callable[[], float]  # seconds, monotonic: time.monotonic, or a test's own clock

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- sessions
class Memo:
    """Values one session keeps in memory, each with the key it was made for (thread-safe).

    ``get(name, key, make)`` is the value kept under ``name`` when it was made for an equal
    ``key``; otherwise ``make()``, which then replaces it. One value per name, so a key
    that changes (another photo, poses written again, another model) frees the old value.
    """

    def __init__(self) -> None:
        self._kept: dict[str, tuple[Hashable, object]] = {}
        # Held while a value is made: a preview and a grid of one tab that both need the
        # photo encoded wait for one encoding instead of making two.
        self._lock = threading.Lock()

    def get(self, name: str, key: Hashable, make: Callable[[], object]):
        with self._lock:
            kept = self._kept.get(name)
            if kept is not None and kept[0] == key:
                return kept[1]
            value = make()
            self._kept[name] = (key, value)
            return value

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


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
    clock: Clock = time.monotonic
    memo: Memo = field(default_factory=Memo, repr=False, compare=False)  # what previews reuse
    _live_previews: itertools.count = field(default_factory=itertools.count, repr=False, compare=False)
    _newest_live_preview: int = field(default=-1, repr=False, compare=False)
    _idle: threading.Condition = field(default_factory=threading.Condition, repr=False)

    INPUTS = "inputs.json"  # what the session remembers about its inputs
    SUBJECT_POINTER = "current_subject.txt"  # the folder of the subject finetuned last
    GRID = "grid.json"  # the last guidance grid's scales and layout, to map a click to its cell

    # ------------------------------------------------------------------ the files
    @property
    def photos_dir(self) -> Path:
        return self.folder / "photos"

    @property
    def poses_path(self) -> Path:  # driving poses placed on the canvas (and aligned)
        return self.folder / "poses.npz"

    @property
    def raw_poses_path(self) -> Path:  # driving poses as extracted or uploaded
        return self.folder / "poses_raw.npz"

    @property
    def pose_preview_path(self) -> Path:  # the poses before | after aligning, as a video
        return self.path("poses_preview.mp4")

    def subject_pose_path(self, photo: Path) -> Path:
        """The photo's own pose, cached per photo."""
        return self.folder / f"subject_pose_{photo.stem}.npz"

    def preview_path(self, name: str) -> Path:
        return self.path(f"previews/{name}.png")

    def new_render_folder(self) -> Path:
        """A fresh folder for one render's video, frames (``frames/``) and zip."""
        folder = self.path(f"renders/{time.time_ns()}/frames").parent
        folder.mkdir(exist_ok=True)
        return folder

    def new_subject_folder(self) -> Path:
        """Where a finetuning writes its subject model (made by the finetuning itself)."""
        return self.path(f"subject_model_{time.time_ns()}")

    def keep_driving_sound(self, video: Path) -> Path:
        """A copy of the driving video, for its soundtrack (the upload itself is Gradio's)."""
        with atomic_file(self.path("driving" + video.suffix.lower())) as tmp:
            shutil.copyfile(video, tmp)
        return self.folder / ("driving" + video.suffix.lower())

    # ------------------------------------------------------------------ what it remembers
    # On disk, like everything of a session: ZeroGPU runs the steps in a forked worker, so an
    # attribute set there would be lost.
    def remember(self, **facts) -> None:
        """Record facts about the session's inputs (upload names, the driving video's sound)."""
        write_text(self.path(self.INPUTS), json.dumps({**self.recall(), **facts}))

    def recall(self) -> dict:
        return read_json(self.folder / self.INPUTS)

    @property
    def photo_name(self) -> str:
        """The uploaded photo's name, made safe for download names."""
        return file_stem(self.recall().get("photo"), "photo")

    @property
    def video_name(self) -> str:
        """The driving video's (or pose file's) name, made safe for download names."""
        return file_stem(self.recall().get("video"), "poses")

    def save_status(self, kind: str, text: str) -> None:
        """Keep the last result or error of a step, so the page shows it until the step runs again."""
        write_text(self.path(f"status/{kind}.txt"), text)

    def load_status(self, kind: str) -> str:
        try:
            return (self.folder / "status" / f"{kind}.txt").read_text()
        except OSError:
            return ""

    def current_subject(self) -> Path | None:
        """The session's finetuned subject folder, if it has one."""
        try:
            folder = self.folder / (self.folder / self.SUBJECT_POINTER).read_text().strip()
        except OSError:
            return None
        return folder if folder.is_dir() else None

    def use_subject(self, folder: Path) -> None:
        """Later previews and renders use the subject in ``folder`` (inside the session)."""
        write_text(self.path(self.SUBJECT_POINTER), folder.name)

    def save_grid(self, grid) -> None:
        """The scales and layout of the guidance grid just shown (``rendering.grid.GuidanceGrid``)."""
        layout = grid.layout.__dict__ if grid.layout is not None else None
        facts = {"image_scales": grid.image_scales, "pose_scales": grid.pose_scales, "layout": layout}
        write_text(self.path(self.GRID), json.dumps(facts))

    def grid_scales_at(self, x: float, y: float) -> tuple[float, float] | None:
        """(sI, sP) of the cell of the last guidance grid under pixel (x, y), or None."""
        import numpy as np

        from dreampose.rendering.grid import GridLayout, GuidanceGrid

        saved = read_json(self.folder / self.GRID)
        if "image_scales" not in saved:
            return None
        layout = GridLayout(**saved["layout"]) if saved.get("layout") else None
        empty = np.zeros((1, 1, 3), np.uint8)
        return GuidanceGrid(empty, [], saved["image_scales"], saved["pose_scales"], layout).scales_at(x, y)

    # ------------------------------------------------------------------ jobs
    @contextlib.contextmanager
    def job(self, kind: str, wait_s: float = 0.0):
        """Run a step of ``kind`` (e.g. "render"): yields its cancel event. One job of a kind
        at a time (``wait_s``: wait that long for a running one to end first); the session
        counts as in use until the step ends."""
        with self._idle:
            if kind in self.jobs and wait_s > 0:
                self._idle.wait_for(lambda: kind not in self.jobs or self.closed, timeout=wait_s)
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
                self.last_used = self.clock()  # idle from the end of the step
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

    def ask_live_preview(self) -> int:
        """A control moved: a new live preview is wanted. Returns its ticket; the running
        preview is cancelled and any asked for before are out of date."""
        with self._idle:
            ticket = self._newest_live_preview = next(self._live_previews)
        self.cancel("preview")
        return ticket

    def preview_out_of_date(self, ticket: int) -> bool:
        """A newer live preview was asked for since ``ticket``'s."""
        return ticket != self._newest_live_preview

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
        self.memo.clear()  # frees the model's memory at once, not when the session is collected
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
        from dreampose.media.frames import save_png

        self.photos_dir.mkdir(parents=True, exist_ok=True)
        kept = []
        for i, rgb in enumerate(photos):
            digest = hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()[:16]
            target = self.photos_dir / f"{i:02d}_{digest}.png"
            if not target.exists():
                for old in self.photos_dir.glob(f"{i:02d}_*.png"):
                    old.unlink()
                save_png(target, rgb)
            kept.append(target)
        for extra in sorted(self.photos_dir.glob("*.png"))[len(photos) :]:
            extra.unlink()
        return kept

    def photos(self) -> list[Path]:
        return sorted(self.photos_dir.glob("*.png")) if self.photos_dir.is_dir() else []


def file_stem(name: str | None, default: str = "upload") -> str:
    """A file name made safe for download names: letters, digits, - and _, at most 40."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name or "").stem).strip("-_")[:40]
    return stem or default


class SessionStore:
    """Creates, finds and deletes sessions under one root folder (thread-safe)."""

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        ttl_s: float = AppLimits.session_ttl_s,
        clock: Clock = time.monotonic,
    ):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="dreampose-sessions-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self.clock = clock  # idleness is measured on it (tests pass their own)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        # Sessions taken out of ``_sessions`` whose folders are still being deleted (a closed tab,
        # an expired session): the server's cleanup waits for them before removing the root.
        self._deleting: dict[int, Session] = {}  # by id(): sessions compare by value
        self._deleted = threading.Condition(self._lock)
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
                session = Session(key, folder, self.clock(), clock=self.clock)
                self._sessions[key] = session
            session.last_used = self.clock()
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
                self._deleting[id(session)] = session
        if session is not None:
            self._delete(session)
            log.info("closed session %s", session.id[:8])

    def _delete(self, session: Session) -> None:
        """Close ``session`` (already out of ``_sessions``, in ``_deleting``) and its folder."""
        try:
            session.close()
        finally:
            with self._lock:
                self._deleting.pop(id(session), None)
                self._deleted.notify_all()

    def sweep(self) -> None:
        """Delete every session idle for longer than ``ttl_s`` since its last step ended; a
        session with a running job is in use, however long the job takes."""
        now = self.clock()
        with self._lock:
            expired = [s for s in self._sessions.values() if s.retire_if_idle(self.ttl_s, now)]
            for session in expired:
                del self._sessions[session.id]
                self._deleting[id(session)] = session
        for session in expired:
            self._delete(session)  # no job can start in it any more: deleted at once
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

    def close_all(self, wait_s: float = 600.0) -> None:
        """Close every session (at server shutdown), refuse new ones, wait for the folders that
        other threads are deleting (a tab closed meanwhile), and remove the root folder if it
        is empty."""
        self._stop_sweeping.set()
        with self._lock:
            self._closed = True
            keys = list(self._sessions)
        for session_id in keys:
            self.close(session_id)
        with self._lock:
            if not self._deleted.wait_for(lambda: not self._deleting, timeout=wait_s):
                log.warning(
                    "%d session folders were still being deleted after %.0f s", len(self._deleting), wait_s
                )
        with contextlib.suppress(OSError):
            self.root.rmdir()
