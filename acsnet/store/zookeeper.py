"""The ZooKeeper store (kazoo): the multi-host engine.

Every call goes through kazoo's async API and waits at most the operation timeout, so a ZooKeeper
outage turns into a fast `StoreUnavailable` instead of a handler that blocks dockerd. The client keeps
reconnecting in the background forever; a process never exits because ZooKeeper is away. When a
session expires (a long outage), liveness is registered again as soon as a new session is up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import selectors
import threading
import time
from typing import Callable, Sequence
from urllib.parse import parse_qs, urlsplit

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    AuthFailedError,
    RuntimeInconsistency,
    BadVersionError,
    ConnectionLoss,
    KazooException,
    LockTimeout,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)
from kazoo.handlers.threading import KazooTimeoutError, SequentialThreadingHandler
from kazoo.handlers.utils import selector_select
from kazoo.protocol.states import KeeperState
from kazoo.security import make_acl, make_digest_acl

from acsnet.errors import StoreUnavailable
from acsnet.store.base import (
    ROOT,
    Check,
    Create,
    Delete,
    LeavesChange,
    Operation,
    SetValue,
    Store,
    Versioned,
    join,
    validate_path,
)
from acsnet.store import liveness
from acsnet.store.liveness import SESSION_LAYOUTS, HostRecord, HostSessions
from acsnet.store.zookeeper_leaves import LeafEvents, LeavesWatch
from acsnet.store.zookeeper_reads import PATHS_PER_REQUEST, MultiRead
from acsnet.store.zookeeper_watch import ZooKeeperWatch, arm_or_retry_together

log = logging.getLogger(__name__)

RECONNECT_GRACE_SECONDS = 3.0


class PollingHandler(SequentialThreadingHandler):
    """kazoo's threading handler, waiting on its sockets with one poll(2) instead of kazoo's new epoll
    instance per wait (create, register, wait, close: a file descriptor made and dropped in the
    process's shared table, three waits to a response). 10-12 us a wait against 26-32 measured here,
    and the largest share of kazoo's connection threads' samples (py-spy) with 150 simulated hosts in a
    process (`benchmarks/scale`). poll, unlike select(2), takes descriptors above 1,024, which is why
    kazoo left select."""

    _POLL = type("PollSelectors", (), {"EVENT_READ": selectors.EVENT_READ, "EVENT_WRITE": selectors.EVENT_WRITE,
                                       "DefaultSelector": selectors.PollSelector})

    def select(self, *args, **kwargs):
        return selector_select(*args, selectors_module=self._POLL, **kwargs)


# Results of a transaction that mean "someone else changed it first", not "the store is broken".
# ZooKeeper marks the operations after the failed one RuntimeInconsistency (before it, RolledBack).
_CONFLICTS = (NodeExistsError, BadVersionError, NoNodeError, NotEmptyError, RolledBackError, RuntimeInconsistency)


@dataclasses.dataclass(frozen=True)
class ZkTarget:
    hosts: str  # kazoo's host string, h1:2181,h2:2181
    chroot: str
    username: str | None = None
    password: str | None = None
    sasl: bool = False  # SASL (DIGEST-MD5) rather than ZooKeeper's digest scheme

    def client_options(self) -> dict:
        if self.username is None:
            return {}
        if self.sasl:
            return {"sasl_options": {"mechanism": "DIGEST-MD5", "username": self.username, "password": self.password}}
        return {"auth_data": [("digest", f"{self.username}:{self.password}")]}

    def acl(self) -> list | None:
        """Nodes readable and writable by this identity alone (None: ZooKeeper's open default)."""
        if self.username is None:
            return None
        if self.sasl:
            return [make_acl("sasl", self.username, all=True)]
        return [make_digest_acl(self.username, self.password, all=True)]


def _describe(error: Exception) -> str:
    if isinstance(error, AuthFailedError):
        return "authentication failed: check the user and password in the store URL"
    return f"{type(error).__name__} {error}".strip()


def parse_zk_url(url: str) -> ZkTarget:
    """`zk://[user:password@]h1:2181,h2:2181/chroot[?auth=sasl]`."""
    parts = urlsplit(url)
    if parts.scheme != "zk" or not parts.netloc:
        raise ValueError(f"not a ZooKeeper URL: {url!r} (expected zk://host:port[,host:port]/chroot)")
    query = parse_qs(parts.query)
    unknown = set(query) - {"auth"}
    if unknown or query.get("auth", ["digest"])[0] not in ("digest", "sasl"):
        raise ValueError("the only ZooKeeper URL option is auth=digest or auth=sasl")
    netloc, username, password = parts.netloc, None, None
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        if ":" not in credentials:
            raise ValueError("ZooKeeper credentials must be user:password")
        username, password = credentials.split(":", 1)
    sasl = query.get("auth", ["digest"])[0] == "sasl"
    if sasl and username is None:
        raise ValueError("auth=sasl needs user:password@ in the ZooKeeper URL")
    return ZkTarget(netloc, parts.path.rstrip("/"), username, password, sasl)


class ZooKeeperStore(Store):
    def __init__(self, url: str, *, timeout: float = 5.0, session_timeout: float = 10.0):
        self._target = target = parse_zk_url(url)
        self.url_for_logs = f"zk://{target.hosts}{target.chroot}"  # never the credentials
        self.timeout = timeout
        self._chroot = target.chroot
        # With credentials, every node acsnet makes (the chroot too) is readable and writable by that
        # identity only: other ZooKeeper users can neither see nor change the network's state.
        self._acl = target.acl()
        self._client = KazooClient(
            hosts=target.hosts + target.chroot,
            timeout=session_timeout,
            handler=PollingHandler(),
            default_acl=self._acl,
            **target.client_options(),
            connection_retry={"max_tries": -1, "delay": 0.2, "backoff": 2, "max_delay": 2},
            # One try (kazoo counts the first; 0 would retry without limit): handlers must never block.
            # The store's own calls wait through `_wait` and its watches re-arm themselves.
            command_retry={"max_tries": 1},
        )
        self._leaf_events = LeafEvents(self._client)
        self._session_lost = False
        self._registrations: list[tuple[str, str, dict]] = []
        # A registration failed and the session lives on: the next connection makes it (no new session
        # would come to; meanwhile every other host reads this one as dead).
        self._registration_pending = False
        self._registration_lock = threading.Lock()
        self._watches: list[ZooKeeperWatch] = []  # every watch handed out and not ended
        self._watches_lock = threading.Lock()
        self._chroot_ready = threading.Event()
        # The constructor and the first CONNECTED's re-registration both make sure of the chroot: one of
        # them makes it, the other finds it ready (two root clients raced on every open before this).
        self._chroot_lock = threading.Lock()
        self._connected = threading.Event()
        self._client.add_listener(self._on_state)
        self._problem = ""  # why the store is not connected, for the errors it raises
        connected = self._client.start_async()
        if connected.wait(timeout):
            try:
                self._ensure_chroot()
            except KazooException as e:  # never fatal: the plugin serves and says what is wrong
                self._problem = _describe(e)
                log.error("store=%s cannot be used: %s", self.url_for_logs, self._problem)
        else:
            self._problem = "not reachable"
            log.warning("store=%s not reachable yet; retrying in the background", self.url_for_logs)

    # -- plumbing --------------------------------------------------------------------------------

    def _ensure_chroot(self) -> None:
        with self._chroot_lock:
            if not self._chroot_ready.is_set():
                self._make_chroot()
                self._chroot_ready.set()

    def _make_chroot(self) -> None:
        if self._chroot:
            # The chroot must exist before any chrooted call; make it through an unchrooted client.
            root = KazooClient(hosts=self._target.hosts, handler=PollingHandler(), **self._target.client_options())
            try:
                # Not root.start(): its timeout is no KazooException (it escaped the callers' handling),
                # and it hides a refused SASL login, after which kazoo stops connecting. The refusal is
                # seen by a listener: the client's state is AUTH_FAILED only while it is reported.
                refused = []
                root.add_listener(lambda _state: refused.append(root.client_state == KeeperState.AUTH_FAILED))
                root.start_async().wait(self.timeout)
                if not root.connected:
                    if any(refused):
                        raise AuthFailedError()
                    raise ConnectionLoss(f"no connection within {self.timeout:g}s")
                root.ensure_path(self._chroot, acl=self._acl)
            finally:
                root.stop()
                root.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self._chroot_ready.is_set()

    def _wait(self, async_result, operation: str):
        started = time.monotonic()
        try:
            return async_result.get(timeout=self.timeout)
        except KazooTimeoutError as e:
            raise StoreUnavailable(f"store {self.url_for_logs} did not answer within {self.timeout:g}s") from e
        except _CONFLICTS:
            raise
        except KazooException as e:
            raise StoreUnavailable(f"store {self.url_for_logs}: {type(e).__name__} {e}".rstrip()) from e
        finally:
            self._observe(operation, started)

    def _on_state(self, state) -> None:
        """Kazoo calls this on its own thread and it must not block: re-registration is spawned."""
        if state == KazooState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        if state == KazooState.LOST:
            self._session_lost = True
        elif state == KazooState.CONNECTED and (self._session_lost or not self._chroot_ready.is_set()
                                                 or self._registration_pending):
            self._session_lost = False
            self._client.handler.spawn(self._after_new_session)
        if state == KazooState.CONNECTED:
            # Kazoo dropped every ZooKeeper watch with the connection, and a re-read cut by it failed.
            self._client.handler.spawn(self._rearm_watches)

    def _after_new_session(self) -> None:
        """After a new session, or a connection back after a registration failed: every registration made
        (again: each is idempotent)."""
        try:
            self._ensure_chroot()
            for host_id, session_name, info in list(self._registrations):
                self._register(host_id, session_name, info)
            self._registration_pending = False
            self._problem = ""
            log.info("store=%s connected; liveness registered", self.url_for_logs)
        except KazooException as e:
            self._registration_pending = True
            self._problem = _describe(e)
            log.error("store=%s registration failed (%s); will retry on the next connection", self.url_for_logs, self._problem)
        except StoreUnavailable as e:  # a call's own timeout or a lost connection, as `_wait` reports them
            self._registration_pending = True
            log.error("store=%s registration failed (%s); will retry on the next connection", self.url_for_logs, e.message)
        except Exception:
            self._registration_pending = True
            log.exception("store=%s registration failed; will retry on the next connection", self.url_for_logs)

    def _rearm_watches(self) -> None:
        with self._watches_lock:
            self._watches = [watch for watch in self._watches if not watch.ended]
            watches = list(self._watches)
        arm_or_retry_together(watches)  # read together: one round trip for all, not one each

    def _require_connection(self) -> None:
        """A moment's wait covers kazoo moving to another ensemble member; an outage still fails fast."""
        grace = min(self.timeout, RECONNECT_GRACE_SECONDS)
        if not self._connected.wait(grace) or not self._chroot_ready.wait(grace):
            why = f" ({self._problem})" if self._problem else ""
            raise StoreUnavailable(f"store {self.url_for_logs} is not connected{why}")

    # -- the interface ---------------------------------------------------------------------------

    def create(self, path: str, value: bytes = b"", *, ephemeral: bool = False) -> bool:
        validate_path(path)
        self._require_connection()
        try:
            self._wait(self._client.create_async(path, value, ephemeral=ephemeral, makepath=True), 'create')
            return True
        except NodeExistsError:
            return False

    def get(self, path: str) -> Versioned | None:
        self._require_connection()
        try:
            value, stat = self._wait(self._client.get_async(path), 'get')
        except NoNodeError:
            return None
        return Versioned(value or b"", stat.version)

    def get_many(self, paths: Sequence[str]) -> list[Versioned | None]:
        """One multiRead request per `PATHS_PER_REQUEST` paths (acsnet/store/zookeeper_reads.py), every
        request sent before the first answer is awaited."""
        if len(paths) < 2:
            self._require_connection()
            return [self.get(path) for path in paths]
        return [None if answer is None else Versioned(answer[0] or b"", answer[1].version)
                for answer in self._read_many(paths, children=False, name="get_many")]

    def children_many(self, paths: Sequence[str]) -> list[list[str]]:
        """As `get_many`: one multiRead of getChildren per `PATHS_PER_REQUEST` paths."""
        if len(paths) < 2:
            self._require_connection()
            return [self.children(path) for path in paths]
        return [[] if names is None else sorted(names)
                for names in self._read_many(paths, children=True, name="children_many")]

    def _read_many(self, paths: Sequence[str], *, children: bool, name: str) -> list:
        """Each path's answer in order, None for a node that is not there."""
        self._require_connection()
        pending = []
        for start in range(0, len(paths), PATHS_PER_REQUEST):
            async_result = self._client.handler.async_result()
            # kazoo's own calls send their requests so; it has no call of its own for a multiRead.
            chunk = paths[start:start + PATHS_PER_REQUEST]
            self._client._call(MultiRead([self._in_chroot(path) for path in chunk], children), async_result)
            pending.append(async_result)
        found = []
        for async_result in pending:
            for answer in self._wait(async_result, name):
                if isinstance(answer, NoNodeError):
                    found.append(None)
                elif isinstance(answer, KazooException):
                    raise StoreUnavailable(f"store {self.url_for_logs}: {type(answer).__name__} in a batch of reads")
                else:
                    found.append(answer)
        return found

    def _in_chroot(self, path: str) -> str:
        """The server's path of a store path (kazoo's calls add the chroot themselves)."""
        return (self._client.chroot + path).rstrip("/") or "/"

    def compare_and_set(self, path: str, value: bytes, version: int) -> bool:
        self._require_connection()
        try:
            self._wait(self._client.set_async(path, value, version), 'set')
            return True
        except (BadVersionError, NoNodeError):
            return False

    def delete(self, path: str, version: int = -1, *, recursive: bool = False) -> bool:
        self._require_connection()
        if recursive:
            if self.get(path) is None:
                return False
            for node in self.walk(path):
                with contextlib.suppress(NoNodeError):
                    self._wait(self._client.delete_async(node), 'delete')
            return True
        try:
            self._wait(self._client.delete_async(path, version), 'delete')
            return True
        except (BadVersionError, NoNodeError, NotEmptyError):
            return False

    def children(self, path: str) -> list[str]:
        self._require_connection()
        try:
            return sorted(self._wait(self._client.get_children_async(path), 'children'))
        except NoNodeError:
            return []

    def commit(self, operations: Sequence[Operation]) -> bool:
        self._require_connection()
        transaction = self._client.transaction()
        for op in operations:
            if isinstance(op, Create):
                transaction.create(op.path, op.value, ephemeral=op.ephemeral)
            elif isinstance(op, SetValue):
                transaction.set_data(op.path, op.value, op.version)
            elif isinstance(op, Delete):
                transaction.delete(op.path, op.version)
            elif isinstance(op, Check):
                transaction.check(op.path, op.version)
            else:
                raise TypeError(f"unknown store operation {op!r}")
        results = self._wait(transaction.commit_async(), 'commit')
        failures = [r for r in results if isinstance(r, Exception)]
        if not failures:
            return True
        if all(isinstance(f, _CONFLICTS) for f in failures):
            return False
        raise StoreUnavailable(f"store {self.url_for_logs}: transaction failed: {failures[0]!r}")

    def watch_value(self, path: str, callback: Callable[[Versioned | None], None]) -> None:
        self._keep_watch(ZooKeeperWatch(self._client, path, callback, children=False, timeout=self.timeout))

    def watch_children(self, path: str, callback: Callable[[list[str]], None]) -> None:
        self._keep_watch(ZooKeeperWatch(self._client, path, callback, children=True, timeout=self.timeout))

    def watch_leaves(self, path: str, callback: Callable[[LeavesChange], None]) -> None:
        self._keep_watch(LeavesWatch(self._client, path, self._in_chroot(path), callback, timeout=self.timeout,
                                     events=self._leaf_events))

    def _keep_watch(self, watch: ZooKeeperWatch) -> None:
        """The first report is made now, on the caller's thread; if it fails, the caller is told and the
        watch is ended (no watch calls back after its `watch_*` call raised). Kept before it is armed, so
        a reconnection meanwhile arms it again."""
        self._require_connection()
        with self._watches_lock:
            self._watches = [kept for kept in self._watches if not kept.ended] + [watch]
        try:
            watch.arm()
        except KazooTimeoutError as e:
            watch.end()
            raise StoreUnavailable(f"store {self.url_for_logs} did not answer within {self.timeout:g}s") from e
        except KazooException as e:
            watch.end()
            raise StoreUnavailable(f"store {self.url_for_logs}: {type(e).__name__} {e}".rstrip()) from e

    def end_watches(self, path: str) -> None:
        below = path.rstrip("/") + "/"
        with self._watches_lock:
            for watch in self._watches:
                if watch.path == path or watch.path.startswith(below):
                    watch.end()
            self._watches = [watch for watch in self._watches if not watch.ended]

    def watched_paths(self) -> list[str]:
        with self._watches_lock:
            return sorted(watch.path for watch in self._watches if not watch.ended)

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float):
        self._require_connection()
        lock = self._client.Lock(join(ROOT, "locks", name), identifier=f"{os.uname().nodename}:{os.getpid()}")
        try:
            taken = lock.acquire(timeout=timeout)
        except LockTimeout:
            taken = False
        except KazooException as e:
            raise StoreUnavailable(f"lock {name}: {type(e).__name__}") from e
        if not taken:
            raise StoreUnavailable(f"lock {name} not taken within {timeout:g}s")
        try:
            yield
        finally:
            with contextlib.suppress(KazooException):
                lock.release()

    def register_host(self, host_id: str, session_name: str, info: dict) -> None:
        """Raises if the store cannot make it now; the store makes it once it can (next connection)."""
        self._registrations.append((host_id, session_name, info))
        try:
            self._register(host_id, session_name, info)
        except BaseException:
            self._registration_pending = True
            if self.connected:  # cut by a slow answer, not a lost connection: no state change will come
                self._client.handler.spawn(self._after_new_session)
            raise

    def _register(self, host_id: str, session_name: str, info: dict) -> None:
        """Idempotent, and serialised: it runs from `register_host` and again from the connection
        listener after a new session, possibly at the same time."""
        with self._registration_lock:
            HostRecord.write(self, host_id, info)
            name = HostSessions.name(session_name, os.getpid())
            for layout in SESSION_LAYOUTS:
                if layout.write(self, host_id, name):
                    continue
                try:
                    stat = self._wait(self._client.exists_async(layout.key(host_id, name)), 'exists')
                except NoNodeError:
                    stat = None
                if stat is not None and stat.ephemeralOwner == self._client.client_id[0]:
                    continue  # ours already
                # Left by this process's previous, expired session and not yet reaped: replace it.
                layout.clear(self, host_id, name)
                layout.write(self, host_id, name)

    def live_hosts(self) -> set[str]:
        return liveness.live_hosts(self)

    def close(self) -> None:
        for watch in list(self._watches):
            watch.end()
        with contextlib.suppress(Exception):
            self._client.stop()
            self._client.close()
