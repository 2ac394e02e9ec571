"""Other hosts' segment records as this host last saw them, and whether those hosts are alive.

Watches run on the store's thread: they only note the names they were given and wake the worker, which
brings the cache in line (`refresh`) under the agent's lock. Records are immutable, so only new names
are read."""

from __future__ import annotations

from typing import Callable

from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import Layout, SegmentRecord
from acsnet.store import Store
from acsnet.store.liveness import HostSessions


class RemoteRecords:
    def __init__(self, store: Store, layout: Layout, host_id: str, *, withdraw_dead_hosts: bool,
                 wake: Callable[[], None]):
        self.store = store
        self.layout = layout
        self.host_id = host_id
        self.withdraw_dead_hosts = withdraw_dead_hosts  # follow liveness, leave dead hosts' records out
        self._wake = wake
        self._segments: dict[int, dict[str, SegmentRecord]] = {}
        self._names: dict[int, list[str]] = {}  # latest names seen by each segment watch
        self.watched: set[int] = set()
        self._alive: dict[str, bool] = {}  # other hosts with records, as their session watches last said
        self._alive_in_flows: frozenset[str] = frozenset()
        self._arrived: list[tuple[int, SegmentRecord]] = []  # other hosts' records new since the first load

    def watch(self, number: int, *, collect_arrivals: bool) -> None:
        if number in self.watched:
            return
        self.watched.add(number)
        self._segments.setdefault(number, {})

        def on_change(names: list[str]) -> None:  # on the store's thread: hand over, never block
            self._names[number] = names
            self._wake()

        state.watch_segment(self.store, self.layout, number, on_change)
        self.refresh(number, collect_arrivals=collect_arrivals)

    def refresh(self, number: int, *, collect_arrivals: bool) -> bool:
        """Bring the cached records of a segment in line with its names; True if a record of another
        host changed (this host's own records do not change its flows)."""
        names = self._names.get(number)
        if names is None:
            names = state.segment_record_names(self.store, self.layout, number)
            self._names[number] = names
        cache = self._segments.setdefault(number, {})
        changed = False
        for gone in set(cache) - set(names):
            changed |= cache.pop(gone).host != self.host_id
        for name in set(names) - set(cache):
            record = state.read_segment_record(self.store, self.layout, number, name)
            if record is None:
                continue
            cache[name] = record
            if record.host != self.host_id:
                changed = True
                if self.withdraw_dead_hosts:
                    self._watch_host(record.host)
                if collect_arrivals:
                    self._arrived.append((number, record))
        return changed

    def refresh_all(self, *, collect_arrivals: bool) -> bool:
        return any([self.refresh(number, collect_arrivals=collect_arrivals) for number in list(self.watched)])

    def _watch_host(self, host: str) -> None:
        """Follow whether a host is alive (any of its plugins holds a store session)."""
        if host in self._alive:
            return
        self._alive[host] = True

        def on_change(sessions: list[str]) -> None:  # on the store's thread
            self._alive[host] = bool(sessions)
            self._wake()

        HostSessions.watch_all(self.store, host, on_change)

    def liveness_changed(self) -> bool:
        alive = frozenset(h for h, up in self._alive.items() if up)
        changed, self._alive_in_flows = alive != self._alive_in_flows, alive
        return changed

    def records(self, number: int) -> tuple[SegmentRecord, ...]:
        """Other hosts' records on a segment, as last seen (sorted, so flows come out the same)."""
        records = [r for r in self._segments.get(number, {}).values() if r.host != self.host_id
                   and (not self.withdraw_dead_hosts or self._alive.get(r.host, True))]
        return tuple(sorted(records, key=lambda r: (r.ip, r.host, r.endpoint_id)))

    def take_arrived(self) -> list[tuple[int, SegmentRecord]]:
        arrived, self._arrived = self._arrived, []
        return arrived
