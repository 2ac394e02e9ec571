"""The segment agent's worker thread: the one loop that handles watch events, the datapath's own work,
orphaned endpoints and the periodic full reconcile (which repairs flows and ports someone removed).
Request handlers never wait on it, except for the flows of their own change."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Protocol

log = logging.getLogger(__name__)

ORPHAN_CHECK_SECONDS = 5.0


class Passes(Protocol):
    """What the worker runs; the segment agent implements it."""

    def catch_up(self) -> None:
        """Bring the state in line with the store's watches and the datapath's own work."""

    def sweep_orphans(self) -> None:
        """Remove endpoints no container joined."""

    def reconcile(self) -> None:
        """Check ports and flows against the switch and install the whole state again."""


class Worker:
    def __init__(self, name: str, passes: Passes, *, resync_seconds: float, next_wake: Callable[[], float | None]):
        self.name = name
        self.passes = passes
        self.resync_seconds = resync_seconds
        self._next_wake = next_wake
        self.woken = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self.woken.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.woken.set()

    def _sleep_seconds(self) -> float:
        due = self._next_wake()
        sleep = self.resync_seconds / 3 if due is None else min(self.resync_seconds / 3, due)
        return max(0.05, min(sleep, ORPHAN_CHECK_SECONDS))

    def _work(self) -> None:
        last_full = last_orphan_check = time.monotonic()
        while not self._stopped.is_set():
            self.woken.wait(timeout=self._sleep_seconds())
            self.woken.clear()
            try:
                self.passes.catch_up()
                if time.monotonic() - last_orphan_check >= ORPHAN_CHECK_SECONDS:
                    last_orphan_check = time.monotonic()
                    self.passes.sweep_orphans()
                if time.monotonic() - last_full > self.resync_seconds:
                    last_full = time.monotonic()
                    self.passes.reconcile()
            except Exception:  # the agent must outlive a store outage or an OVS hiccup
                log.exception("%s pass failed; retrying", self.name)
                time.sleep(1)
