"""A watch the ZooKeeper store hands out, kept going through connection trouble.

A ZooKeeper watch fires once, and kazoo drops every one of them when the connection goes (SUSPENDED),
so a watch that should go on has to be armed again: after each event, and after each (re)connection.
Kazoo's recipes did that, but `ChildrenWatch` went silent for good when a re-read was answered just
before a drop: it took the answer for a set watch after the drop's SUSPENDED had cleared that mark, so
the reconnection did not arm it, though kazoo had dropped the watch with the connection. Both recipes
also retried a failed read without limit and waited for its answer with no timeout, on kazoo's event
thread or on the caller's (`watch_value` could block a handler through an outage). Here the store owns
the re-arming: after every (re)connection it arms each of its watches again
(`ZooKeeperStore._rearm_watches`), every read has the store's timeout, and a read that fails while the
connection is up is tried again shortly. Arming is idempotent (kazoo keeps one watcher per function and
path; the callback is called only when what is read differs from what it was last given), so arming
too often costs a read, never a duplicate call.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import EventType

from acsnet.store.base import Versioned

log = logging.getLogger(__name__)

# After a failed read while connected (a slow server): soon, but not a busy loop against it.
RETRY_SECONDS = 1.0

_NOTHING_REPORTED = object()


class ZooKeeperWatch:
    """A node's children (`children=True`) or value, reported to `callback` now and after every change,
    until the callback returns False. A children watch goes on through its node's deletion (kazoo's
    ended there, so a node made again went unheard): an absent node reports `[]`, with an exists watch
    that says when it is made again."""

    def __init__(self, client, path: str, callback: Callable, *, children: bool, timeout: float):
        self.path = path
        self._client = client
        self._callback = callback
        self._children = children
        self._timeout = timeout
        self._lock = threading.Lock()  # one read-and-report at a time: reports keep the reads' order
        self._reported = _NOTHING_REPORTED
        self.ended = False

    def end(self) -> None:
        self.ended = True

    def arm(self) -> None:
        """Read the node with a ZooKeeper watch on it, and report it if it changed. Raises kazoo's errors."""
        with self._lock:
            if self.ended:
                return
            current = self._read_children() if self._children else self._read_value()
            if self.ended or current == self._reported:  # ended during the read: no call after `end`
                return
            self._reported = current
            if self._callback(current) is False:
                self.ended = True

    def arm_or_retry(self) -> None:
        """Arm, and on failure try again shortly if connected; if not, the reconnection arms it."""
        try:
            self.arm()
        except (KazooException, KazooTimeoutError) as e:
            if self.ended or not self._client.connected:
                return
            log.warning("store watch on %s: read failed (%s); trying again in %gs", self.path, type(e).__name__, RETRY_SECONDS)
            retry = threading.Timer(RETRY_SECONDS, self.arm_or_retry)
            retry.daemon = True
            retry.start()
        except Exception:  # the callback's own failure: its watch is set, later changes still come
            log.exception("store watch on %s: callback failed", self.path)

    def _on_event(self, event) -> None:
        """On kazoo's event thread. NONE: kazoo dropped the watch with the connection; the reconnection
        arms it again (a read now would wait for the connection on this thread)."""
        if event.type != EventType.NONE:
            self.arm_or_retry()

    def _read_children(self) -> list[str]:
        while True:
            try:
                return sorted(self._client.get_children_async(self.path, self._on_event).get(timeout=self._timeout))
            except NoNodeError:
                # As `_read_value`: the exists watch says when the node is made; made since, read again.
                if self._client.exists_async(self.path, self._on_event).get(timeout=self._timeout) is None:
                    return []

    def _read_value(self) -> Versioned | None:
        while True:
            try:
                data, stat = self._client.get_async(self.path, self._on_event).get(timeout=self._timeout)
                return Versioned(data or b"", stat.version)
            except NoNodeError:
                # An exists watch says when it is made; made since the read, it is read again.
                if self._client.exists_async(self.path, self._on_event).get(timeout=self._timeout) is None:
                    return None
