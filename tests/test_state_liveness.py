"""Liveness records through their state module, on the embedded store (fast)."""

from __future__ import annotations

import threading

from acsnet.store import open_store
from acsnet.store.liveness import HostRecord, HostSessions, host_alive, live_hosts


def test_host_record_and_sessions_read_write_watch_clear(embedded_url):
    store = open_store(embedded_url)
    try:
        assert HostRecord.read(store, "h1") is None and HostRecord.read_all(store) == []
        HostRecord.write(store, "h1", {"host_id": "h1"})
        HostRecord.write(store, "h2", {})
        assert HostRecord.read(store, "h1") == {"host_id": "h1"} and HostRecord.read(store, "h2") == {}
        assert HostRecord.read_all(store) == ["h1", "h2"]

        seen, changed = [], threading.Event()

        def on_sessions(names):
            seen.append(names)
            changed.set()

        HostSessions.watch_all(store, "h1", on_sessions)
        assert seen[0] == [] and not host_alive(store, "h1")
        changed.clear()
        assert HostSessions.write(store, "h1", HostSessions.name("test", 7))
        assert changed.wait(10) and seen[-1] == ["test-7"]
        assert HostSessions.read_all(store, "h1") == ["test-7"] and live_hosts(store) == {"h1"}
        assert store.host_alive("h1") and not store.host_alive("h2")

        changed.clear()
        assert HostSessions.clear(store, "h1", "test-7")
        assert changed.wait(10) and seen[-1] == [] and live_hosts(store) == set()
        assert HostRecord.clear(store, "h1") and HostRecord.read_all(store) == ["h2"]
    finally:
        store.close()


def test_the_layout_written_by_the_previous_version_is_read(embedded_url):
    """The keys are the README's: `/acsnet/hosts/<h>` and `/acsnet/hosts/<h>/sessions/<name>-<pid>`."""
    store = open_store(embedded_url)
    try:
        store.create("/acsnet/hosts/old", b'{"host_id":"old"}')
        store.create("/acsnet/hosts/old/sessions/plugin-1", ephemeral=True)
        assert HostRecord.read(store, "old") == {"host_id": "old"}
        assert HostSessions.read_all(store, "old") == ["plugin-1"] and host_alive(store, "old")
    finally:
        store.close()
