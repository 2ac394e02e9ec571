"""The agent's worker loop, with its passes faked (the agent's own passes are exercised on real
components by the lab tests): what it logs while the store is away, and after."""

import logging
import threading
import time

from acsnet.errors import StoreUnavailable
from acsnet.plugins.segments.worker import Worker

OUTAGE = StoreUnavailable("store zk://192.0.2.2:2181/acsnet is not connected")


class ScriptedPasses:
    """catch_up raises the scripted errors in turn, then succeeds; `done` is set after `passes` calls."""

    def __init__(self, errors: list[BaseException | None], passes: int):
        self.errors = list(errors)
        self.calls = 0
        self.passes = passes
        self.done = threading.Event()

    def catch_up(self) -> None:
        self.calls += 1
        if self.calls >= self.passes:
            self.done.set()
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error

    def sweep_orphans(self) -> None:
        pass

    def reconcile(self) -> None:
        pass

    def switch_restarted(self) -> bool:
        return False


def run_worker(passes: ScriptedPasses, caplog) -> list[logging.LogRecord]:
    worker = Worker("test-agent", passes, resync_seconds=300, next_wake=lambda: 0.05)
    with caplog.at_level(logging.INFO, logger="acsnet.plugins.segments.worker"):
        worker.start()
        try:
            assert passes.done.wait(timeout=30), f"only {passes.calls} passes ran"
            time.sleep(0.2)  # the last pass's log line
        finally:
            worker.stop()
    return [r for r in caplog.records if r.name == "acsnet.plugins.segments.worker"]


def test_a_store_outage_is_said_once_in_a_line_and_its_end_too(caplog):
    records = run_worker(ScriptedPasses([OUTAGE, OUTAGE, OUTAGE, None], passes=5), caplog)
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in records]
    assert "not connected" in warnings[0].getMessage() and warnings[0].exc_info is None
    recovered = [r for r in records if r.levelno == logging.INFO]
    assert len(recovered) == 1 and "succeeded again" in recovered[0].getMessage()
    assert not [r for r in records if r.levelno >= logging.ERROR]


def test_a_defect_keeps_its_traceback_every_time(caplog):
    records = run_worker(ScriptedPasses([KeyError("x"), KeyError("x"), None], passes=4), caplog)
    errors = [r for r in records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(r.exc_info for r in errors), [r.getMessage() for r in records]
