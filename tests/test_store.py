"""The store contract, run against both real backends: the embedded SQLite file and a real ZooKeeper."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from acsnet.errors import StoreUnavailable
from acsnet.lab.host import REPO
from acsnet.store import Check, Create, Delete, SetValue, open_store
from acsnet.store.liveness import HostRecord
from acsnet.store.zookeeper import ZooKeeperStore
from acsnet.store.zookeeper_reads import PATHS_PER_REQUEST


def wait_for(condition, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.02)


def test_create_if_absent_and_versions(store):
    assert store.create("/a/b/c", b"one") is True
    assert store.create("/a/b/c", b"two") is False
    node = store.get("/a/b/c")
    assert (node.value, node.version) == (b"one", 0)
    assert store.get("/a/b") is not None, "parents are made"
    assert store.get("/missing") is None


def test_get_many_reads_each_path_in_order_and_none_for_an_absent_one(store):
    store.create("/t/many/a", b"1")
    store.create("/t/many/b", b"2")
    store.compare_and_set("/t/many/b", b"3", 0)
    found = store.get_many(["/t/many/b", "/t/many/gone", "/t/many/a"])
    assert [(v.value, v.version) if v else None for v in found] == [(b"3", 1), None, (b"1", 0)]
    assert store.get_many([]) == []


def test_children_many_lists_each_paths_children_in_order_in_one_request_per_batch(store):
    """Sorted names per path, [] for a node without children or not there; on ZooKeeper one multiRead
    of getChildren per 500 paths (a host's periodic check of the hosts it follows that are not alive)."""
    store.create("/t/kids/a/y")
    store.create("/t/kids/a/x")
    store.create("/t/kids/b")
    paths = ["/t/kids/a", "/t/kids/gone", "/t/kids/b"] * (PATHS_PER_REQUEST // 3 + 1)
    observed: list[str] = []
    store.observer = lambda operation, seconds: observed.append(operation)
    assert store.children_many(paths) == [["x", "y"], [], []] * (PATHS_PER_REQUEST // 3 + 1)
    assert store.children_many(["/t/kids/a"]) == [["x", "y"]] and store.children_many([]) == []
    if isinstance(store, ZooKeeperStore):
        assert observed[:2] == ["children_many"] * 2, "one request per 500 paths, not one per path"


def test_get_many_of_more_paths_than_one_batch_holds_reads_them_all_in_order(store):
    """On ZooKeeper a batch is one multiRead request of up to 500 paths (kazoo has none of its own): 1,201
    paths, some absent, are three requests, each answering a missing node in its own slot."""
    paths = [f"/t/batch/r{i:04d}" for i in range(2 * PATHS_PER_REQUEST + 201)]
    store.create("/t/batch")  # a Create in a commit needs its parent
    for start in range(0, len(paths), 100):
        assert store.commit([Create(path, path.encode()) for path in paths[start:start + 100] if not path.endswith("7")])
    observed: list[str] = []
    store.observer = lambda operation, seconds: observed.append(operation)
    found = store.get_many(paths)
    assert [v.value if v else None for v in found] == [None if p.endswith("7") else p.encode() for p in paths]
    assert all(v.version == 0 for v in found if v)
    if isinstance(store, ZooKeeperStore):
        assert observed == ["get_many"] * 3, "one request per 500 paths, not one per path"


def test_compare_and_set(store):
    store.create("/k", b"v0")
    assert store.compare_and_set("/k", b"v1", 0) is True
    assert store.compare_and_set("/k", b"v2", 0) is False, "a stale version must lose"
    node = store.get("/k")
    assert (node.value, node.version) == (b"v1", 1)
    assert store.compare_and_set("/absent", b"x", 0) is False


def test_put_makes_or_replaces_and_leaves_an_equal_value_alone(store):
    store.put("/p/q", b"one")
    assert (store.get("/p/q").value, store.get("/p/q").version) == (b"one", 0)
    store.put("/p/q", b"one")
    assert store.get("/p/q").version == 0, "the same value is not written again"
    store.put("/p/q", b"two")
    assert (store.get("/p/q").value, store.get("/p/q").version) == (b"two", 1)


def test_delete_and_children(store):
    for name in ("x", "y", "z"):
        store.create(f"/p/{name}/leaf", name.encode())
    assert store.children("/p") == ["x", "y", "z"]
    assert store.children("/nothing") == []
    assert store.delete("/p/x") is False, "a node with children is not deleted without recursive"
    assert store.delete("/p/x/leaf", version=7) is False, "wrong version"
    assert store.delete("/p/x/leaf") is True
    assert store.delete("/p/x/leaf") is False, "already gone"
    assert store.delete("/p", recursive=True) is True
    assert store.get("/p") is None and store.get("/p/y/leaf") is None


def test_commit_is_all_or_nothing(store):
    store.create("/t")
    store.create("/t/counter", b"0")
    assert store.commit([SetValue("/t/counter", b"1", 0), Create("/t/a", b"a")]) is True
    # The second create collides, so the first operation must not be applied either.
    assert store.commit([SetValue("/t/counter", b"2", 1), Create("/t/b"), Create("/t/a")]) is False
    assert store.get("/t/counter").value == b"1"
    assert store.get("/t/b") is None
    assert store.commit([Check("/t/counter", 0), Create("/t/c")]) is False, "a failed check rejects all"
    assert store.commit([Check("/t/counter", 1), Delete("/t/a", 0)]) is True
    assert store.get("/t/a") is None
    assert store.commit([Create("/nope/child")]) is False, "creates in a commit need their parent"


def test_watches_see_changes(store):
    store.create("/w")
    values, children = [], []
    store.watch_value("/w", lambda node: values.append(None if node is None else node.value))
    store.watch_children("/w", lambda names: children.append(names))
    store.compare_and_set("/w", b"new", 0)
    store.create("/w/child")
    wait_for(lambda: b"new" in values, what="value watch")
    wait_for(lambda: ["child"] in children, what="children watch")
    store.delete("/w", recursive=True)
    wait_for(lambda: values[-1] is None, what="deletion seen by the value watch")


def test_lock_excludes_other_threads_and_times_out(store, store_url):
    inside, overlaps = [], []

    def worker():
        for _ in range(5):
            with store.lock("exclusive", timeout=10):
                if inside:
                    overlaps.append(1)
                inside.append(1)
                time.sleep(0.005)
                inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlaps

    other = open_store(store_url, timeout=5.0)
    try:
        with store.lock("held", timeout=5):
            with pytest.raises(StoreUnavailable, match="lock held not taken"):
                with other.lock("held", timeout=0.3):
                    pass
        with other.lock("held", timeout=5):
            pass
    finally:
        other.close()


REGISTER_AND_SLEEP = """
import sys, time
from acsnet.store import open_store
store = open_store(sys.argv[1])
store.register_host(sys.argv[2], "test", {})
print("registered", flush=True)
time.sleep(600)
"""


def test_liveness_follows_the_session(store, store_url):
    assert store.live_hosts() == set()
    store.register_host("h1", "test", {"host_id": "h1"})
    assert store.host_alive("h1") and store.live_hosts() == {"h1"}
    assert HostRecord.read(store, "h1") == {"host_id": "h1"}

    # Another process registers h2 and is killed: h2 stops being alive once its session is gone.
    child = subprocess.Popen([sys.executable, "-c", REGISTER_AND_SLEEP, store_url, "h2"], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "registered"
        assert store.host_alive("h2")
    finally:
        child.kill()
        child.wait()
    killed_at = time.monotonic()
    # ZooKeeper ends a killed client's session only after the session timeout (10 s here).
    wait_for(lambda: not store.host_alive("h2"), timeout=30, what="h2 dead after its process was killed")
    if store_url.startswith("zk://"):
        assert time.monotonic() - killed_at > 5, "a killed client's session outlives it until it times out"
    assert store.host_alive("h1")

    other = open_store(store_url)
    other.register_host("h3", "test", {})
    assert store.host_alive("h3")
    other.close()
    wait_for(lambda: not store.host_alive("h3"), what="h3 dead after a clean close")



def test_a_watch_whose_callback_returns_false_is_called_no_more(store):
    """Returning False drops a watch, on both stores and for both kinds (the segment agent drops a
    segment's watch so); a watch set after it on the same node shows the later changes did happen."""
    store.create("/drop", b"0")
    dropped_values, dropped_children, kept_values, kept_children = [], [], [], []

    def drop_after_first(seen):
        return lambda current: seen.append(current) or len(seen) < 2

    store.watch_value("/drop", drop_after_first(dropped_values))
    store.watch_children("/drop", drop_after_first(dropped_children))
    store.put("/drop", b"1")
    store.create("/drop/a")
    wait_for(lambda: len(dropped_values) == 2 and len(dropped_children) == 2, what="the calls before the drop")
    store.watch_value("/drop", lambda node: kept_values.append(node.value))
    store.watch_children("/drop", kept_children.append)
    store.put("/drop", b"2")
    store.create("/drop/b")
    wait_for(lambda: kept_values[-1] == b"2" and kept_children[-1] == ["a", "b"], what="the later changes")
    assert [node.value for node in dropped_values] == [b"0", b"1"]
    assert dropped_children == [[], ["a"]]


def test_a_children_watch_goes_on_through_its_nodes_deletion_and_recreation(store):
    """A children watch is of a path, not of one incarnation of its node: deleted, the node reports
    `[]` and the watch goes on, so a node made again later (a segment's records after its last went, a
    vpc network's host subnets after its last host released one) is heard. Set on an absent node, it
    reports `[]` and leaves the node absent (a watch is a read: it must not bring back a parent
    another host deleted)."""
    children = []
    store.watch_children("/gone/parent", children.append)
    assert children == [[]]
    assert store.get("/gone/parent") is None, "a watch made the node it watches"
    store.create("/gone/parent/a")
    wait_for(lambda: children[-1] == ["a"], what="a child of the node made after the watch")
    store.delete("/gone/parent", recursive=True)
    wait_for(lambda: children[-1] == [], what="the node's deletion")
    store.create("/gone/parent/b")
    wait_for(lambda: children[-1] == ["b"], what="a child of the node made again")
    store.create("/gone/parent/c")
    wait_for(lambda: children[-1] == ["b", "c"], what="a later child of the node made again")


def test_ending_the_watches_of_a_subtree_ends_them_even_while_they_wait_for_a_node_made_again(store):
    """A watch that reported a deletion (`[]`, None) waits for its node to be made again, so its callback
    is not called to end it: `end_watches` ends the watches of a path and below (not a sibling's of a
    longer name), `watched_paths` counts them, and a node made again later calls none back."""
    store.create("/sub/tree/0", b"0")
    calls = []
    store.watch_children("/sub/tree", lambda names: calls.append(("children", names)))
    store.watch_value("/sub/tree/0", lambda node: calls.append(("value", node)))
    store.watch_children("/sub/treetop", lambda names: None)
    assert [p for p in store.watched_paths() if p.startswith("/sub/")] == ["/sub/tree", "/sub/tree/0", "/sub/treetop"]
    store.delete("/sub/tree", recursive=True)
    wait_for(lambda: ("children", []) in calls and ("value", None) in calls, what="the deletion reported")
    store.end_watches("/sub/tree")
    assert [p for p in store.watched_paths() if p.startswith("/sub/")] == ["/sub/treetop"]
    reported = len(calls)
    store.create("/sub/tree/0", b"again")
    kept = []
    store.watch_value("/sub/tree/0", kept.append)  # one set after it: the change was there to be seen
    store.put("/sub/tree/0", b"later")
    wait_for(lambda: kept[-1].value == b"later", what="the later change, by a watch set after the end")
    assert len(calls) == reported, f"an ended watch called back: {calls[reported:]}"


def names_followed(reported: list, keep_going=lambda: True):
    """A leaves watch's callback that keeps the names its changes say, and appends them sorted to
    `reported` at each report."""
    names: set[str] = set()

    def on_change(change) -> bool:
        nonlocal names
        names = change.applied_to(names)
        reported.append(sorted(names))
        return keep_going()

    return on_change


def test_a_leaves_watch_reports_the_children_as_they_are_made_and_deleted_and_ends_when_dropped(store):
    """`watch_leaves` (a segment's records): the names, whole or as what changed, after each child made or
    deleted, through the node's deletion and making again; a callback that returns False hears no more,
    and a newer watch of the same path goes on."""
    store.create("/l/a")
    reported, dropped = [], []
    store.watch_leaves("/l", names_followed(reported))
    store.watch_leaves("/l", names_followed(dropped, keep_going=lambda: len(dropped) < 2))
    assert reported == [["a"]]
    store.create("/l/b")
    store.create("/l/c")
    store.delete("/l/a")
    wait_for(lambda: reported[-1] == ["b", "c"], what="two made and one deleted")
    wait_for(lambda: len(dropped) == 2, what="the dropped watch's second call")
    store.delete("/l", recursive=True)
    wait_for(lambda: reported[-1] == [], what="the node gone with its children")
    store.create("/l/d")
    wait_for(lambda: reported[-1] == ["d"], what="a child of the node made again")
    assert len(dropped) == 2 and dropped[0] == ["a"]  # (the embedded store may report changes together)


def test_the_zookeeper_store_makes_its_chroot_through_one_client_clients_counted(zk_url, monkeypatch):
    """The constructor and the first connection's re-registration both make sure of the chroot. Each
    made a client of its own to do it, and the second often ran on after the store was open (the epoll
    count below caught one in CI)."""
    from kazoo import client as kazoo_client
    made = []
    real_init = kazoo_client.KazooClient.__init__
    monkeypatch.setattr(kazoo_client.KazooClient, "__init__",
                        lambda self, *a, **kw: made.append(kw.get("hosts")) or real_init(self, *a, **kw))
    store = open_store(zk_url)
    try:
        store.create("/made")
        time.sleep(1.0)  # what a second chroot client would have been made in
        hosts = zk_url.removeprefix("zk://")
        assert made == [hosts, hosts.split("/")[0]], made
    finally:
        store.close()


def test_the_zookeeper_store_waits_on_its_connection_without_an_epoll_instance_per_wait_epoll_made_counted(zk_url, monkeypatch):
    """kazoo's own handler makes (and closes) an epoll instance for every wait on its socket, three to a
    response; the store's handler polls. Counted from the store's opening (its client that makes the
    chroot too) over 200 reads and a watch's events, on a real ensemble."""
    import selectors
    made = []
    real_epoll = selectors.EpollSelector._selector_cls
    monkeypatch.setattr(selectors.EpollSelector, "_selector_cls", staticmethod(lambda *a: made.append(1) or real_epoll(*a)))
    store = open_store(zk_url)
    try:
        reported: list = []
        store.watch_leaves("/w", names_followed(reported))
        for n in range(200):
            store.create(f"/w/{n}", b"x")
            assert store.get(f"/w/{n}").value == b"x"
        wait_for(lambda: len(reported[-1]) == 200, what="the watch's 200 events")
        assert made == []
    finally:
        store.close()


def test_an_embedded_store_closed_while_its_watches_are_polled_logs_no_failure(embedded_url, caplog):
    """A plugin closing its store as it stops: the poller, between two watches' reads, finds the database
    closed; that is the end of polling, not a failure to log with a traceback (as it was)."""
    store = open_store(embedded_url, timeout=5.0)
    store.create("/a")
    store.create("/b")
    closed = threading.Event()

    def close_on_change(names: list[str]) -> None:  # on the poller's thread, before /b's watch is read
        if names:
            store.close()
            closed.set()

    store.watch_children("/a", close_on_change)
    store.watch_children("/b", lambda names: None)
    with caplog.at_level("ERROR", logger="acsnet.store.embedded"):
        store.create("/a/child")
        wait_for(closed.is_set, what="the store closed by the first watch's callback")
        time.sleep(0.3)  # the poller's next turns
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]
