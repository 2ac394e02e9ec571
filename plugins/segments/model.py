"""What a segment driver (vlan, vxlan, vpc) stores, and where.

A segment is one broadcast domain named by a number: a VLAN ID for the vlan driver, a VNI for vxlan.
A vpc network is no segment (each host routes its own host subnet of it: `acsnet.plugins.vpc.model`);
its address records are kept under the number `acsnet.plugins.vpc.model.record_group` gives.
Key layout (below the store root `/acsnet`, `<driver>` being `vlan`, `vxlan` or `vpc`):
    <driver>/hosts/<host>/networks/<network-id>    SegmentNetwork: this host's networks (dockerd never
                                                   replays them)
    <driver>/global-networks/<network-id>          SegmentNetwork: a global-scope network, for every
                                                   host (dockerd creates and deletes it on one only)
    <driver>/hosts/<host>/endpoints/<endpoint-id>  SegmentEndpoint: this host's endpoints, the desired
                                                   local state
    <driver>/segments/<number>/<ip>~<endpoint-id12>
                                                   SegmentRecord: who holds an address on a segment, for
                                                   every host's ARP answers and (vxlan) tunnel routes;
                                                   immutable, so a watch on the children of a segment
                                                   sees every change as a name added or removed
    <driver>/hosts/<host>/published/<endpoint-id>  an endpoint's published ports (vxlan)
    <driver>/hosts/<host>/container-names          NamesChanged: which endpoint records the host's
                                                   container namer changed last, and how many times
                                                   it has (one value watch per host tells readers)
    <driver>/hosts/<host>/cluster-node             global scope: the node address the host's dockerd
                                                   announced (DiscoverNew) since it activated the driver
    <driver>/networks/<network-id>                 SegmentNetwork, read only: where global networks
                                                   were kept before `global-networks`, beside vpc's
                                                   ranges (`vpc/networks/<cidr>`, acsnet.plugins.vpc.state);
                                                   a plugin moves them at start (vpc deletes its own:
                                                   failed creates left them)

`Layout` is the only place that builds these keys; `acsnet.plugins.segments.state` reads and writes the
records for code outside the drivers (ops, audit, tests).
"""

from __future__ import annotations

import dataclasses
import sys

import netaddr

from acsnet.store import ROOT, join

DRIVERS = ("vlan", "vxlan", "vpc")


@dataclasses.dataclass(frozen=True)
class Layout:
    """The store paths of one segment driver."""

    driver: str

    @property
    def root(self) -> str:
        return join(ROOT, self.driver)

    @property
    def hosts(self) -> str:
        return join(self.root, "hosts")

    def host_networks(self, host: str) -> str:
        return join(self.hosts, host, "networks")

    def host_network(self, host: str, network_id: str) -> str:
        return join(self.host_networks(host), network_id)

    def host_endpoints(self, host: str) -> str:
        return join(self.hosts, host, "endpoints")

    def host_cluster_node(self, host: str) -> str:
        """Global scope: the node address the host's dockerd announced (DiscoverNew) since it last
        activated the driver; absent when its dockerd has no cluster store."""
        return join(self.hosts, host, "cluster-node")

    def host_endpoint(self, host: str, endpoint_id: str) -> str:
        return join(self.host_endpoints(host), endpoint_id)

    def host_container_names(self, host: str) -> str:
        """`<driver>/hosts/<host>/container-names`: the host's `NamesChanged`."""
        return join(self.hosts, host, "container-names")

    def published(self, host: str, endpoint_id: str | None = None) -> str:
        """`<driver>/hosts/<host>/published/<endpoint-id>`: an endpoint's published ports (vxlan)."""
        published = join(self.hosts, host, "published")
        return published if endpoint_id is None else join(published, endpoint_id)

    @property
    def global_networks(self) -> str:
        return join(self.root, "global-networks")

    def global_network(self, network_id: str) -> str:
        return join(self.global_networks, network_id)

    @property
    def legacy_global_networks(self) -> str:
        """Where global networks were kept before they had a key of their own: `<driver>/networks`,
        which the vpc driver uses for its networks' ranges (`acsnet.plugins.vpc.model`)."""
        return join(self.root, "networks")

    def legacy_global_network(self, name: str) -> str:
        return join(self.legacy_global_networks, name)

    @property
    def segments(self) -> str:
        return join(self.root, "segments")

    def segment(self, number: int | str) -> str:
        return join(self.segments, str(number))

    def record(self, number: int, ip: str, endpoint_id: str) -> str:
        return self.record_key(number, record_name(ip, endpoint_id))

    def record_key(self, number: int | str, name: str) -> str:
        """A segment record by its name as listed (`<ip>~<endpoint-id12>`)."""
        return join(self.segment(number), name)


def record_name(ip: str, endpoint_id: str) -> str:
    """A segment record's name: its address first, so the records of one address are found by name alone."""
    return f"{ip}~{endpoint_id[:12]}"


def record_name_ip(name: str) -> str:
    """The address a segment record's name (`record_name`) is of."""
    return name.split("~")[0]


LAYOUTS = {driver: Layout(driver) for driver in DRIVERS}


@dataclasses.dataclass(frozen=True)
class SegmentNetwork:
    network_id: str
    segment: int
    subnet: netaddr.IPNetwork
    gateway: str | None
    gateway_mac: str | None
    mtu: int
    # `--internal`: no traffic in or out beyond the network's own containers (no route off the
    # network, no NAT, no published ports). Stored, as dockerd never sends CreateNetwork again.
    internal: bool = False
    # A dual-stack network's IPv6 subnet and gateway (`--ipv6`); None on an IPv4-only network.
    subnet6: netaddr.IPNetwork | None = None
    gateway6: str | None = None
    # A swarm manager allocated it (AllocateNetwork): every node creates and deletes its own copy, as its
    # tasks come and go, so it is no cluster-wide record, and what the manager allocated for it (a
    # generated VNI) is freed by FreeNetwork only, not by a node deleting its copy.
    swarm: bool = False
    # vlan `-o ipv6_ra=accept`: the VLAN router's advertisements are let through to the containers.
    accept_ra: bool = False
    # A swarm vpc network's route limit (`-o max_routes`): each of its addresses is a route of its own
    # (acsnet.plugins.vpc.driver). None for every other network.
    max_routes: int | None = None

    def to_json(self) -> dict:
        d = {"network_id": self.network_id, "segment": self.segment, "subnet": str(self.subnet.cidr),
             "gateway": self.gateway, "gateway_mac": self.gateway_mac, "mtu": self.mtu, "internal": self.internal,
             "swarm": self.swarm}
        if self.subnet6 is not None:  # only then: a record an older plugin can still read otherwise
            d.update(subnet6=str(self.subnet6.cidr), gateway6=self.gateway6)
        if self.accept_ra:
            d.update(accept_ra=True)
        if self.max_routes is not None:  # likewise
            d["max_routes"] = self.max_routes
        return d

    @classmethod
    def from_json(cls, d: dict) -> "SegmentNetwork":
        return cls(d["network_id"], d["segment"], netaddr.IPNetwork(d["subnet"]), d.get("gateway"),
                   d.get("gateway_mac"), d["mtu"], bool(d.get("internal", False)),
                   netaddr.IPNetwork(d["subnet6"]) if d.get("subnet6") else None, d.get("gateway6"),
                   bool(d.get("swarm", False)), bool(d.get("accept_ra", False)), d.get("max_routes"))


def host_end(pair: str) -> str:
    """The host end of the veth pair named `pair` (an endpoint's `pair`, or its ID's first 12 characters)."""
    return f"vh{pair}"


def container_end(pair: str) -> str:
    """... and its container end."""
    return f"vc{pair}"


@dataclasses.dataclass(frozen=True)
class SegmentEndpoint:
    endpoint_id: str
    network_id: str
    segment: int
    ip: str
    prefixlen: int
    mac: str
    since: float = 0.0  # when it was created (orphans and audit give new endpoints a grace period)
    # The container on the endpoint, as the host's dockerd names it: dockerd sends neither to a plugin,
    # so the host's container namer (`acsnet.plugins.segments.containers`) fills them in after the
    # container started ("" until then, and for containers dockerd does not list).
    container_id: str = ""
    container_name: str = ""
    ip6: str = ""  # its IPv6 address on a dual-stack network ("" on an IPv4-only one)
    # What its veth pair is named by after `vh` (host end) and `vc` (container end): "" for the first 12
    # characters of its ID; a pair taken from the bridge's spares (acsnet.plugins.segments.ports) keeps
    # the name it was made with ("s" and 11 hex digits: never an endpoint ID's).
    pair: str = ""

    @property
    def host_port(self) -> str:
        return host_end(self.pair or self.endpoint_id[:12])

    @property
    def container_port(self) -> str:
        return container_end(self.pair or self.endpoint_id[:12])

    def to_json(self) -> dict:
        # Unnamed endpoints are written as before names existed, for the same reason as `_without_empty_ip6`.
        d = _without_empty_ip6(dataclasses.asdict(self))
        for field in ("container_id", "container_name", "pair"):
            if not d[field]:
                del d[field]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "SegmentEndpoint":
        # Fields a newer version added are left out, so a host may run an older version for a while.
        return cls(**{k: v for k, v in d.items() if k in _ENDPOINT_FIELDS})

    def named(self, container_id: str, container_name: str) -> "SegmentEndpoint":
        return dataclasses.replace(self, container_id=container_id, container_name=container_name)


_ENDPOINT_FIELDS = {f.name for f in dataclasses.fields(SegmentEndpoint)}


@dataclasses.dataclass(frozen=True)
class NamesChanged:
    """What a host's container namer changed last: `count` grows by one per pass that changed endpoint
    records, `endpoint_ids` are that pass's. A reader that saw `count - 1` reads just those records; one
    that missed a pass (watches collapse changes) reads the host's records again."""

    count: int
    endpoint_ids: tuple[str, ...]

    def to_json(self) -> dict:
        return {"count": self.count, "endpoint_ids": list(self.endpoint_ids)}

    @classmethod
    def from_json(cls, d: dict) -> "NamesChanged":
        return cls(int(d["count"]), tuple(d["endpoint_ids"]))


@dataclasses.dataclass(frozen=True, slots=True)
class SegmentRecord:
    host: str
    host_mac: str  # vlan: what the ARP proxy answers for a remote container (MAC NAT)
    vtep: str  # vxlan: the tunnel endpoint the container sits behind ("" for vlan)
    ip: str
    mac: str
    endpoint_id: str
    # The endpoint's IPv6 address on a dual-stack network, answered in neighbour solicitations. The
    # record stays named by its IPv4 address: the IPAM holds each IPv6 address once per pool.
    ip6: str = ""

    def to_json(self) -> dict:
        return _without_empty_ip6(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, d: dict) -> "SegmentRecord":
        # A host's name, MAC and VTEP once per agent, not once per record: an agent of a cluster of
        # 100,000 endpoints holds ~20,000 records of a few hundred hosts (3 of its 54 MB, simulated).
        return cls(**{k: sys.intern(v) if k in _PER_HOST and isinstance(v, str) else v for k, v in d.items()})


_PER_HOST = frozenset({"host", "host_mac", "vtep"})


def _without_empty_ip6(d: dict) -> dict:
    """An IPv4-only endpoint's record as before dual-stack: plugins of the version before read
    records with `cls(**d)`, and a field they do not know would fail them during an upgrade."""
    if not d.get("ip6"):
        d.pop("ip6", None)
    return d
