"""The embedded default store: one SQLite file, for a single host run without ZooKeeper.

Several processes of the host (one per plugin, plus the CLI) share the file; SQLite's own locking
makes each `commit` atomic across them. Ephemeral nodes belong to a session row naming the owning
process (pid, its start time and the boot id, so a recycled pid is not mistaken for the owner); a
session whose process is gone is purged, and its ephemeral nodes with it, the next time anyone asks
about liveness or waits on a lock. Watches poll a change counter that every write bumps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sqlite3
import threading
import time
import uuid
from typing import Callable, Sequence

from acsnet.errors import StoreUnavailable
from acsnet.store.base import (
    ROOT,
    Check,
    Create,
    Delete,
    Operation,
    SetValue,
    Store,
    Versioned,
    join,
    validate_path,
)
from acsnet.store import liveness
from acsnet.store.liveness import SESSION_LAYOUTS, HostRecord, HostSessions

log = logging.getLogger(__name__)

WATCH_POLL_SECONDS = 0.1

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    path TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    value BLOB NOT NULL,
    version INTEGER NOT NULL,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS nodes_parent ON nodes(parent);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    started TEXT NOT NULL,
    boot TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL);
INSERT OR IGNORE INTO changes VALUES (0, 0);
"""


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, which with the pid names it uniquely."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclasses.dataclass(eq=False)
class _Watch:
    """A watch of `path`: `read` it after every change, and `callback` with it when not `last`."""

    path: str
    read: Callable
    callback: Callable
    last: object = None
    ended: bool = False


class EmbeddedStore(Store):
    def __init__(self, path: str, timeout: float = 5.0):
        self.path = path
        self.timeout = timeout
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        os.chmod(path, 0o600)
        self._run(lambda db: db.executescript(SCHEMA))
        self._run(lambda db: db.execute("PRAGMA journal_mode=WAL"))
        self._session = uuid.uuid4().hex
        self._session_registered = False
        self._watches: list[_Watch] = []  # every watch set and not ended
        self._watch_thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._thread_locks: dict[str, threading.Lock] = {}
        self._thread_locks_guard = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------------

    def _run(self, fn, *, write: bool = False):
        """Run `fn(db)` under the process lock; a write runs in one IMMEDIATE transaction."""
        started = time.monotonic()
        try:
            return self._run_locked(fn, write)
        finally:
            self._observe("write" if write else "read", started)

    def _run_locked(self, fn, write: bool):
        with self._lock:
            try:
                if not write:
                    return fn(self._db)
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("UPDATE changes SET seq = seq + 1 WHERE id = 0")
                self._db.execute("COMMIT")
                return result
            except sqlite3.OperationalError as e:
                raise StoreUnavailable(f"embedded store {self.path}: {e}") from e

    @staticmethod
    def _row(db, path):
        return db.execute("SELECT value, version, owner FROM nodes WHERE path = ?", (path,)).fetchone()

    def _insert(self, db, path: str, value: bytes, ephemeral: bool) -> None:
        owner = self._session if ephemeral else None
        db.execute(
            "INSERT INTO nodes(path, parent, value, version, owner) VALUES (?, ?, ?, 0, ?)",
            (path, _parent(path), value, owner),
        )

    def _make_parents(self, db, path: str) -> None:
        missing = []
        parent = _parent(path)
        while parent != "/" and self._row(db, parent) is None:
            missing.append(parent)
            parent = _parent(parent)
        for p in reversed(missing):
            self._insert(db, p, b"", False)

    # -- the interface ---------------------------------------------------------------------------

    def create(self, path: str, value: bytes = b"", *, ephemeral: bool = False) -> bool:
        validate_path(path)
        if ephemeral:
            self._ensure_session()

        def create(db):
            if self._row(db, path) is not None:
                return False
            self._make_parents(db, path)
            self._insert(db, path, value, ephemeral)
            return True

        return self._run(create, write=True)

    def get(self, path: str) -> Versioned | None:
        row = self._run(lambda db: self._row(db, path))
        return None if row is None else Versioned(bytes(row[0]), row[1])

    def compare_and_set(self, path: str, value: bytes, version: int) -> bool:
        return self.commit([SetValue(path, value, version)])

    def delete(self, path: str, version: int = -1, *, recursive: bool = False) -> bool:
        def delete(db):
            row = self._row(db, path)
            if row is None or version != -1 and row[1] != version:
                return False
            like = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
            below = db.execute("SELECT count(*) FROM nodes WHERE path LIKE ? ESCAPE '\\'", (like,)).fetchone()
            if below[0] and not recursive:
                return False
            db.execute("DELETE FROM nodes WHERE path = ? OR path LIKE ? ESCAPE '\\'", (path, like))
            return True

        return self._run(delete, write=True)

    def children(self, path: str) -> list[str]:
        rows = self._run(lambda db: db.execute("SELECT path FROM nodes WHERE parent = ?", (path,)).fetchall())
        return sorted(r[0].rsplit("/", 1)[1] for r in rows)

    def commit(self, operations: Sequence[Operation]) -> bool:
        class Rejected(Exception):
            pass

        def apply(db):
            for op in operations:
                row = self._row(db, op.path)
                if isinstance(op, Create):
                    if row is not None or _parent(op.path) != "/" and self._row(db, _parent(op.path)) is None:
                        raise Rejected
                    self._insert(db, op.path, op.value, op.ephemeral)
                elif row is None or op.version != -1 and row[1] != op.version:
                    raise Rejected
                elif isinstance(op, SetValue):
                    db.execute("UPDATE nodes SET value = ?, version = version + 1 WHERE path = ?", (op.value, op.path))
                elif isinstance(op, Delete):
                    if db.execute("SELECT 1 FROM nodes WHERE parent = ? LIMIT 1", (op.path,)).fetchone():
                        raise Rejected
                    db.execute("DELETE FROM nodes WHERE path = ?", (op.path,))
                elif not isinstance(op, Check):
                    raise TypeError(f"unknown store operation {op!r}")
            return True

        try:
            return self._run(apply, write=True)
        except Rejected:
            return False

    # -- liveness --------------------------------------------------------------------------------

    def _ensure_session(self) -> None:
        """Ephemeral nodes need a session row naming this process, so that a crashed owner's
        nodes (liveness, locks) are purged instead of lingering forever."""
        if self._session_registered:
            return
        pid = os.getpid()
        self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO sessions(id, pid, started, boot) VALUES (?, ?, ?, ?)",
                (self._session, pid, _process_start(pid) or "", _boot_id()),
            ),
            write=True,
        )
        self._session_registered = True

    def register_host(self, host_id: str, session_name: str, info: dict) -> None:
        self._ensure_session()
        pid = os.getpid()
        HostRecord.write(self, host_id, info)
        for layout in SESSION_LAYOUTS:
            layout.write(self, host_id, HostSessions.name(session_name, pid))

    def _purge_dead_sessions(self) -> None:
        boot = _boot_id()
        sessions = self._run(lambda db: db.execute("SELECT id, pid, started, boot FROM sessions").fetchall())
        dead = [s for s, pid, started, b in sessions if b != boot or _process_start(pid) != started]
        if not dead:
            return

        def purge(db):
            for session in dead:
                db.execute("DELETE FROM nodes WHERE owner = ?", (session,))
                db.execute("DELETE FROM sessions WHERE id = ?", (session,))

        self._run(purge, write=True)

    def live_hosts(self) -> set[str]:
        self._purge_dead_sessions()
        return liveness.live_hosts(self)

    def host_alive(self, host_id: str) -> bool:
        self._purge_dead_sessions()
        return super().host_alive(host_id)

    # -- locks -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float):
        self._ensure_session()
        path = join(ROOT, "locks", name)
        deadline = time.monotonic() + timeout
        thread_lock = self._thread_lock(name)
        if not thread_lock.acquire(timeout=timeout):
            raise StoreUnavailable(f"lock {name} not taken within {timeout:g}s")
        try:
            while not self.create(path, ephemeral=True):
                if time.monotonic() > deadline:
                    raise StoreUnavailable(f"lock {name} not taken within {timeout:g}s")
                self._purge_dead_sessions()
                self._closed.wait(0.01)
            try:
                yield
            finally:
                self.delete(path)
        finally:
            thread_lock.release()

    def _thread_lock(self, name: str) -> threading.Lock:
        """The node only excludes other processes (it is owned by this process's session); threads
        of this process are excluded by an in-process lock of the same name."""
        with self._thread_locks_guard:
            return self._thread_locks.setdefault(name, threading.Lock())

    # -- watches ---------------------------------------------------------------------------------

    def watch_value(self, path: str, callback: Callable[[Versioned | None], None]) -> None:
        self._add_watch(_Watch(path, lambda: self.get(path), callback))

    def watch_children(self, path: str, callback: Callable[[list[str]], None]) -> None:
        self._add_watch(_Watch(path, lambda: self.children(path), callback))

    def _add_watch(self, watch: "_Watch") -> None:
        watch.last = watch.read()
        if watch.callback(watch.last) is False:
            return
        with self._lock:
            self._watches.append(watch)
            if self._watch_thread is None:
                self._watch_thread = threading.Thread(target=self._poll_watches, name="store-watch", daemon=True)
                self._watch_thread.start()

    def end_watches(self, path: str) -> None:
        below = path.rstrip("/") + "/"
        with self._lock:
            for watch in self._watches:
                if watch.path == path or watch.path.startswith(below):
                    watch.ended = True
            self._watches = [watch for watch in self._watches if not watch.ended]

    def watched_paths(self) -> list[str]:
        with self._lock:
            return sorted(watch.path for watch in self._watches)

    def _poll_watches(self) -> None:
        seen = None
        while not self._closed.wait(WATCH_POLL_SECONDS):
            try:
                seq = self._run(lambda db: db.execute("SELECT seq FROM changes").fetchone()[0])
                if seq == seen:
                    continue
                seen = seq
                with self._lock:
                    watches = list(self._watches)
                for watch in watches:
                    current = watch.read()
                    if current != watch.last and not watch.ended:
                        watch.last = current
                        if watch.callback(current) is False:
                            with self._lock:
                                watch.ended = True
                                self._watches = [kept for kept in self._watches if kept is not watch]
            except Exception:  # a watcher must outlive one bad callback or a locked database
                if self._closed.is_set():
                    return  # closed while it polled: the database is gone, not failing
                log.exception("embedded store watch failed; will retry")

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._session_registered:
            session = self._session

            def end(db):
                db.execute("DELETE FROM nodes WHERE owner = ?", (session,))
                db.execute("DELETE FROM sessions WHERE id = ?", (session,))

            with contextlib.suppress(StoreUnavailable):
                self._run(end, write=True)
        with self._lock:
            self._db.close()
