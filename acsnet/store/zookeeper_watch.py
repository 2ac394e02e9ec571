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

Watches are read together (`arm_together`): every read is sent before any answer is waited for, and
ZooKeeper answers them in order on the one session, so arming hundreds after a reconnection costs a
round trip or two (an absent node's exists check is the second), not one per watch in turn.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Callable, Iterable

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
        self._reads = itertools.count(1)  # each read's number: an answer older than one reported is dropped
        self._lock = threading.Lock()  # one report at a time, each of an answer newer than the last
        self._newest_reported = 0
        self._reported = _NOTHING_REPORTED
        self.ended = False

    def end(self) -> None:
        self.ended = True

    def arm(self) -> None:
        """Read the node with a ZooKeeper watch on it, and report it if it changed. Raises kazoo's errors
        and the callback's."""
        for _watch, error in arm_together([self]):
            raise error

    def arm_or_retry(self) -> None:
        """Arm, and on failure try again shortly if connected; if not, the reconnection arms it."""
        arm_or_retry_together([self])

    def _on_event(self, event) -> None:
        """On kazoo's event thread. NONE: kazoo dropped the watch with the connection; the reconnection
        arms it again (a read now would wait for the connection on this thread)."""
        if event.type != EventType.NONE:
            self.arm_or_retry()

    def _send_read(self):
        if self._children:
            return self._client.get_children_async(self.path, self._on_event)
        return self._client.get_async(self.path, self._on_event)

    def _read_answer(self, answer) -> list[str] | Versioned:
        if self._children:
            return sorted(answer)
        data, stat = answer
        return Versioned(data or b"", stat.version)

    def _report(self, read: int, current) -> None:
        with self._lock:
            if self.ended or read < self._newest_reported:
                return  # ended meanwhile (no call after `end`), or a newer read was reported first
            self._newest_reported = read
            if current == self._reported:
                return
            self._reported = current
            if self._callback(current) is False:
                self.ended = True


def arm_together(watches: Iterable[ZooKeeperWatch]) -> list[tuple[ZooKeeperWatch, Exception]]:
    """Arm each watch: its read (with a ZooKeeper watch) sent, then every answer waited for, within the
    store's timeout from the sending, and reported. An absent node gets an exists watch, also sent
    together; made since its read, it is read again. The watches that failed, with why (kazoo's error
    or the callback's), are returned; the others are armed."""
    failed: list[tuple[ZooKeeperWatch, Exception]] = []
    to_read = [(watch, next(watch._reads)) for watch in watches if not watch.ended]
    while to_read:
        reads = []
        for watch, number in to_read:
            try:
                reads.append((watch, number, watch._send_read()))
            except Exception as e:  # kazoo's answer is usually a failed result, but a closed client raises
                failed.append((watch, e))
        deadline = time.monotonic() + max((watch._timeout for watch, _number, _sent in reads), default=0.0)
        checks = []
        for watch, number, sent in reads:
            try:
                try:
                    current = watch._read_answer(sent.get(timeout=max(0.0, deadline - time.monotonic())))
                except NoNodeError:
                    checks.append((watch, number, watch._client.exists_async(watch.path, watch._on_event)))
                    continue
                watch._report(number, current)
            except Exception as e:
                failed.append((watch, e))
        to_read = []
        deadline = time.monotonic() + max((watch._timeout for watch, _n, _s in checks), default=0.0)
        for watch, number, sent in checks:
            try:
                if sent.get(timeout=max(0.0, deadline - time.monotonic())) is None:
                    watch._report(number, [] if watch._children else None)
                else:
                    to_read.append((watch, number))  # made since its read: read again
            except Exception as e:
                failed.append((watch, e))
    return failed


def arm_or_retry_together(watches: Iterable[ZooKeeperWatch]) -> None:
    """`arm_together`; the reads that failed while connected are tried again shortly, together (on a
    timer's thread), those that failed while not are left to the reconnection, and a callback's failure
    is logged (its watch is set: later changes still come)."""
    retried = []
    for watch, error in arm_together(watches):
        if not isinstance(error, (KazooException, KazooTimeoutError)):
            log.error("store watch on %s: callback failed", watch.path, exc_info=error)
        elif not watch.ended and watch._client.connected:
            log.warning("store watch on %s: read failed (%s); trying again in %gs", watch.path, type(error).__name__, RETRY_SECONDS)
            retried.append(watch)
    if retried:
        retry = threading.Timer(RETRY_SECONDS, arm_or_retry_together, (retried,))
        retry.daemon = True
        retry.start()
