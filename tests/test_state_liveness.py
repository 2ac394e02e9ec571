"""Liveness records through their state module, on the embedded store (fast)."""

from __future__ import annotations

import os
import threading

from acsnet.store import open_store
from acsnet.store import LeavesChange
from acsnet.store.liveness import HostRecord, HostSessions, ListedHosts, LiveSessions, host_alive, live_hosts


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


def test_the_sessions_list_follows_every_host_with_one_watch_and_registration_writes_both_layouts(embedded_url):
    """`live/<host>@<session>`: every host's sessions under one parent; `register_host` writes it and
    the per-host node (which plugins of earlier versions watch); a host an earlier version registered
    (per-host node only) is alive for `live_hosts` as well."""
    store, other = open_store(embedded_url), open_store(embedded_url)
    try:
        listed, moved, changed = ListedHosts(), [], threading.Event()

        def on_list(change):
            moved.append(listed.take(change))
            changed.set()

        LiveSessions.watch_all(store, on_list)
        assert moved == [set()]
        changed.clear()
        other.register_host("h1", "vxlan", {"host_id": "h1"})
        name = HostSessions.name("vxlan", os.getpid())
        assert changed.wait(10) and moved[-1] == {"h1"} and "h1" in listed
        assert LiveSessions.read_all(store) == {"h1": [name]} and HostSessions.read_all(store, "h1") == [name]
        assert live_hosts(store) == {"h1"} and host_alive(store, "h1")

        HostRecord.write(store, "old", {"host_id": "old"})  # what an earlier version's registration wrote
        assert HostSessions.write(store, "old", HostSessions.name("vlan", 1))
        assert live_hosts(store) == {"h1", "old"} and host_alive(store, "old")
        assert "old" not in LiveSessions.read_all(store)

        changed.clear()
        other.close()  # h1's only process ends: both its nodes go
        assert changed.wait(10) and moved[-1] == {"h1"} and "h1" not in listed
        assert live_hosts(store) == {"old"} and not host_alive(store, "h1")
        assert LiveSessions.hosts(["a.b@c@vxlan-1", "no-separator", "@x", "h@"]) == {"a.b@c": ["vxlan-1"]}
    finally:
        store.close()


def test_a_sessions_list_entry_written_by_hand_is_read(embedded_url):
    """The keys are the README's: `/acsnet/live/<host>@<name>-<pid>`."""
    store = open_store(embedded_url)
    try:
        store.create("/acsnet/live/h7@vxlan-12", ephemeral=True)
        assert LiveSessions.read_all(store) == {"h7": ["vxlan-12"]} and live_hosts(store) == {"h7"}
        assert LiveSessions.clear(store, "h7", "vxlan-12") and live_hosts(store) == set()
    finally:
        store.close()


def test_the_listed_hosts_say_which_hosts_came_into_the_list_or_left_it_from_whole_lists_and_single_changes():
    """A host is listed while one of its sessions is: a second session, or one of two ending, moves no
    host; a name without the separator is no session; a whole list moves what differs from before."""
    listed = ListedHosts()
    assert listed.take(LeavesChange(names=frozenset({"h1@vxlan-1", "a.b@c@vlan-2", "no-separator", "@x"}))) == {"h1", "a.b@c"}
    assert listed.take(LeavesChange(made=("h1@vlan-3",))) == set()
    assert listed.take(LeavesChange(made=("h2@vxlan-4",))) == {"h2"} and "h2" in listed
    assert listed.take(LeavesChange(deleted=("h1@vxlan-1",))) == set() and "h1" in listed
    assert listed.take(LeavesChange(deleted=("h1@vlan-3", "h9@vxlan-9", "junk"))) == {"h1"} and "h1" not in listed
    assert listed.take(LeavesChange(deleted=("h2@vxlan-4",), made=("h2@vxlan-5",))) == set() and "h2" in listed
    assert listed.take(LeavesChange(names=frozenset({"h2@vxlan-5", "h3@vxlan-6"}))) == {"a.b@c", "h3"}
    assert "h3" in listed and "h1" not in listed and "a.b@c" not in listed
