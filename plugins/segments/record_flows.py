"""A host's flow table kept in two parts, so that another host's record that came or went changes only
its own flows: the flows of what this host has (networks, endpoints, routers), computed again when the
host's own state changes (in proportion to it: no other host's record is in it), and one group of
flows per other host's record, computed once, when the record arrives.

Where a record's flow has the identity (table, priority, match) of one of the host's own flows, or of
another record's, the order the pipelines themselves follow decides, as in the whole table: the host's
own flow first, then the record first in (ip, host, endpoint) order. A datapath whose pipeline builds
its table this way (vxlan's) programs a change in proportion to it (`Datapath.program_change`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from acsnet.ovsctl.openflow import flow_identity
from acsnet.plugins.segments.datapath import HostView, RemoteChange
from acsnet.plugins.segments.model import SegmentRecord


def _rank(record: SegmentRecord) -> tuple[str, str, str]:
    return record.ip, record.host, record.endpoint_id  # the order HostView's records come in


class RecordFlows:
    def __init__(self, own_flows: Callable[[HostView], list[str]], record_flows: Callable[[int, SegmentRecord], list[str]]):
        self._own_flows = own_flows  # the table of a view without other hosts' records
        self._record_flows = record_flows
        self._own: dict[str, str] = {}  # identity -> flow
        self._claims: dict[str, dict[tuple, str]] = {}  # identity -> record's rank -> its flow
        self._by_record: dict[tuple[int, tuple], list[str]] = {}  # (segment, rank) -> identities it claims
        self.computed = 0  # flows the last call computed
        self.programmed = False  # whether `whole` ran: a change applies to a table

    def whole(self, view: HostView) -> list[str]:
        """The table of `view`, every part computed again."""
        own = self._own_flows(dataclasses.replace(view, remote=()))
        self._own = {flow_identity(f): f for f in own}
        self._claims, self._by_record = {}, {}
        self.computed = len(own)
        for segment, records in view.remote:
            for record in records:
                self._claim(segment, record)
        self.programmed = True
        return self.flows()

    def flows(self) -> list[str]:
        return list(self._own.values()) + [claims[min(claims)] for identity, claims in self._claims.items()
                                           if identity not in self._own]

    def change(self, change: RemoteChange, view: HostView | None = None) -> tuple[list[str], list[str]]:
        """Apply `change`, and the host's own state in `view` if it changed too: the flows to add or
        replace, and the identities of the flows to delete."""
        self.computed = 0
        own = None
        if view is not None:
            computed = self._own_flows(dataclasses.replace(view, remote=()))
            self.computed += len(computed)
            own = {flow_identity(f): f for f in computed}
        added = [(segment, record, self._flows_of(segment, record)) for segment, record in change.added
                 if (segment, _rank(record)) not in self._by_record]
        touched = {i for segment, record in change.removed for i in self._by_record.get((segment, _rank(record)), ())}
        touched |= {flow_identity(f) for _segment, _record, flows in added for f in flows}
        if own is not None:
            touched |= (own.keys() ^ self._own.keys()) | {i for i, f in own.items() if self._own.get(i, f) != f}
        before = {i: self._winner(i) for i in touched}
        if own is not None:
            self._own = own
        for segment, record in change.removed:
            self._unclaim(segment, record)
        for segment, record, flows in added:
            self._claim(segment, record, flows)
        upserts, deletes = [], []
        for identity in sorted(touched):
            after = self._winner(identity)
            if after != before[identity]:
                (upserts.append(after) if after is not None else deletes.append(identity))
        return upserts, deletes

    def _winner(self, identity: str) -> str | None:
        if identity in self._own:
            return self._own[identity]
        claims = self._claims.get(identity)
        return claims[min(claims)] if claims else None

    def _flows_of(self, segment: int, record: SegmentRecord) -> list[str]:
        flows = self._record_flows(segment, record)
        self.computed += len(flows)
        return flows

    def _claim(self, segment: int, record: SegmentRecord, flows: list[str] | None = None) -> None:
        key = (segment, _rank(record))
        if key in self._by_record:
            return
        identities = []
        for flow in self._flows_of(segment, record) if flows is None else flows:
            identity = flow_identity(flow)
            self._claims.setdefault(identity, {})[key] = flow
            identities.append(identity)
        self._by_record[key] = identities

    def _unclaim(self, segment: int, record: SegmentRecord) -> None:
        key = (segment, _rank(record))
        for identity in self._by_record.pop(key, ()):
            claims = self._claims.get(identity, {})
            claims.pop(key, None)
            if not claims:
                self._claims.pop(identity, None)
