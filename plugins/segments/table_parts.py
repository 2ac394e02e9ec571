"""A host's flow table kept in parts, so that a change computes only its own flows: the flows of the
host's networks (and their routers), computed again when the networks change; one group of flows per
local endpoint, computed once, when the endpoint appears; and one group per other host's record,
computed once, when the record arrives. An event costs flows in proportion to what changed, not to the
endpoints the host or its segments have (a host of 100 containers recomputed its 400 flows of them at
each container it started or stopped).

Where flows of two parts have one identity (table, priority, match), the order the pipelines themselves
follow decides, as in the whole table: the networks' flow first, then a local endpoint's (by endpoint
id), then another host's record's in (ip, host, endpoint) order. A datapath whose pipeline builds its
table from such parts (vxlan's) programs a change in proportion to it (`Datapath.program_change`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from acsnet.ovsctl.openflow import flow_identity
from acsnet.plugins.segments.datapath import HostView, RemoteChange
from acsnet.plugins.segments.model import SegmentEndpoint, SegmentRecord

# A part's rank: which of two flows with one identity the table takes (the lowest).
_NETWORKS = (0,)


def _endpoint_rank(endpoint: SegmentEndpoint) -> tuple:
    return 1, endpoint.endpoint_id


def _record_rank(segment: int, record: SegmentRecord) -> tuple:
    return 2, segment, record.ip, record.host, record.endpoint_id  # the order HostView's records come in


@dataclasses.dataclass(frozen=True)
class TableParts:
    """How a pipeline's whole table (`table`) is made of parts; `table(view)` must equal the parts'
    flows of the same view, as tests/test_table_parts.py checks for vxlan's."""

    table: Callable[[HostView], list[str]]  # the whole table; of a view with no endpoints or records: the networks' flows
    endpoint_flows: Callable[[SegmentEndpoint], list[str]]  # a local endpoint's flows
    record_flows: Callable[[int, SegmentRecord], list[str]]  # another host's record's flows, on a segment


class TableInParts:
    def __init__(self, parts: TableParts):
        self._parts = parts
        self._networks: tuple | None = None  # the networks the networks' part was computed of
        self._endpoints: dict[str, SegmentEndpoint] = {}  # endpoint id -> the endpoint its part was computed of
        # identity -> the one part claiming it, (rank, flow); or, where parts contend for it, rank -> flow.
        # An identity has one claim but for an address on two hosts for a moment, and a dict of one
        # entry took 3-4 times a pair's memory: 10 of a simulated agent's 54 MB at 20,000 records.
        self._claims: dict[str, tuple[tuple, str] | dict[tuple, str]] = {}
        self._by_part: dict[tuple, list[str]] = {}  # part's rank -> identities it claims
        self.computed = 0  # flows the last call computed
        self.programmed = False  # whether `whole` ran: a change applies to a table

    def whole(self, view: HostView) -> list[str]:
        """The table of `view`, every part computed again."""
        self._claims, self._by_part, self._networks, self._endpoints = {}, {}, None, {}
        self.computed = 0
        self._replace(self._own_changes(view))
        for segment, records in view.remote:
            for record in records:
                self._claim(_record_rank(segment, record), self._flows_of_record(segment, record))
        self.programmed = True
        return self.flows()

    def flows(self) -> list[str]:
        return [_winning(claims) for claims in self._claims.values()]

    def change(self, change: RemoteChange, view: HostView | None = None) -> tuple[list[str], list[str]]:
        """Apply `change`, and the host's own state in `view` if it changed too: the flows to add or
        replace, and the identities of the flows to delete."""
        self.computed = 0
        added = [(_record_rank(segment, record), self._flows_of_record(segment, record))
                 for segment, record in change.added if _record_rank(segment, record) not in self._by_part]
        removed = [_record_rank(segment, record) for segment, record in change.removed]
        touched = {i for rank in removed for i in self._by_part.get(rank, ())}
        touched |= {flow_identity(f) for _rank, flows in added for f in flows}
        own = self._own_changes(view) if view is not None else []
        touched |= {i for rank, flows in own for i in self._by_part.get(rank, ())}
        touched |= {flow_identity(f) for _rank, flows in own if flows is not None for f in flows}
        before = {i: self._winner(i) for i in touched}
        self._replace(own)
        for rank in removed:
            self._unclaim(rank)
        for rank, flows in added:
            self._claim(rank, flows)
        upserts, deletes = [], []
        for identity in sorted(touched):
            after = self._winner(identity)
            if after != before[identity]:
                (upserts.append(after) if after is not None else deletes.append(identity))
        return upserts, deletes

    def _replace(self, parts: list[tuple[tuple, list[str] | None]]) -> None:
        """Each part's flows in place of what it claimed (None: the part is gone)."""
        for rank, flows in parts:
            self._unclaim(rank)
            if flows is not None:
                self._claim(rank, flows)

    def _own_changes(self, view: HostView) -> list[tuple[tuple, list[str] | None]]:
        """The host's own parts that differ from `view`'s, each with its flows now (None: gone); the
        parts kept say so afterwards."""
        changes: list[tuple[tuple, list[str] | None]] = []
        if view.networks != self._networks:
            flows = self._parts.table(dataclasses.replace(view, endpoints=(), remote=()))
            self.computed += len(flows)
            changes.append((_NETWORKS, flows))
            self._networks = view.networks
        endpoints = {e.endpoint_id: e for e in view.endpoints}
        for endpoint_id in [i for i in self._endpoints if i not in endpoints]:
            changes.append((_endpoint_rank(self._endpoints.pop(endpoint_id)), None))
        for endpoint_id, endpoint in endpoints.items():
            if self._endpoints.get(endpoint_id) != endpoint:
                flows = self._parts.endpoint_flows(endpoint)
                self.computed += len(flows)
                changes.append((_endpoint_rank(endpoint), flows))
                self._endpoints[endpoint_id] = endpoint
        return changes

    def _winner(self, identity: str) -> str | None:
        claims = self._claims.get(identity)
        return None if claims is None else _winning(claims)

    def _flows_of_record(self, segment: int, record: SegmentRecord) -> list[str]:
        flows = self._parts.record_flows(segment, record)
        self.computed += len(flows)
        return flows

    def _claim(self, rank: tuple, flows: list[str]) -> None:
        if rank in self._by_part:
            return
        identities = []
        for flow in flows:
            identity = flow_identity(flow)
            claims = self._claims.get(identity)
            if claims is None or (isinstance(claims, tuple) and claims[0] == rank):
                self._claims[identity] = (rank, flow)
            elif isinstance(claims, tuple):
                self._claims[identity] = {claims[0]: claims[1], rank: flow}
            else:
                claims[rank] = flow
            identities.append(identity)
        self._by_part[rank] = identities

    def _unclaim(self, rank: tuple) -> None:
        for identity in self._by_part.pop(rank, ()):
            claims = self._claims.get(identity)
            if isinstance(claims, tuple):
                if claims[0] == rank:
                    del self._claims[identity]
            elif claims is not None:
                claims.pop(rank, None)
                if len(claims) == 1:  # (a dict holds two or more)
                    self._claims[identity] = next(iter(claims.items()))


def _winning(claims: tuple[tuple, str] | dict[tuple, str]) -> str:
    """The flow of an identity's claims that the table takes: the lowest rank's."""
    return claims[1] if isinstance(claims, tuple) else claims[min(claims)]
