"""What the dashboard keeps of the store, kept current by watches, and the changes it tells the pages.

Read all, then watch (as an agent starts): pools and their chunk bitmaps (how full each is), hosts and
their sessions (alive or dead), and each host's networks and endpoints of every segment driver (the
index that answers a search by MAC, endpoint id, container id or container name, and the endpoint
counts). A page request then reads the store only for the rows it shows. Every change bumps `version`
and wakes the pages' event streams.

Containers' names reach endpoint records after the endpoint was made (a host's driver asks its dockerd,
`acsnet.plugins.segments.containers`): a value watch per host on its `NamesChanged`, set before the
host's endpoints are first read, says which records to read again.

Watch callbacks only update what they carry; anything that needs a store read (a new host's watches,
new endpoints' records) goes to a small pool of worker threads, so no store call runs on the store
client's own event thread. The store being away never ends the process: `keeper` notices it, the
pages say so, and what failed to register is registered again when it is back.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
from typing import Callable, TypeVar

from acsnet.errors import AcsnetError
from acsnet.ipam.model import Pool
from acsnet.ipam.state import ChunkBitmaps, PoolRecords
from acsnet.plugins.segments import state as segment_state
from acsnet.plugins.segments.model import LAYOUTS, NamesChanged, SegmentEndpoint, SegmentNetwork
from acsnet.store import Store
from acsnet.store.liveness import HostRecord, HostSessions

log = logging.getLogger("acsnet.dashboard")

T, R = TypeVar("T"), TypeVar("R")
ID_PREFIX = 6  # hex digits of an endpoint or container id a search needs at least (queries.HEX_ID)
KEEPER_SECONDS = 0.5  # how often the store's connection is looked at, and failed registrations retried


@dataclasses.dataclass(frozen=True)
class IndexedEndpoint:
    driver: str
    host: str
    endpoint: SegmentEndpoint


class LiveStore:
    def __init__(self, store: Store, store_name: str, workers: int = 8):
        self.store = store
        self.store_name = store_name  # the URL without credentials
        self.started = time.time()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.version = 0
        self.recent: collections.deque = collections.deque(maxlen=64)  # (version, what changed)
        self.store_problem: str | None = None
        self.pools: dict[str, Pool] = {}
        self.bitmaps: dict[str, dict[int, int]] = {}
        self.sessions: dict[str, list[str]] = {}  # host -> its live sessions (listed hosts only)
        self._hosts: set[str] = set()  # the registered hosts, as their watch last said
        self._reported_sessions: dict[str, list[str]] = {}  # host -> its sessions' watch's last call, listed or not
        self.died: dict[str, float] = {}  # host -> when this process saw its last session end
        self.networks: dict[tuple[str, str], dict[str, SegmentNetwork]] = {}  # (driver, host) -> networks
        self.endpoints: dict[tuple[str, str], dict[str, SegmentEndpoint]] = {}  # (driver, host) -> endpoints
        self._by_ip: dict[str, set[tuple[str, str, str]]] = {}  # ip -> (driver, host, endpoint id)
        self._by_mac: dict[str, set[tuple[str, str, str]]] = {}
        self._by_id: dict[str, set[tuple[str, str, str]]] = {}  # the first ID_PREFIX hex digits of the id -> ...
        self._by_container: dict[str, set[tuple[str, str, str]]] = {}  # ... of the container's id -> ...
        self._by_name: dict[str, set[tuple[str, str, str]]] = {}  # the container's name, lowercased -> ...
        self._names_seen: dict[tuple[str, str], int] = {}  # (driver, host) -> the NamesChanged.count read
        self._host_locks: dict[tuple[str, str], threading.Lock] = collections.defaultdict(threading.Lock)
        self._watched: set[tuple] = set()
        self._pool_ids: set[str] = set()  # the pools, as their watch last said
        self._pending: set[tuple] = set()  # registrations that failed, retried by the keeper
        self._work = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="dashboard-store")
        # Reads of one page's rows, sent together: ZooKeeper answers them pipelined on the one session.
        self._readers = concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="dashboard-read")
        self._stopped = threading.Event()

    # -- changes -------------------------------------------------------------------------------

    def _bump(self, what: str) -> None:
        with self._changed:
            self.version += 1
            self.recent.append((self.version, what))
            self._changed.notify_all()

    def wait_change(self, seen: int, timeout: float) -> tuple[int, list[str]]:
        """The version after `seen` and what changed since, or `seen` and [] after `timeout`."""
        with self._changed:
            self._changed.wait_for(lambda: self.version > seen or self._stopped.is_set(), timeout)
            return self.version, sorted({what for version, what in self.recent if version > seen})

    # -- registration --------------------------------------------------------------------------

    def start(self) -> "LiveStore":
        self._register(("pools",))
        self._register(("hosts",))
        for driver in LAYOUTS:
            self._register(("driver-hosts", driver))
        threading.Thread(target=self._keep, name="dashboard-keeper", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self._changed:
            self._changed.notify_all()
        self._work.shutdown(wait=False, cancel_futures=True)
        self._readers.shutdown(wait=False, cancel_futures=True)

    def _register(self, what: tuple) -> None:
        """Set up one watch, once; on a store error, leave it to the keeper to retry."""
        with self._lock:
            if what in self._watched:
                return
            self._watched.add(what)
        self._work.submit(self._watch, what)

    def _watch(self, what: tuple) -> None:
        store, kind = self.store, what[0]
        try:
            if kind == "pools":
                PoolRecords.watch_all(store, self._on_pools)
            elif kind == "hosts":
                HostRecord.watch_all(store, self._on_hosts)
            elif kind == "sessions":
                HostSessions.watch_all(store, what[1], lambda names, host=what[1]: self._on_sessions(host, names))
            elif kind == "chunks":
                ChunkBitmaps.watch_numbers(store, what[1], lambda numbers, pool=what[1]: self._on_chunks(pool, numbers))
            elif kind == "bitmap":
                ChunkBitmaps.watch(store, what[1], what[2], lambda bits, p=what[1], n=what[2]: self._on_bitmap(p, n, bits))
            elif kind == "driver-hosts":
                segment_state.watch_hosts(store, LAYOUTS[what[1]], lambda hosts, d=what[1]: self._on_driver_hosts(d, hosts))
            elif kind == "networks":
                segment_state.watch_host_networks(store, LAYOUTS[what[1]], what[2],
                                                  lambda ids, d=what[1], h=what[2]: self._later(("read-networks", d, h)))
            elif kind == "endpoints":
                # The names' watch first: its first value is the baseline, and any record named after
                # it is announced by a later one; any named before is read below as it is.
                if (what[1], what[2]) not in self._names_seen:
                    segment_state.watch_names_changed(store, LAYOUTS[what[1]], what[2],
                                                      lambda changed, d=what[1], h=what[2]: self._on_names(d, h, changed))
                segment_state.watch_host_endpoints(store, LAYOUTS[what[1]], what[2],
                                                   lambda ids, d=what[1], h=what[2]: self._later(("read-endpoints", d, h, tuple(ids))))
        except AcsnetError as e:
            self._failed(what, e)
        except Exception as e:  # never let one watch take the dashboard down; the keeper retries it
            log.exception("dashboard: watch %s failed", what)
            self._failed(what, e)

    def _failed(self, what: tuple, error: Exception) -> None:
        with self._lock:
            self._watched.discard(what)
            self._pending.add(what)
        self._set_problem(getattr(error, "message", None) or str(error))

    def _later(self, job: tuple) -> None:
        if not self._stopped.is_set():
            try:
                self._work.submit(self._run_job, job)
            except RuntimeError:  # shut down
                pass

    def _run_job(self, job: tuple) -> None:
        try:
            if job[0] == "read-pool":
                pool = PoolRecords.read(self.store, job[1])
                with self._lock:
                    listed = job[1] in self._pool_ids  # not released since it was listed
                    if pool is not None and listed:
                        self.pools[job[1]] = pool
                if pool is not None and listed:
                    self._register(("chunks", job[1]))
                    self._bump(f"pool:{job[1]}")
            elif job[0] == "read-networks":
                _, driver, host = job
                found = segment_state.read_host_networks(self.store, LAYOUTS[driver], host)
                with self._lock:
                    self.networks[(driver, host)] = found
                self._bump(f"networks:{host}")
            elif job[0] == "read-endpoints":  # the host's endpoint ids changed
                _, driver, host, ids = job
                self._read_endpoints(driver, host, ids, set())
            elif job[0] == "reread-endpoints":  # records named: these, or (None) every one of the host's
                _, driver, host, named = job
                with self._lock:
                    ids = list(self.endpoints.get((driver, host), {}))
                self._read_endpoints(driver, host, ids, set(ids if named is None else named))
        except AcsnetError as e:  # the store went away mid-read: read again once it is back
            self._set_problem(e.message)
            with self._lock:
                self._pending.add(("job", job))
        except Exception:
            log.exception("dashboard: %s failed", job[0])

    def _read_endpoints(self, driver: str, host: str, ids, fresh: set[str]) -> None:
        """The host's endpoints are now `ids`: read those not held yet, and those in `fresh` again. One
        job at a time per host, so a slower one never puts back what a newer one changed."""
        with self._host_locks[(driver, host)]:
            with self._lock:
                known = dict(self.endpoints.get((driver, host), {}))
            now = {i: known[i] for i in ids if i in known and i not in fresh}
            for endpoint_id in ids:
                if endpoint_id not in now:
                    endpoint = segment_state.read_host_endpoint(self.store, LAYOUTS[driver], host, endpoint_id)
                    if endpoint is not None:
                        now[endpoint_id] = endpoint
            with self._lock:
                before = self.endpoints.get((driver, host), {})
                self.endpoints[(driver, host)] = now
                for endpoint_id, endpoint in before.items():
                    if now.get(endpoint_id) != endpoint:
                        self._unindex((driver, host, endpoint_id), endpoint)
                for endpoint_id, endpoint in now.items():
                    if before.get(endpoint_id) != endpoint:
                        self._index((driver, host, endpoint_id), endpoint)
        self._bump(f"endpoints:{host}")

    def _indexes(self, endpoint: SegmentEndpoint) -> list[tuple[dict, str]]:
        found = [(self._by_ip, endpoint.ip), (self._by_mac, endpoint.mac.lower()), (self._by_id, endpoint.endpoint_id[:ID_PREFIX])]
        if endpoint.container_id:
            found.append((self._by_container, endpoint.container_id[:ID_PREFIX]))
        if endpoint.container_name:
            found.append((self._by_name, endpoint.container_name.lower()))
        return found

    def _index(self, key: tuple[str, str, str], endpoint: SegmentEndpoint) -> None:
        for index, value in self._indexes(endpoint):
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: tuple[str, str, str], endpoint: SegmentEndpoint) -> None:
        for index, value in self._indexes(endpoint):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]

    # -- watch callbacks (on the store client's thread: no store calls here) --------------------

    def _on_names(self, driver: str, host: str, changed: NamesChanged | None) -> None:
        """The host's container namer changed records: read again the ones it names, or every one of
        the host's if a change was missed (watches collapse changes) or the count started over."""
        count = changed.count if changed is not None else 0
        with self._lock:
            last = self._names_seen.get((driver, host))
            self._names_seen[(driver, host)] = count
        if last is None or changed is None or count == last:
            return  # the baseline (the host's records are read after it), or nothing to read
        self._later(("reread-endpoints", driver, host, changed.endpoint_ids if count == last + 1 else None))

    def _on_pools(self, pool_ids: list[str]) -> None:
        """A pool released takes its watches with it (ended here: no store I/O). Its chunks' watch,
        having reported `[]`, would wait for the node to be made again and never be called back, so
        its callback could not end it; its registrations go too, so a pool made again with the same id
        (a shared pool's id is its request's hash) is watched anew."""
        with self._lock:
            self._pool_ids = set(pool_ids)
            gone = {what[1] for what in self._watched | self._pending if what[0] in ("chunks", "bitmap")} | set(self.pools)
            gone -= self._pool_ids
            for pool_id in gone:
                self.pools.pop(pool_id, None)
                self.bitmaps.pop(pool_id, None)
                self._watched = {what for what in self._watched if what[0] not in ("chunks", "bitmap") or what[1] != pool_id}
                self._pending = {what for what in self._pending if what[0] not in ("chunks", "bitmap") or what[1] != pool_id}
        for pool_id in gone:
            ChunkBitmaps.end_watches(self.store, pool_id)
        for pool_id in pool_ids:
            if pool_id not in self.pools:
                self._later(("read-pool", pool_id))
        self._bump("pools")

    def _on_chunks(self, pool_id: str, numbers: list[int]) -> bool | None:
        with self._lock:
            if pool_id not in self.pools:  # released since this watch was asked for: it ends
                self._watched.discard(("chunks", pool_id))
                return False
        for number in numbers:
            self._register(("bitmap", pool_id, number))

    def _on_bitmap(self, pool_id: str, number: int, bitmap: int | None) -> bool | None:
        with self._lock:
            if pool_id not in self.pools:  # released since this watch was asked for: it ends
                self._watched.discard(("bitmap", pool_id, number))
                return False
            chunks = self.bitmaps.setdefault(pool_id, {})
            if bitmap is None:
                chunks.pop(number, None)  # the watch goes on: a node made again is seen
            else:
                chunks[number] = bitmap
        self._bump(f"pool:{pool_id}")

    def _on_hosts(self, hosts: list[str]) -> None:
        """A host gone keeps its sessions watch: a children watch goes on through its node's deletion,
        so a host back is heard by the same one (a second would call back, and work, twice). Its
        sessions as that watch last said stand until it says more (its call may come first)."""
        with self._lock:
            self._hosts = set(hosts)
            for gone in set(self.sessions) - self._hosts:
                self.sessions.pop(gone, None)
            for back in self._hosts - set(self.sessions):
                if back in self._reported_sessions:
                    self.sessions[back] = self._reported_sessions[back]
        for host in hosts:
            self._register(("sessions", host))
        self._bump("hosts")

    def _on_sessions(self, host: str, names: list[str]) -> None:
        with self._lock:
            self._reported_sessions[host] = names
            if host not in self._hosts:
                return  # a host forgotten (its record deleted): not shown, dead or alive
            before = self.sessions.get(host)
            self.sessions[host] = names
            if names:
                self.died.pop(host, None)
            elif before:  # seen alive, now dead: since now
                self.died[host] = time.time()
        self._bump(f"host:{host}")

    def _on_driver_hosts(self, driver: str, hosts: list[str]) -> None:
        for host in hosts:
            self._register(("networks", driver, host))
            self._register(("endpoints", driver, host))

    # -- the keeper ----------------------------------------------------------------------------

    def _set_problem(self, problem: str | None) -> None:
        with self._lock:
            if problem == self.store_problem:
                return
            self.store_problem = problem
        if problem:
            log.warning("dashboard: store %s: %s", self.store_name, problem)
        self._bump("store")

    def _keep(self) -> None:
        while not self._stopped.wait(KEEPER_SECONDS):
            try:
                connected = self.store.connected
            except Exception:
                connected = False
            if not connected:
                self._set_problem(f"the store {self.store_name} is not reachable")
                continue
            with self._lock:
                retry, self._pending = self._pending, set()
            for what in retry:
                if what[0] == "job":
                    self._later(what[1])
                else:
                    self._register(what)
            with self._lock:
                problem = self.store_problem
            if problem and not retry:
                self._set_problem(None)

    # -- reads for the pages -------------------------------------------------------------------

    def in_parallel(self, read: Callable[[T], R], items: list[T]) -> list[R]:
        """`read` of each item, in order; the first error raised is raised here."""
        return list(self._readers.map(read, items))

    def host_names(self) -> list[str]:
        with self._lock:
            return sorted(self.sessions)

    def endpoints_with_id(self, prefix: str, limit: int) -> list[IndexedEndpoint]:
        """Endpoints whose id starts with `prefix` (at least ID_PREFIX hex digits), at most `limit`."""
        with self._lock:
            keys = sorted(k for k in self._by_id.get(prefix[:ID_PREFIX], ()) if k[2].startswith(prefix))
            return self._indexed(set(keys[:limit]))

    def _indexed(self, keys: set[tuple[str, str, str]]) -> list[IndexedEndpoint]:
        found = []
        for driver, host, endpoint_id in sorted(keys):
            endpoint = self.endpoints.get((driver, host), {}).get(endpoint_id)
            if endpoint is not None:
                found.append(IndexedEndpoint(driver, host, endpoint))
        return found

    def endpoints_of_container(self, prefix: str, limit: int) -> list[IndexedEndpoint]:
        """Endpoints whose container's id starts with `prefix` (at least ID_PREFIX hex digits)."""
        with self._lock:
            keys = sorted(k for k in self._by_container.get(prefix[:ID_PREFIX], ())
                          if self.endpoints.get(k[:2], {}).get(k[2]) and self.endpoints[k[:2]][k[2]].container_id.startswith(prefix))
            return self._indexed(set(keys[:limit]))

    def endpoints_named(self, name: str) -> list[IndexedEndpoint]:
        """Endpoints of containers called `name`: exactly, else whatever its case (docker's names are
        case-sensitive; a query often is not)."""
        with self._lock:
            found = self._indexed(set(self._by_name.get(name.lower(), ())))
        return [e for e in found if e.endpoint.container_name == name] or found

    def endpoints_at(self, ip: str) -> list[IndexedEndpoint]:
        with self._lock:
            return self._indexed(set(self._by_ip.get(ip, ())))

    def endpoints_with_mac(self, mac: str) -> list[IndexedEndpoint]:
        with self._lock:
            return self._indexed(set(self._by_mac.get(mac.lower(), ())))

    def host_networks(self, host: str) -> list[tuple[str, SegmentNetwork]]:
        with self._lock:
            return [(driver, n) for driver in LAYOUTS for n in self.networks.get((driver, host), {}).values()]

    def endpoint_count(self, host: str) -> dict[str, int]:
        with self._lock:
            return {driver: len(self.endpoints[(driver, host)]) for driver in LAYOUTS if self.endpoints.get((driver, host))}
