"""The one interface between the segment agent and a driver's datapath, as flannel's backends sit behind
`backend.Network`: the agent owns the store, its watches, the ports' lifecycle and the worker loop; a
driver gives it one `Datapath` object that says what a set of networks and endpoints needs on this host
(flows, port settings, routes) and programs it.

A datapath is handed a `HostView` (this host's networks, its endpoints whose port is on the bridge,
and the records other hosts hold on each segment) and makes the host match it in `program`: the same
call whether one endpoint changed, a watch fired on another host's change, or the plugin restarted.
The OVS I/O every driver shares (endpoint ports, veths, the flow table of one cookie) is its `bridge`
(`acsnet.plugins.segments.bridge`).

Implementations: `acsnet.plugins.vlan.agent.VlanOvsDatapath`, `acsnet.plugins.vxlan.agent.VxlanOvsDatapath`,
`acsnet.plugins.vpc.agent.VpcOvsDatapath` on Open vSwitch, and `acsnet.plugins.segments.recording.
RecordingDatapath`, which stands in for OVS in fast tests and benchmarks.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING

from acsnet.plugins.segments.model import SegmentEndpoint, SegmentNetwork, SegmentRecord

if TYPE_CHECKING:
    from acsnet.plugins.segments.agent import SegmentAgent
    from acsnet.plugins.segments.bridge import Bridge


@dataclasses.dataclass(frozen=True)
class HostView:
    """What the datapath of one host is programmed from, as the agent last saw it."""

    host_id: str
    networks: tuple[SegmentNetwork, ...]  # this host's, by network id
    endpoints: tuple[SegmentEndpoint, ...]  # this host's whose port is on the bridge
    remote: tuple[tuple[int, tuple[SegmentRecord, ...]], ...]  # segment -> other hosts' records, sorted

    def segments(self) -> list[int]:
        return sorted({n.segment for n in self.networks})

    def remote_records(self, segment: int) -> tuple[SegmentRecord, ...]:
        return dict(self.remote).get(segment, ())


@dataclasses.dataclass(frozen=True)
class RemoteChange:
    """Other hosts' records that came and went on the watched segments since the datapath was last
    programmed, as (segment, record); only records the flows take (a dead host's are left out)."""

    added: tuple[tuple[int, SegmentRecord], ...] = ()
    removed: tuple[tuple[int, SegmentRecord], ...] = ()


class Datapath(abc.ABC):
    """One driver's datapath on one host. Everything but `record_for` and `program`
    has a default: a driver defines only what differs.

    Called under the agent's lock, unless said otherwise; none of these may wait on the worker."""

    driver: str  # "vlan", "vxlan", "vpc": the store layout and the owner named on its ports
    segment_name = "segment"  # how users call a network's segment: "VLAN", "VNI"
    withdraw_dead_hosts = False  # leave out the records of hosts whose every session ended
    # Global scope: whether every host takes a network as soon as it exists, rather than at its first
    # endpoint. vpc must: the IPAM hands out a host's first address before the driver hears of it.
    adopt_global_networks = False
    legacy_global_networks_worked = True  # see state.move_legacy_global_networks
    bridge: "Bridge"  # this driver's bridge: ports, veths and the flow table of its cookie
    host_mac: str  # the uplink's MAC
    uplink_mtu: int

    @property
    def default_mtu(self) -> int:
        """A network's MTU when its creator gives none."""
        return self.uplink_mtu

    def start(self, agent: "SegmentAgent") -> None:
        """Make what every flow needs (a bridge, a tunnel port), before the agent's first load; keep
        `agent` for what the driver does on its own (its store, lock, `sync` and `wake`). Not locked."""

    def load(self) -> None:
        """Read the driver's own records, with the agent's first load (retried until the store answers)."""

    def adopt(self, network: SegmentNetwork) -> SegmentNetwork:
        """A global network created on another host, as this host keeps it."""
        return network

    def describe(self, network: SegmentNetwork) -> str:
        """Where a network's addresses are, as users name it in errors: "VLAN 217", "VNI 110"."""
        return f"{self.segment_name} {network.segment}"

    def place_of(self, endpoint: SegmentEndpoint) -> dict:
        """Where the endpoint is, for EndpointOperInfo (`docker network inspect --verbose`): {"vni": 110}."""
        return {self.segment_name.lower(): endpoint.segment}

    @abc.abstractmethod
    def record_for(self, endpoint: SegmentEndpoint) -> SegmentRecord:
        """What other hosts learn of this host's endpoint (its segment record)."""

    def port_options(self) -> dict:
        """OVSDB settings of each of the driver's ports besides its owner, an endpoint's and a spare's (made
        ahead) alike, so that taking a spare changes none: none by default; vlan and vpc, whose
        containers share the host bridge with NORMAL switching (the host's own traffic), the reserved
        VLAN 4095, which it never floods onto."""
        return {}

    @abc.abstractmethod
    def program(self, view: HostView) -> list[str]:
        """Make the host match `view`: what the flows will name first, then the whole flow table
        (through `bridge.install_flows`), then remove what the flows no longer name. Returns the flows."""

    def program_change(self, change: RemoteChange, view: HostView | None = None) -> bool:
        """Change only the flows of the other hosts' records in `change` and, if `view` is given (this
        host's own state now, its `remote` empty), of what this host changed: work in proportion to what
        changed, not to every endpoint. False if this datapath programs only whole views, or could not
        now (the agent then calls `program`)."""
        return False

    def flow_marks(self, network: SegmentNetwork) -> tuple[str, ...]:
        """Substrings that tell a network's flows apart, for the per-network flow gauge."""
        return ()

    def endpoint_removed(self, endpoint: SegmentEndpoint) -> None:
        """The endpoint's records are gone: drop what the driver kept of it."""

    def announce(self, view: HostView, joined: list[SegmentEndpoint], arrived: list[tuple[int, SegmentRecord]]) -> None:
        """Addresses that appeared: on this host (a container joined) and on others (records new since
        the first load, their flows installed). On the worker, not locked. The view holds no other
        hosts' records (as `background`'s)."""

    def background(self, view: HostView) -> None:
        """The driver's own work on each pass of the worker (not locked). The view holds this host's
        networks and endpoints, not other hosts' records: a pass comes with every watch event, and a
        driver that needs them asks the agent's `view()` under its lock."""

    def next_wake(self) -> float | None:
        """Seconds until the driver has timed work of its own, if it has some."""
        return None
