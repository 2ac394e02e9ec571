"""The store interface every acsnet component shares.

A small hierarchical key-value model with versions, shaped after ZooKeeper because ZooKeeper is the
multi-host engine: paths like `/acsnet/ipam/pools/P`, values are bytes, every node has a version that
starts at 0 and grows on each write, and writes can be made conditional on it (compare-and-set).
Several writes can be committed atomically (`commit`), which is how the IPAM keeps its bitmap and its
address records in step without a lock on the hot path.

Liveness: a process registers its host with `register_host`; the host is alive while at least one
registered session of it is (for ZooKeeper, an ephemeral node of a live session).

Every call is bounded by the store's operation timeout and raises `StoreUnavailable` past it, since
dockerd waits on a plugin forever.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

ROOT = "/acsnet"


@dataclasses.dataclass(frozen=True)
class Versioned:
    """A node's value and the version a compare-and-set must name to replace it."""

    value: bytes
    version: int

    def json(self):
        return json.loads(self.value) if self.value else None


@dataclasses.dataclass(frozen=True)
class LeavesChange:
    """What a leaves watch (`Store.watch_leaves`) reports: every name (`names`; at the start, and each
    time the store reads the list again), or else the names made and deleted since its last report."""

    names: frozenset[str] | None = None
    made: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    # The values of the leaves it makes (`made`, or every name of a whole list), where its source read
    # them already (a relay, `acsnet.store.relayed`), so that the caller need not read them again; a
    # name missing from it was gone when read. None: the caller reads them from the store if it wants them.
    values: Mapping[str, bytes] | None = dataclasses.field(default=None, compare=False)

    def applied_to(self, names: set[str]) -> set[str]:
        """The names after this change (`names` itself, changed, unless this is a whole list)."""
        if self.names is not None:
            return set(self.names)
        names.difference_update(self.deleted)
        names.update(self.made)
        return names


@dataclasses.dataclass(frozen=True)
class Create:
    path: str
    value: bytes = b""
    ephemeral: bool = False


@dataclasses.dataclass(frozen=True)
class SetValue:
    path: str
    value: bytes
    version: int


@dataclasses.dataclass(frozen=True)
class Delete:
    path: str
    version: int = -1


@dataclasses.dataclass(frozen=True)
class Check:
    path: str
    version: int


Operation = Create | SetValue | Delete | Check


def encode(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def read_each(store: "Store", names, path_of: Callable[[str], str], parse: Callable[[Any], Any]) -> dict:
    """Each listed child's value, by name: its node at `path_of(name)` read in one batch (`get_many`) and
    its JSON given to `parse`. A node gone between the listing and the read, or empty, is left out (a
    record removed meanwhile is no record, not an error): how every state module reads all."""
    names = list(names)
    nodes = store.get_many([path_of(name) for name in names])
    found = {}
    for name, node in zip(names, nodes):
        data = node.json() if node is not None else None
        if data:
            found[name] = parse(data)
    return found


def join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]])


def validate_path(path: str) -> None:
    if not path.startswith("/") or path != "/" and path.endswith("/") or "//" in path:
        raise ValueError(f"bad store path {path!r}")


class Store(abc.ABC):
    """What drivers and the IPAM may ask of a store. Paths are absolute; parents are made as needed."""

    # Called with (operation, seconds) after every store call, for metrics; None when nobody listens.
    observer: Callable[[str, float], None] | None = None

    @property
    def connected(self) -> bool:
        """Whether calls can succeed now (the session is up)."""
        return True

    def _observe(self, operation: str, started: float) -> None:
        if self.observer is not None:
            self.observer(operation, time.monotonic() - started)

    @abc.abstractmethod
    def create(self, path: str, value: bytes = b"", *, ephemeral: bool = False) -> bool:
        """Create the node if it is absent (parents too). True if this call created it."""

    @abc.abstractmethod
    def get(self, path: str) -> Versioned | None:
        """The node's value and version, or None if it does not exist."""

    def get_many(self, paths: Sequence[str]) -> list[Versioned | None]:
        """`get` of each path, in order: a store that can sends them as one batch (a burst of watch
        events is read in one round trip, not one per record)."""
        return [self.get(path) for path in paths]

    def children_many(self, paths: Sequence[str]) -> list[list[str]]:
        """`children` of each path, in order: a store that can sends them as one batch."""
        return [self.children(path) for path in paths]

    @abc.abstractmethod
    def compare_and_set(self, path: str, value: bytes, version: int) -> bool:
        """Replace the value if the node still has `version`. False if it moved on or is gone."""

    @abc.abstractmethod
    def delete(self, path: str, version: int = -1, *, recursive: bool = False) -> bool:
        """Delete the node (any version if -1). False if it was absent, changed, or has children
        and `recursive` is false."""

    @abc.abstractmethod
    def children(self, path: str) -> list[str]:
        """Names of the node's children, sorted; empty if the node does not exist."""

    @abc.abstractmethod
    def commit(self, operations: Sequence[Operation]) -> bool:
        """Apply all operations atomically. False, with nothing applied, if any create finds its
        node present or any version check fails; parents of created nodes must already exist."""

    @abc.abstractmethod
    def watch_value(self, path: str, callback: Callable[[Versioned | None], None]) -> None:
        """Call `callback` now and after every change of the node's value (None once deleted), until it
        returns False. It goes on through connection trouble: after a reconnection it is called with the
        value then if that differs from the last one it was given."""

    @abc.abstractmethod
    def watch_children(self, path: str, callback: Callable[[list[str]], None]) -> None:
        """Call `callback` now and after every change of the node's children, until it returns False,
        through connection trouble as `watch_value` does. The watch is of the path: while the node is
        absent (not made yet, or deleted) it reports `[]`, and it goes on when the node is made again,
        so a caller never sets a second watch on a path it watches (a segment's node, a split network's
        parent, a host's sessions may go with their last child and come back). It never makes the node."""

    def watch_leaves(self, path: str, callback: Callable[[LeavesChange], None]) -> None:
        """`watch_children` of a node whose children have none (a segment's records), reported as
        `LeavesChange`s, in order: each one either the whole list or what was made and deleted since
        the last. A store that can hears each child made or deleted and hands over that alone
        (`ZooKeeperStore`): at 1,000 hosts a segment holds 10,000 records, and one record made was the
        whole list copied, handed over and compared again on every host following it. Here each
        report is the whole list."""
        self.watch_children(path, lambda names: callback(LeavesChange(names=frozenset(names))))

    @abc.abstractmethod
    def end_watches(self, path: str) -> None:
        """End this process's watches of `path` and of every node below it: none calls back after this
        returns, but one calling back now. For a subtree gone for good: a watch there reports `[]` or
        None once and then waits for its node to be made again, so its callback, never called, cannot
        end it by returning False."""

    @abc.abstractmethod
    def watched_paths(self) -> list[str]:
        """The paths of this process's watches that have not ended, sorted, one entry per watch."""

    @abc.abstractmethod
    def lock(self, name: str, timeout: float) -> contextlib.AbstractContextManager:
        """A mutual-exclusion lock shared by every process on the store; raises
        `StoreUnavailable` if it cannot be taken within `timeout` seconds."""

    @abc.abstractmethod
    def register_host(self, host_id: str, session_name: str, info: dict) -> None:
        """Record this process as a live session of `host_id` until it closes or dies."""

    @abc.abstractmethod
    def live_hosts(self) -> set[str]:
        """Hosts with at least one live session."""

    def host_alive(self, host_id: str) -> bool:
        from acsnet.store import liveness  # liveness builds on this interface

        return liveness.host_alive(self, host_id)

    @abc.abstractmethod
    def close(self) -> None:
        """End the session: its ephemeral nodes go, so its host may stop being alive."""

    # Helpers built on the primitives, shared by every backend.

    def put(self, path: str, value: bytes) -> None:
        """The node holds `value`: made if absent, replaced if it holds another (the last writer wins)."""
        if self.create(path, value):
            return
        current = self.get(path)
        if current is not None and current.value != value:
            self.compare_and_set(path, value, current.version)

    def get_json(self, path: str):
        node = self.get(path)
        return None if node is None else node.json()

    def walk(self, path: str) -> Iterator[str]:
        """Every node below `path`, children before their parent (the order to delete them in)."""
        for name in self.children(path):
            yield from self.walk(join(path, name))
        yield path
