"""ReleaseAddress answered before its commit.

A release is one ZooKeeper commit (4-7 ms in the lab), on the path of every `docker run --rm` and
`docker rm`. Until it commits, the address only stays held a little longer by its own host: nothing can
be handed out twice. So the IPAM answers the release of an endpoint's address it recorded itself once
the release is in this journal, and one thread commits the releases in order, retrying while the store
is away; a plugin killed in between commits them when it starts again. The same host asking for the
address by name again (a container replaced with its `--ip`), or removing the pool, waits for the queue.
Another host asking for it by name within those few ms finds it held, as it would find an address whose
release failed (a store away): an orchestrator's next container comes tens of ms after `docker rm`
returns, at the least.

Each release names the record it frees by the time it was made (`AddressRecord.since`), so committing
it twice, or after another host or `acsnet gc` freed the address and it was handed out again, frees
nothing it should not. What the record becomes (freed, or kept for its application) is decided at the
commit, from the store, as before.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import threading
from typing import Callable

from acsnet.errors import AcsnetError, NotFound, StoreUnavailable

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class PendingRelease:
    pool_id: str
    address: str
    since: float  # the record it frees: the one made at that time

    def to_json(self) -> dict:
        return {"pool": self.pool_id, "address": self.address, "since": self.since}

    @classmethod
    def from_json(cls, data: dict) -> "PendingRelease":
        return cls(str(data["pool"]), str(data["address"]), float(data["since"]))


class ReleaseJournal:
    """The releases answered and not yet committed, one JSON line each on local disk: `{"release": ...}`
    when answered, `{"done": ...}` when committed. Written, not fsync'd: a killed plugin's writes are in
    the kernel's cache, and a host whose kernel goes down loses its containers with them; what the lost
    lines held is then what any crash leaves, found by `acsnet gc` as before (a dead host's addresses,
    or, once the host is back, addresses held by no container)."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._lock = threading.Lock()
        self._file = None

    def pending(self) -> list[PendingRelease]:
        """The releases of the journal not marked done, in order (a line cut by a kill is skipped)."""
        releases: list[PendingRelease] = []
        try:
            with open(self.path) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                entry = json.loads(line)
                if "release" in entry:
                    releases.append(PendingRelease.from_json(entry["release"]))
                elif "done" in entry:
                    releases.remove(PendingRelease.from_json(entry["done"]))
            except (ValueError, KeyError, TypeError):
                log.warning("release journal %s: line %r skipped", self.path, line[:200])
        return releases

    def rewrite(self, releases: list[PendingRelease]) -> None:
        """The journal holding `releases` alone (at start, and whenever every release is committed); no
        file at all when there are none, so that a host with nothing pending keeps nothing on disk."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if not releases:
                if os.path.exists(self.path):
                    os.remove(self.path)
                return
            temporary = self.path + ".new"
            with open(temporary, "w") as f:
                f.writelines(json.dumps({"release": r.to_json()}) + "\n" for r in releases)
            os.replace(temporary, self.path)

    def add(self, release: PendingRelease) -> None:
        self._write({"release": release.to_json()})

    def done(self, release: PendingRelease) -> None:
        self._write({"done": release.to_json()})

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


class ReleaseQueue:
    """One thread committing the journal's releases in order with `commit`, which raises
    StoreUnavailable while the store is away (tried again after RETRY_SECONDS) and NotFound for a pool
    gone since (nothing left to free)."""

    def __init__(self, journal: ReleaseJournal, commit: Callable[[PendingRelease], None]):
        self.journal = journal
        self._commit = commit
        self._queue: collections.deque[PendingRelease] = collections.deque(journal.pending())
        journal.rewrite(list(self._queue))
        if self._queue:
            log.info("release journal %s: %d releases answered before a restart, committing them", journal.path, len(self._queue))
        self._changed = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="ipam-releases", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        with self._changed:
            return len(self._queue)

    def submit(self, release: PendingRelease) -> None:
        """In the journal, then queued: the caller may answer once this returns."""
        with self._changed:
            self.journal.add(release)
            self._queue.append(release)
            self._changed.notify_all()

    def wait_for(self, pool_id: str, timeout: float) -> bool:
        """Until no release of `pool_id` is waiting (a pinned request or the pool's removal must see them
        committed); False if some still were after `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: not any(r.pool_id == pool_id for r in self._queue), timeout)

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
                release = self._queue[0]
            try:
                self._commit(release)
            except StoreUnavailable as e:
                log.warning("pool=%s address=%s release not committed yet, retrying: %s", release.pool_id, release.address, e.message)
                with self._changed:
                    self._changed.wait_for(lambda: self._closing, RETRY_SECONDS)
                continue
            except NotFound:
                pass  # the pool went, and its addresses with it
            except AcsnetError as e:  # not to be retried: `acsnet audit` reports the address if it is left held
                log.error("pool=%s address=%s release given up: %s", release.pool_id, release.address, e.message)
            except Exception:  # never let one release stop the ones behind it
                log.exception("pool=%s address=%s release given up", release.pool_id, release.address)
            with self._changed:
                self._queue.popleft()
                self.journal.done(release)
                if not self._queue:
                    self.journal.rewrite([])
                self._changed.notify_all()


def journal_path(state_dir: str, host_id: str, store_url: str) -> str:
    """One journal per host and store: a journal's releases are of that store's pools (a test machine
    runs several labs, each with hosts named alike)."""
    digest = hashlib.sha256(store_url.encode()).hexdigest()[:12]
    return os.path.join(state_dir, f"ipam-releases-{host_id}-{digest}.journal")
