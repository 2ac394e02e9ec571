"""Other hosts' segment records as this host last saw them, and whether those hosts are alive.

Only the segments this host has endpoints in (or had, until the agent's `watch_linger` after its last)
are watched (the agent says which, `watch`/`unwatch`): a host with no container on a network needs none
of its flows, and hears nothing of it. Watches run on the store's thread: they only note the names
made and deleted and wake the worker, which brings the cache in line (`refresh`) under the agent's
lock, looking at those names alone (a whole list, which a store hands over at the start and after a
reconnection, is compared whole). Records are immutable, so only new names are read: all of a burst's
in one batch, none when the watch handed their values over (a store relay's, `acsnet.store.relayed`,
whose watches call back on its connection's thread). What came and went since the datapath was last programmed is kept (`take_change`), so
an event changes only the flows of the records it names.

Whether other hosts are alive comes from one watch on the list of every host's sessions
(`LiveSessions`), however many hosts there are, each session made or ended handed over alone. A host
with records that is not in the list is read once in the per-host layout: alive there and in the list
in the store means a list change not heard yet (alive until the list names it); alive there alone, a
plugin of an earlier version, followed by a watch of its own; dead there is checked again by the
periodic reconcile (`recheck_unlisted`), which is how an earlier version's plugin coming back is seen."""

from __future__ import annotations

import threading
from typing import Callable

from acsnet.plugins.segments import state
from acsnet.plugins.segments.datapath import RemoteChange
from acsnet.plugins.segments.model import Layout, SegmentRecord, record_name_ip
from acsnet.store import LeavesChange, Store
from acsnet.store.liveness import HostSessions, ListedHosts, LiveSessions


class RemoteRecords:
    def __init__(self, store: Store, layout: Layout, host_id: str, *, withdraw_dead_hosts: bool,
                 wake: Callable[[], None]):
        self.store = store
        self.layout = layout
        self.host_id = host_id
        self.withdraw_dead_hosts = withdraw_dead_hosts  # follow liveness, leave dead hosts' records out
        self._wake = wake
        self._segments: dict[int, dict[str, SegmentRecord]] = {}
        # Each segment's names as its watch last said, and the names it said were made or deleted since
        # the cache was last brought in line (None: a whole list came, to be compared whole). Written
        # on the store's thread, taken on the worker's.
        self._names: dict[int, set[str]] = {}
        self._touched: dict[int, set[str] | None] = {}
        # The values a watch handed over with the names it made (a relay's; None: gone when it read them),
        # since the cache was last brought in line: those records are taken from here, not read.
        self._handed: dict[int, dict[str, bytes | None]] = {}
        self._names_lock = threading.Lock()
        self.watched: set[int] = set()
        self._followed: set[str] = set()  # other hosts with records
        self._listed = ListedHosts()  # hosts in the sessions list, as its watch last said
        self._listing = False  # the list's watch is set
        self._unlisted: dict[str, bool] = {}  # followed hosts not in the list: alive in the per-host layout?
        self._unlisted_watched: set[str] = set()
        # Followed hosts whose sessions are in the list in the store, but not in the list as its watch last
        # said: it lags (a relay holds its changes a second), and a host starting is seen by its records
        # first. They are alive, and not watched on their own: a per-host watch set in that lag stayed for
        # the agent's life, one for each host that started within an agent's lag, which hosts starting
        # together multiply. The list names them soon; the periodic recheck reads again any it has not
        # named (made and gone unheard: a relay sends neither).
        self._listed_soon: set[str] = set()
        self._alive_in_flows: frozenset[str] = frozenset()
        # Hosts the liveness watches (the list's and the per-host ones) said something of since liveness
        # was last taken in: only they are asked again (at 1,000 hosts, a host starting asked all 1,000
        # on every host). Added to on the store's thread, taken on the worker's, under `_names_lock`.
        self._liveness_moved: set[str] = set()
        # Each other host's cached records, by segment and name: a host coming or going moves its own
        # records in or out of the flows, found without going through every host's.
        self._host_records: dict[str, set[tuple[int, str]]] = {}
        self._arrived: list[tuple[int, SegmentRecord]] = []  # other hosts' records new since the first load
        self._added: list[tuple[int, SegmentRecord]] = []  # since the datapath was last programmed
        self._removed: list[tuple[int, SegmentRecord]] = []
        self._generation: dict[int, int] = {}  # a dropped watch's callbacks are told apart from a newer one's
        # Passes that change nothing cost nothing per record: a segment's sorted records are kept until
        # its cache or a host's liveness changes (every watch event wakes every pass; at 1,000 hosts a
        # segment holds 10,000 records).
        self._version: dict[int, int] = {}  # bumped whenever a segment's cache changes
        self._liveness_epoch = 0  # bumped whenever `_in_flows` may answer differently
        self._sorted: dict[int, tuple[tuple[int, int], tuple[SegmentRecord, ...]]] = {}

    def watch(self, number: int, *, collect_arrivals: bool) -> None:
        """Follow a segment (this host's first endpoint on it): its records now, then its changes."""
        if number in self.watched:
            return
        self._segments.setdefault(number, {})
        generation = self._generation[number] = self._generation.get(number, 0) + 1

        def on_change(change: LeavesChange) -> bool:  # on the store's thread: hand over, never block
            if self._generation.get(number) != generation:
                return False  # dropped (a store that can stops calling)
            with self._names_lock:
                self._names[number] = change.applied_to(self._names.get(number, set()))
                if change.names is not None:
                    self._touched[number] = None
                elif (touched := self._touched.setdefault(number, set())) is not None:
                    touched.update(change.made)
                    touched.update(change.deleted)
                if change.values is not None:
                    handed = self._handed.setdefault(number, {})
                    handed.update((name, change.values.get(name)) for name in (change.names or change.made))
            self._wake()
            return True

        state.watch_segment(self.store, self.layout, number, on_change)
        # Followed only once the watch is set: a store failing here is asked again at the next pass,
        # where a segment marked first would have stayed unwatched for good.
        self.watched.add(number)
        self.refresh(number, collect_arrivals=collect_arrivals)

    def unwatch(self, number: int) -> None:
        """Stop following a segment (this host's last endpoint on it is gone): its records leave the cache."""
        if number not in self.watched:
            return
        self.watched.discard(number)
        self._generation[number] = self._generation.get(number, 0) + 1
        with self._names_lock:
            self._names.pop(number, None)
            self._touched.pop(number, None)
            self._handed.pop(number, None)
        self._sorted.pop(number, None)
        for name, record in self._segments.pop(number, {}).items():
            if record.host != self.host_id:
                self._host_records[record.host].discard((number, name))
                if self._in_flows(record):
                    self._removed.append((number, record))

    def names(self, number: int) -> list[str] | None:
        """A watched segment's record names as its watch last said (None: not watched, or not heard
        from yet). They lag the store by the watch's notice, a few milliseconds."""
        with self._names_lock:
            names = self._names.get(number) if number in self.watched else None
            return None if names is None else list(names)

    def other_hosts_naming(self, number: int, ip: str) -> set[str]:
        """The other hosts whose record of `ip` on a watched segment its watch still names (their host as
        the cache last read it; a name not read yet is left out). Any thread: reads no store."""
        with self._names_lock:
            names = self._names.get(number) if number in self.watched else None
            named = [name for name in names if record_name_ip(name) == ip] if names else []
        cache = self._segments.get(number, {})
        return {record.host for record in map(cache.get, named) if record is not None and record.host != self.host_id}

    def refresh(self, number: int, *, collect_arrivals: bool) -> bool:
        """Bring the cached records of a segment in line with its names; True if a record of another
        host changed (this host's own records do not change its flows)."""
        with self._names_lock:
            names, touched = self._names.get(number), self._touched.pop(number, set())
            handed = self._handed.pop(number, {})
            if names is not None:
                names = set(names) if touched is None else {name for name in touched if name in names}
        if names is None:  # not heard from yet: listed
            touched, names = None, set(state.segment_record_names(self.store, self.layout, number))
        elif touched is not None and not touched:
            return False  # nothing made or deleted since the last refresh
        cache = self._segments.setdefault(number, {})
        try:
            return self._bring_in_line(number, cache, names, touched, handed, collect_arrivals=collect_arrivals)
        except Exception:  # the store's read failed: what was taken is looked at again next time
            with self._names_lock:
                if number in self._names:
                    kept = self._touched.get(number, set())
                    self._touched[number] = None if touched is None or kept is None else kept | touched
            raise

    def _bring_in_line(self, number: int, cache: dict[str, SegmentRecord], names: set[str],
                       touched: set[str] | None, handed: dict[str, bytes | None], *, collect_arrivals: bool) -> bool:
        """`names`: every name now (`touched` None), or those of `touched` that are there now; `handed`:
        values the watch handed over (read in their stead: a handed-over name is not read again)."""
        self._version[number] = self._version.get(number, 0) + 1
        changed = False
        for gone in (set(cache) if touched is None else touched & cache.keys()) - names:
            record = cache.pop(gone)
            if record.host != self.host_id:
                changed = True
                self._host_records[record.host].discard((number, gone))
                if self._in_flows(record):
                    self._removed.append((number, record))
        wanted = sorted(names - cache.keys())
        new = state.parse_segment_records({name: handed[name] for name in wanted if name in handed})
        unread = [name for name in wanted if name not in handed]
        if unread:
            new.update(state.read_segment_records_named(self.store, self.layout, number, unread))
        if self.withdraw_dead_hosts:  # before their records go in: whether they are alive says if in the flows
            self._follow_hosts({record.host for record in new.values()} - {self.host_id})
        for name, record in new.items():
            cache[name] = record
            if record.host != self.host_id:
                changed = True
                self._host_records.setdefault(record.host, set()).add((number, name))
                if self._in_flows(record):
                    self._added.append((number, record))
                if collect_arrivals:
                    self._arrived.append((number, record))
        return changed

    def refresh_all(self, *, collect_arrivals: bool) -> bool:
        return any([self.refresh(number, collect_arrivals=collect_arrivals) for number in list(self.watched)])

    def follow_hosts(self, hosts: set[str]) -> None:
        """Follow these hosts' liveness too, whether they have records or not (the vpc driver's peers:
        `liveness_epoch` moves when one comes or goes). Under the agent's lock."""
        self._follow_hosts(set(hosts) - {self.host_id})

    @property
    def liveness_epoch(self) -> int:
        """Moves on whenever a followed host came alive or died, as taken in (`liveness_changed`), or
        hosts were followed."""
        return self._liveness_epoch

    def _follow_hosts(self, hosts: set[str]) -> None:
        """Follow whether these hosts are alive (any of its plugins holds a store session)."""
        hosts = hosts - self._followed
        if not hosts:
            return
        if not self._listing:
            self._listing = True

            def on_list(change: LeavesChange) -> None:  # on the store's thread
                with self._names_lock:
                    moved = self._listed.take(change)
                    self._liveness_moved |= moved
                    self._listed_soon -= moved  # the list has its word on them now
                self._wake()

            LiveSessions.watch_all(self.store, on_list)
        # Followed once checked: a store failing here leaves them to be followed when their records,
        # not taken in either, are read again.
        self._check_unlisted([host for host in hosts if host not in self._listed])
        self._followed |= hosts
        self._liveness_epoch += 1
        # Alive as first seen: their records go in with the change, not a whole sync.
        self._alive_in_flows = self._alive_in_flows | {host for host in hosts if self._alive(host)}

    def _check_unlisted(self, hosts: list[str], again: set[str] = frozenset()) -> None:
        """Followed hosts not in the list: their per-host sessions, in one read; those whose sessions the
        list in the store has (its watch is behind) are alive until it names them, the others (an
        earlier version's plugins, which write no list entry) each watched once they say it is alive.
        `again`: hosts among them taken as alive so (`_listed_soon`), which stay so only if still listed."""
        hosts = [host for host in hosts if host not in self._unlisted_watched]
        if not hosts:
            return
        alive = {host: sessions for host, sessions in HostSessions.read_many(self.store, hosts).items() if sessions}
        soon = LiveSessions.listed_many(self.store, alive)
        with self._names_lock:
            named = {host for host in alive if host in self._listed}  # named while it read
            soon -= named
            gone = (again & self._listed_soon) - soon  # not in the store's list any more (or alive elsewhere: below)
            self._listed_soon = (self._listed_soon - gone) | soon
            self._liveness_moved |= soon | gone
        # Only hosts no list names: a host the list named while this read was watched on its own too,
        # for the agent's life (239 of 1,000 relayed simulated hosts' sessions watches, 2026-12-04).
        for host in alive.keys() - soon - named:
            self._watch_unlisted(host)

    def _watch_unlisted(self, host: str) -> None:
        self._unlisted_watched.add(host)

        def on_change(sessions: list[str]) -> None:  # on the store's thread
            with self._names_lock:
                self._unlisted[host] = bool(sessions)
                self._liveness_moved.add(host)
            self._wake()

        with self._names_lock:
            self._unlisted[host] = True  # the watch's first call says so again, now
            self._liveness_moved.add(host)
        HostSessions.watch_all(self.store, host, on_change)

    def recheck_unlisted(self) -> None:
        """The periodic check of followed hosts neither the list nor a per-host watch says are alive: one
        batch of reads for them all (an earlier version's plugin that came back writes only its per-host
        session; one read each was ~360 requests a host at 1,000 simulated hosts starting)."""
        with self._names_lock:
            unheard = set(self._listed_soon)  # the list has not named them since: read again
        self._check_unlisted([host for host in self._followed if not self._alive(host)] + sorted(unheard), unheard)

    def _alive(self, host: str) -> bool:
        return host in self._listed or host in self._listed_soon or self._unlisted.get(host, False)

    def liveness_changed(self) -> bool:
        """Take what the liveness watches said since the last call into the flows: the cached records of
        hosts that came alive are added to the change, those of hosts that died removed. True if any did
        (never without `withdraw_dead_hosts`: then only `liveness_epoch` moves).
        (A host coming or going changes its records' flows, not the table: when hosts start one after
        another, a whole program at each was every host's table computed again per host, N^2.) Only
        the hosts the watches said something of are asked, and only their records moved."""
        with self._names_lock:
            moved, self._liveness_moved = self._liveness_moved, set()
        # A host followed since is in the flows as it was then (`_follow_hosts`); one not followed has none.
        came = {h for h in moved if h in self._followed and h not in self._alive_in_flows and self._alive(h)}
        went = {h for h in moved if h in self._alive_in_flows and not self._alive(h)}
        if not came and not went:
            return False
        self._alive_in_flows = (self._alive_in_flows | came) - went
        self._liveness_epoch += 1
        if not self.withdraw_dead_hosts:
            return False  # every record stays in the flows, whatever its host (hosts followed for `liveness_epoch`)
        # A dead host's record that arrived since the datapath was last programmed is not in the flows:
        # it leaves the change instead.
        pending = {(number, record) for number, record in self._added if record.host in went}
        self._added = [added for added in self._added if added not in pending]
        for host in came | went:
            for number, name in sorted(self._host_records.get(host, ())):
                record = self._segments[number][name]
                if host in came:
                    self._added.append((number, record))
                elif (number, record) not in pending:
                    self._removed.append((number, record))
        return True

    def _in_flows(self, record: SegmentRecord) -> bool:
        """Whether the record is in the flows: unless its host was dead when liveness was last taken in
        (`liveness_changed`). Every change, and every whole program, is reckoned from that one state."""
        return not self.withdraw_dead_hosts or record.host not in self._followed or record.host in self._alive_in_flows

    def records(self, number: int) -> tuple[SegmentRecord, ...]:
        """Other hosts' records on a segment, as last seen (sorted, so flows come out the same)."""
        key = (self._version.get(number, 0), self._liveness_epoch)
        kept = self._sorted.get(number)
        if kept is not None and kept[0] == key:
            return kept[1]
        records = [r for r in self._segments.get(number, {}).values() if r.host != self.host_id and self._in_flows(r)]
        ordered = tuple(sorted(records, key=lambda r: (r.ip, r.host, r.endpoint_id)))
        self._sorted[number] = (key, ordered)
        return ordered

    def take_change(self) -> RemoteChange:
        """What came and went since the last call (the datapath is programmed with it, or whole)."""
        change = RemoteChange(tuple(self._added), tuple(self._removed))
        self._added, self._removed = [], []
        return change

    def take_arrived(self) -> list[tuple[int, SegmentRecord]]:
        arrived, self._arrived = self._arrived, []
        return arrived
