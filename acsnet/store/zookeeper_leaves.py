"""A watch of a node's leaf children that hears each child made or deleted, not the whole list again:
ZooKeeper's persistent recursive watch (`addWatch`, ZooKeeper 3.6 and later), which kazoo does not offer.

A segment's records are its node's children. With a children watch, every record made or deleted
handed each host following the segment the whole list of names again (3,000 at 300 hosts, 10,000 at
1,000): ZooKeeper sent it, kazoo decoded it, and the watch was armed again. A persistent recursive
watch stays armed and names the child in each event. The list is read once per arming (at the start
and after each reconnection: kazoo restores only one-shot watches, and events while disconnected are
lost), and each event is then handed over as the one name made or deleted (`LeavesChange`): nothing
per event grows with the segment, here or in the caller.

Order is what makes that right. The list and the events are taken in on kazoo's connection thread, in
the order ZooKeeper sent them: the list when its answer is decoded (`ListLeaves.deserialize`), each
event before kazoo would look for one-shot watchers (`LeafEvents`). An event that comes before the
list answer is already in the list (ZooKeeper sends a change's event before any answer that reflects
it), so events count only once a list was taken. Each report is numbered there and queued, list and
events alike, for kazoo's callback thread, which makes them in that order. The arming also reports
its list at once on its own thread (the caller's first report is made before `watch_leaves`
returns): whichever of the two copies comes second is dropped, as is any report numbered below one
already made, so no change is made twice or out of order.
"""

from __future__ import annotations

import threading
from collections import namedtuple

from kazoo.protocol.serialization import GetChildren, Watch, int_struct, write_string
from kazoo.protocol.states import Callback

from acsnet.store.base import LeavesChange
from acsnet.store.zookeeper_watch import ZooKeeperWatch

ADD_WATCH_OP = 106  # ZooKeeper's OpCode.addWatch
REMOVE_WATCHES_OP = 18  # OpCode.removeWatches
PERSISTENT_RECURSIVE_MODE = 1  # AddWatchMode.PERSISTENT_RECURSIVE
PERSISTENT_RECURSIVE_WATCHER = 5  # WatcherType.PersistentRecursive, as removeWatches names it
CREATED_EVENT, DELETED_EVENT = 1, 2  # the event types of the wire (kazoo's EventType are names)


class _PathAndNumber(namedtuple("_PathAndNumber", "path number")):
    """A kazoo request of a (chrooted) path and a number, whose answer is its header alone."""

    def serialize(self) -> bytearray:
        return write_string(self.path) + int_struct.pack(self.number)

    @classmethod
    def deserialize(cls, data: bytes, offset: int) -> bool:
        return True


class AddWatch(_PathAndNumber):
    """A persistent watch on the path; the number is its mode."""

    type = ADD_WATCH_OP


class RemoveWatches(_PathAndNumber):
    """The path's watches of a kind end; the number is the kind (`WatcherType`)."""

    type = REMOVE_WATCHES_OP


class ListLeaves(namedtuple("ListLeaves", "path watch")):
    """A getChildren (no one-shot watch) whose answer, decoded on kazoo's connection thread, becomes the
    watch's names there: answers `(number, names)`."""

    type = GetChildren.type

    def serialize(self) -> bytearray:
        return write_string(self.path) + b"\x00"

    def deserialize(self, data: bytes, offset: int) -> tuple[int, list[str]]:
        return self.watch._take_list(GetChildren.deserialize(data, offset))


class LeavesWatch(ZooKeeperWatch):
    """`ZooKeeperStore.watch_leaves`: the list read at each arming, then each child made or deleted."""

    def __init__(self, client, path: str, server_path: str, callback, *, timeout: float, events: "LeafEvents"):
        super().__init__(client, path, callback, children=True, timeout=timeout)
        self.server_path = server_path
        self._events = events
        self._listed = False  # not until a list is taken: events before it are in it
        self._listed_lock = threading.Lock()  # reports are numbered in the order taken in
        self._added = None  # the addWatch of the latest arming: the list's answer is not taken without it

    def end(self) -> None:
        super().end()
        self._events.forget(self)

    def _send_read(self):
        self._added = self._events.follow(self)
        listed = self._client.handler.async_result()
        self._client._call(ListLeaves(self.server_path, self), listed)
        return listed

    def _read_answer(self, answer):
        self._added.get(timeout=0)  # answered before the list (in order): raises its error, if any
        return answer

    def _report(self, read: int, current) -> None:
        if isinstance(current, tuple):  # the arming's copy of a list: (number, change)
            read, current = current
        elif isinstance(current, list):  # `arm_together`'s [] for an absent node: events are in the next list
            with self._listed_lock:
                self._listed = False
                read, current = next(self._reads), LeavesChange(names=frozenset())
        with self._lock:
            if self.ended or read <= self._newest_reported:
                return  # ended meanwhile, or made already (the arming's copy of a list), or older
            self._newest_reported = read
            if self._callback(current) is False:
                self.ended = True
        if self.ended:  # its callback returned False
            self._events.forget(self)

    def _take_list(self, names: list[str]) -> tuple[int, LeavesChange]:
        """On kazoo's connection thread: the list, numbered and queued for the callback thread; the
        arming reports it too, at once."""
        with self._listed_lock:
            self._listed = True
            report = (next(self._reads), LeavesChange(names=frozenset(names)))
            self._client.handler.dispatch_callback(Callback("watch", self._report, report))
        return report

    def _on_leaf(self, name: str, made: bool) -> None:
        """On kazoo's connection thread: a child made or deleted, numbered and queued for the callback
        thread."""
        with self._listed_lock:
            if not self._listed:
                return
            report = (next(self._reads), LeavesChange(made=(name,)) if made else LeavesChange(deleted=(name,)))
            self._client.handler.dispatch_callback(Callback("watch", self._report, report))

    def _on_event(self, event) -> None:
        """The exists watch of an absent node (`arm_together`): made, it is armed again."""
        with self._listed_lock:
            self._listed = False
        super()._on_event(event)


class LeafEvents:
    """The client's leaves watches by server path, and the hook that hands them their children's events
    on kazoo's connection thread (any other event goes on to kazoo's one-shot watchers)."""

    def __init__(self, client):
        self._client = client
        self._by_parent: dict[str, tuple[LeavesWatch, ...]] = {}
        # ZooKeeper keeps one persistent watch per path and session: it is removed with the last watch
        # of its path here. Under this lock the requests are queued in the order the map changes.
        self._lock = threading.Lock()
        connection = client._connection
        self._kazoo_read_event = connection._read_watch_event
        connection._read_watch_event = self._read_event

    def follow(self, watch: LeavesWatch):
        """The watch's path watched (again: idempotent); answers the addWatch's async result."""
        added = self._client.handler.async_result()
        with self._lock:
            following = self._by_parent.get(watch.server_path, ())
            self._by_parent[watch.server_path] = following + (watch,) if watch not in following else following
            self._client._call(AddWatch(watch.server_path, PERSISTENT_RECURSIVE_MODE), added)
        return added

    def forget(self, watch: LeavesWatch) -> None:
        """The watch hears no more; ZooKeeper stops sending the path's events once no watch here follows
        it (an error leaves them to be dropped here)."""
        with self._lock:
            following = self._by_parent.get(watch.server_path, ())
            if watch not in following:
                return
            following = tuple(w for w in following if w is not watch)
            if following:
                self._by_parent[watch.server_path] = following
                return
            del self._by_parent[watch.server_path]
            self._client._call(RemoveWatches(watch.server_path, PERSISTENT_RECURSIVE_WATCHER), self._client.handler.async_result())

    def _read_event(self, buffer, offset) -> None:
        event, _ = Watch.deserialize(buffer, offset)
        parent, _, name = event.path.rpartition("/")
        following = self._by_parent.get(parent, ())
        if following and event.type in (CREATED_EVENT, DELETED_EVENT):
            for watch in following:
                watch._on_leaf(name, event.type == CREATED_EVENT)
            if event.path not in self._client._data_watchers and event.path not in self._client._child_watchers:
                return
        self._kazoo_read_event(buffer, offset)
