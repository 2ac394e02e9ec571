"""The ZooKeeper store's watches go on through connection trouble until their callback drops them."""

from __future__ import annotations

import threading

from kazoo.client import KazooState
from kazoo.exceptions import ConnectionLoss
from kazoo.protocol.connection import _CONNECTION_DROP

from acsnet.errors import StoreUnavailable
from acsnet.lab.zookeeper import ZooKeeperServer
from acsnet.store import open_store
from tests.test_store import names_followed, wait_for


def test_a_children_watch_reports_the_next_change_after_its_reread_failed_kazoo_get_children_fails_once_faked(zk_url):
    """Fakes one layer: kazoo's `get_children_async` answers the re-read after an event with
    ConnectionLoss once while the connection stays up: the store tries the read again. (Kazoo's
    ChildrenWatch survives this one too: a command retry of max_tries 0 is unlimited in kazoo 2.11.)"""
    watcher, writer = open_store(zk_url), open_store(zk_url)
    try:
        reported = []
        watcher.watch_children("/w", reported.append)
        real_get_children = watcher._client.get_children_async
        failures = []

        def fails_once(*args, **kwargs):
            if failures:
                return real_get_children(*args, **kwargs)
            failures.append(args)
            failed = watcher._client.handler.async_result()
            failed.set_exception(ConnectionLoss())
            return failed

        watcher._client.get_children_async = fails_once
        writer.create("/w/a")
        wait_for(lambda: failures, what="the failed re-read")
        writer.create("/w/b")
        wait_for(lambda: reported[-1] == ["a", "b"], timeout=10, what="the change after the failed re-read")
        assert reported[0] == []
    finally:
        watcher.close()
        writer.close()


def test_a_children_watch_goes_on_when_the_connection_drops_just_after_its_reread_answered_kazoo_get_children_faked(zk_url):
    """Fakes one layer: kazoo's `get_children_async`, whose re-read after an event is answered (its
    ZooKeeper watch set) and then, before the answer is handed back, the connection really is dropped,
    which drops that ZooKeeper watch too; the reconnection is held until the answer is reported. Kazoo's
    ChildrenWatch took that answer as its watch being set and was never armed again (the race is
    narrow, and widens with a loaded machine); the store arms every watch again on each reconnection."""
    watcher, writer = open_store(zk_url), open_store(zk_url)
    client = watcher._client
    try:
        reported, dropped = [], []
        answer_reported, suspended = threading.Event(), threading.Event()

        def hold_reconnection(state):  # runs before the watch's own listener, registered after it
            if state == KazooState.CONNECTED and dropped and not answer_reported.is_set():
                answer_reported.wait(5)

        def report(names):
            reported.append(names)
            if names == ["a"]:
                answer_reported.set()

        client.add_listener(hold_reconnection)
        # Made first: on an absent node the exists watch fires when `/w` is made, before `/w/a` is, and
        # the re-read spied on (and the drop after it) would be that one's, answered `[]`.
        writer.create("/w")
        watcher.watch_children("/w", report)
        client.add_listener(lambda state: state == KazooState.SUSPENDED and suspended.set())
        real_get_children = client.get_children_async

        def answered_then_dropped(path, watch=None, include_data=False):
            answer = real_get_children(path, watch=watch, include_data=include_data)
            if not dropped:
                dropped.append(answer.get(timeout=5))
                client._call(_CONNECTION_DROP, client.handler.async_result())
                assert suspended.wait(5), "the drop was not seen"
            return answer

        client.get_children_async = answered_then_dropped
        writer.create("/w/a")
        wait_for(answer_reported.is_set, what="the answer before the drop reported")
        wait_for(lambda: watcher.connected, timeout=15, what="the watcher connected again")
        writer.create("/w/b")
        wait_for(lambda: reported[-1] == ["a", "b"], timeout=10, what="the change after the reconnection")
    finally:
        watcher.close()
        writer.close()


def test_watch_value_fails_within_the_timeout_when_its_first_read_is_never_answered_kazoo_get_faked(zk_url):
    """Fakes one layer: kazoo's `get_async` never answers (as a read queued while the connection is away
    waits for it). `watch_value` raises StoreUnavailable within the store's timeout and leaves no watch;
    kazoo's DataWatch waited for the answer forever, on the caller's thread."""
    store = open_store(zk_url, timeout=1.0)
    try:
        store._client.get_async = lambda *args, **kwargs: store._client.handler.async_result()
        outcome = []

        def watch():
            try:
                store.watch_value("/v", outcome.append)
            except StoreUnavailable as e:
                outcome.append(e)

        caller = threading.Thread(target=watch, daemon=True)
        caller.start()
        caller.join(5)
        assert len(outcome) == 1 and isinstance(outcome[0], StoreUnavailable), outcome
        assert store._watches == [] or all(watch.ended for watch in store._watches)
    finally:
        store.close()


def test_watches_report_changes_made_after_zookeeper_is_stopped_and_started_again(tmp_path):
    """A real server, stopped until the watching store sees the connection gone, then started again
    on the same port and data: both kinds of watch report what is written after it."""
    server = ZooKeeperServer(str(tmp_path / "zookeeper")).start()
    try:
        url = f"zk://{server.address}/watches"
        watcher, writer = open_store(url), open_store(url)
        try:
            children, values = [], []
            watcher.watch_children("/c", children.append)
            watcher.watch_value("/v", lambda node: values.append(None if node is None else node.value))
            writer.create("/c/before")
            writer.put("/v", b"before")
            wait_for(lambda: children[-1] == ["before"] and values[-1] == b"before", what="changes before the outage")
            for round_ in range(2):
                server.stop()
                wait_for(lambda: not watcher.connected, timeout=15, what="the watcher seeing the outage")
                server.start()
                wait_for(lambda: watcher.connected and writer.connected, timeout=30, what="both stores connected again")
                writer.create(f"/c/after{round_}")
                writer.put("/v", b"after%d" % round_)
                wait_for(lambda: f"after{round_}" in children[-1], timeout=10, what="a children change after the restart")
                wait_for(lambda: values[-1] == b"after%d" % round_, timeout=10, what="a value change after the restart")
        finally:
            watcher.close()
            writer.close()
    finally:
        server.stop()


def test_a_reconnection_arms_every_watch_again_with_their_reads_sent_together_kazoo_reads_spied(zk_url):
    """Spies on one layer (the real reads, answered by a real server, recorded): the connection is
    really dropped with 60 watches set, and on the reconnection every watch's read is sent before any
    answer is waited for (one round trip for all; they were read one by one, a round trip each in
    turn). Every watch still reports a change after it."""
    watcher, writer = open_store(zk_url), open_store(zk_url)
    client = watcher._client
    try:
        count, reported = 30, {}
        for n in range(count):
            writer.create(f"/many/c{n}/x")
            writer.put(f"/many/v{n}", b"0")
            watcher.watch_children(f"/many/c{n}", lambda names, n=n: reported.__setitem__(("c", n), names))
            watcher.watch_value(f"/many/v{n}", lambda node, n=n: reported.__setitem__(("v", n), node.value))
        steps, spying = [], threading.Event()

        class Answer:  # the real answer, its wait recorded
            def __init__(self, sent):
                self._sent = sent

            def get(self, *args, **kwargs):
                if spying.is_set():
                    steps.append("wait")
                return self._sent.get(*args, **kwargs)

        def spied(read):
            def send(*args, **kwargs):
                if spying.is_set():
                    steps.append("send")
                return Answer(read(*args, **kwargs))
            return send

        client.get_async, client.get_children_async = spied(client.get_async), spied(client.get_children_async)
        suspended = threading.Event()
        client.add_listener(lambda state: state == KazooState.SUSPENDED and suspended.set())
        spying.set()
        client._call(_CONNECTION_DROP, client.handler.async_result())
        assert suspended.wait(5), "the drop was not seen"
        wait_for(lambda: watcher.connected, timeout=15, what="the watcher connected again")
        wait_for(lambda: steps.count("wait") >= 2 * count, timeout=10, what="every watch read again")
        spying.clear()
        assert steps.count("send") == 2 * count
        assert steps.index("wait") == 2 * count, f"a read sent after an answer was waited for: {''.join(s[0] for s in steps)}"
        for n in range(count):
            writer.create(f"/many/c{n}/y")
            writer.put(f"/many/v{n}", b"1")
        wait_for(lambda: all(reported[("c", n)] == ["x", "y"] and reported[("v", n)] == b"1" for n in range(count)),
                 timeout=10, what="every watch reporting a change after the reconnection")
    finally:
        watcher.close()
        writer.close()


def test_a_leaves_watch_hands_over_each_child_made_or_deleted_alone_and_lists_them_again_only_after_a_reconnection_kazoo_requests_counted(zk_url):
    """A persistent recursive watch (ZooKeeper 3.6+) names the child made or deleted: a children watch
    read the whole list again at every change (3,000 names at 300 hosts). The list is read when the
    watch is armed, and again after the connection is dropped (really, by kazoo's own drop), which
    loses the events meanwhile: a child deleted and one made while the watcher was away are seen."""
    watcher, writer = open_store(zk_url), open_store(zk_url)
    client = watcher._client
    requests = []
    real_call = client._call
    client._call = lambda request, result: requests.append(type(request).__name__) or real_call(request, result)
    try:
        writer.create("/leaves/r0")
        reported, changes = [], []
        follow = names_followed(reported)
        watcher.watch_leaves("/leaves", lambda change: changes.append(change) or follow(change))
        assert reported == [["r0"]]
        for n in range(1, 20):
            writer.create(f"/leaves/r{n}")
        writer.delete("/leaves/r0")
        wait_for(lambda: reported[-1] == sorted(f"r{n}" for n in range(1, 20)), what="19 made, one deleted")
        assert requests.count("ListLeaves") == 1 and requests.count("AddWatch") == 1, requests
        # The list once, then each change alone, in order: nothing handed over grows with the list.
        assert changes[0].names == {"r0"} and len(changes) == 21
        assert [c.made for c in changes[1:20]] == [(f"r{n}",) for n in range(1, 20)]
        assert changes[20].deleted == ("r0",) and all(c.names is None for c in changes[1:])

        connected = threading.Event()
        client.add_listener(lambda state: connected.set() if state == KazooState.CONNECTED else connected.clear())
        connected.clear()
        real_call(_CONNECTION_DROP, client.handler.async_result())
        writer.delete("/leaves/r1")  # while the watcher may be away: its event can be lost
        writer.create("/leaves/away")
        assert connected.wait(15), "the watcher did not connect again"
        wait_for(lambda: "away" in reported[-1] and "r1" not in reported[-1], timeout=10, what="the changes made while away")
        wait_for(lambda: requests.count("ListLeaves") == 2, what="the list read again at the re-arming")
        writer.create("/leaves/after")
        wait_for(lambda: "after" in reported[-1], what="a child made after the reconnection")
        assert requests.count("ListLeaves") == 2
    finally:
        watcher.close()
        writer.close()
