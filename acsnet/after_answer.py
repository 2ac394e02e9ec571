"""Store writes answered before their commit: a local journal and one thread that commits them in order.

A plugin's request may answer once a write nothing needs committed yet is in the journal (the IPAM's
release of an endpoint's address, `acsnet.ipam.releases`; a driver's removal of an endpoint's records,
`acsnet.plugins.segments.agent`); the queue commits it just after, retrying while the store is away, and a
plugin killed in between commits the journal's writes when it starts again. Each kind of write is a
frozen value with `to_json()` and a `from_json` class method; the journal keeps its JSON.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import threading
from typing import Callable, Generic, TypeVar

from acsnet.errors import AcsnetError, NotFound, StoreUnavailable

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5

Write = TypeVar("Write")


class Journal(Generic[Write]):
    """The writes answered and not yet committed, one JSON line each on local disk: `{"pending": ...}`
    when answered, `{"done": ...}` when committed. Written, not fsync'd: a killed plugin's writes are in
    the kernel's cache, and a host whose kernel goes down loses its containers with them; what the lost
    lines held is then what any crash leaves, found by `acsnet gc` and `acsnet audit` as before."""

    def __init__(self, path: str, kind: type):
        self.path = path
        self.kind = kind
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._lock = threading.Lock()
        self._file = None

    def pending(self) -> list[Write]:
        """The writes of the journal not marked done, in order (a line cut by a kill is skipped)."""
        entries: list[dict] = []
        try:
            with open(self.path) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                entry = json.loads(line)
                if "pending" in entry:
                    entries.append(entry["pending"])
                elif "done" in entry:
                    entries.remove(entry["done"])
            except (ValueError, KeyError, TypeError):
                log.warning("journal %s: line %r skipped", self.path, line[:200])
        writes = []
        for entry in entries:
            try:
                writes.append(self.kind.from_json(entry))
            except (ValueError, KeyError, TypeError):
                log.warning("journal %s: entry %r skipped", self.path, str(entry)[:200])
        return writes

    def rewrite(self, writes: list[Write]) -> None:
        """The journal holding `writes` alone (at start, and whenever every write is committed); no
        file at all when there are none, so that a host with nothing pending keeps nothing on disk."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if not writes:
                if os.path.exists(self.path):
                    os.remove(self.path)
                return
            temporary = self.path + ".new"
            with open(temporary, "w") as f:
                f.writelines(json.dumps({"pending": w.to_json()}) + "\n" for w in writes)
            os.replace(temporary, self.path)

    def add(self, write: Write) -> None:
        self._write({"pending": write.to_json()})

    def done(self, write: Write) -> None:
        self._write({"done": write.to_json()})

    def _write(self, entry: dict) -> None:
        with self._lock:
            if self._file is None:
                self._file = open(self.path, "a")
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class CommitQueue(Generic[Write]):
    """One thread committing the journal's writes in order with `commit`, which raises
    StoreUnavailable while the store is away (tried again after RETRY_SECONDS) and NotFound for what is
    gone since (nothing left to write). `describe` names a write in the log."""

    def __init__(self, journal: Journal[Write], commit: Callable[[Write], None], *, name: str,
                 describe: Callable[[Write], str] = str):
        self.journal = journal
        self._commit = commit
        self._describe = describe
        self.replayed: list[Write] = journal.pending()  # answered before this process started
        self._queue: collections.deque[Write] = collections.deque(self.replayed)
        journal.rewrite(list(self._queue))
        if self._queue:
            log.info("journal %s: %d writes answered before a restart, committing them", journal.path, len(self._queue))
        self._changed = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        with self._changed:
            return len(self._queue)

    def submit(self, write: Write) -> None:
        """In the journal, then queued: the caller may answer once this returns."""
        with self._changed:
            self.journal.add(write)
            self._queue.append(write)
            self._changed.notify_all()

    def wait_for_none(self, matching: Callable[[Write], bool], timeout: float) -> bool:
        """Until no write `matching` is waiting; False if some still were after `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: not any(matching(w) for w in self._queue), timeout)

    def close(self, timeout: float) -> None:
        """Commit what can be within `timeout`; the rest stays in the journal for the next start."""
        with self._changed:
            self._changed.wait_for(lambda: not self._queue, timeout)
            self._closing = True
            self._changed.notify_all()
        self._thread.join(timeout)
        self.journal.close()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._closing)
                if self._closing:
                    return
                write = self._queue[0]
            try:
                self._commit(write)
            except StoreUnavailable as e:
                log.warning("%s not committed yet, retrying: %s", self._describe(write), e.message)
                with self._changed:
                    self._changed.wait_for(lambda: self._closing, RETRY_SECONDS)
                continue
            except NotFound:
                pass  # what it wrote to went, and with it what the write would have removed
            except AcsnetError as e:  # not to be retried: `acsnet audit` reports what is left
                log.error("%s given up: %s", self._describe(write), e.message)
            except Exception:  # never let one write stop the ones behind it
                log.exception("%s given up", self._describe(write))
            with self._changed:
                self._queue.popleft()
                self.journal.done(write)
                if not self._queue:
                    self.journal.rewrite([])
                self._changed.notify_all()


def journal_path(state_dir: str, kind: str, host_id: str, store_url: str) -> str:
    """One journal per kind of write, host and store: a journal's writes are of that store's records (a
    test machine runs several labs, each with hosts named alike)."""
    digest = hashlib.sha256(store_url.encode()).hexdigest()[:12]
    return os.path.join(state_dir, f"{kind}-{host_id}-{digest}.journal")
