"""The segment agent's worker thread: the one loop that handles watch events, the datapath's own work,
orphaned endpoints and the periodic full reconcile (which repairs flows and ports someone removed).
Request handlers never wait on it, except for the flows of their own change."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Protocol

from acsnet.errors import AcsnetError

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

    def switch_restarted(self) -> bool:
        """Whether the switch started again since the last pass (it lost the flows): reconcile now."""


class Worker:
    def __init__(self, name: str, passes: Passes, *, resync_seconds: float, next_wake: Callable[[], float | None]):
        self.name = name
        self.passes = passes
        self.resync_seconds = resync_seconds
        self._next_wake = next_wake
        self.woken = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: str | None = None  # what the passes last failed with (said once), until one succeeds

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
                if self.passes.switch_restarted():
                    last_full = float("-inf")  # reconciled at this pass, or the next that gets that far
                self.passes.catch_up()
                if time.monotonic() - last_orphan_check >= ORPHAN_CHECK_SECONDS:
                    last_orphan_check = time.monotonic()
                    self.passes.sweep_orphans()
                if time.monotonic() - last_full > self.resync_seconds:
                    last_full = time.monotonic()
                    self.passes.reconcile()
            except AcsnetError as e:  # the agent must outlive a store outage or an OVS hiccup
                # expected while they last, so said in a line, once, not with a traceback every pass
                if e.message != self._failing:
                    log.warning("%s pass failed: %s; retrying", self.name, e.message)
                self._failing = e.message
                time.sleep(1)
            except Exception:  # a defect: its traceback, every time
                log.exception("%s pass failed; retrying", self.name)
                self._failing = None
                time.sleep(1)
            else:
                if self._failing is not None:
                    log.info("%s pass succeeded again (it had failed: %s)", self.name, self._failing)
                    self._failing = None
