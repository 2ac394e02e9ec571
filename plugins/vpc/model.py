"""What the vpc driver stores besides the networks and endpoints it shares with the segment drivers
(`acsnet.plugins.segments.model`: those are keyed by network id, these by the network's range).

    vpc/networks/<cidr>                          {"host_subnet_size", "max_routes", "claims": n, and on a
                                                 dual-stack network "subnet6", "host_subnet_size_v6"}: one
                                                 network (local-scope copies on each host share it);
                                                 deleted with its last host subnet
    vpc/networks/<cidr>/hosts/<host>             HostSubnet: a host's part of the network and where to
                                                 route it; "left_at" once the host left (its routes go
                                                 at once, its subnet is free again after a grace period)
    vpc/networks/<cidr>/subnets/<host-subnet>    the host holding a host subnet (no two hosts get one);
                                                 a dual-stack network's IPv6 slices are claimed here too
plus the IPAM's host-subnet record (one per family: the IPv6 one under the network's IPv6 prefix) (`acsnet.ipam.state.HostSubnetAssignment`), which tells the IPAM to
give this host's containers addresses of its host subnet: the IPAM builds its operations, a claim commits
them with the records above. The keys are built in `acsnet.plugins.vpc.state` only.
"""

from __future__ import annotations

import dataclasses

import netaddr

SUBNET_GRACE_SECONDS = 300.0


def record_group(network: netaddr.IPNetwork) -> int:
    """The number the segment agent keeps a vpc network's address records under
    (`vpc/segments/<number>`): its first address, so that networks never share one. Not a segment: a
    vpc network is its host subnets; this number is a key, as stored by every version so far."""
    return int(network.network)


def internal_mark(network: netaddr.IPNetwork) -> int:
    """What reg2 carries for an internal network's containers (`acsnet.ovsctl.vpc_pipeline`): its first
    address as a number."""
    return int(network.network)


@dataclasses.dataclass(frozen=True)
class VpcSettings:
    """What the first host to create a network decided for every host of it (`vpc/networks/<cidr>`)."""

    host_subnet_size: int
    max_routes: int
    subnet6: netaddr.IPNetwork | None = None  # a dual-stack network's IPv6 prefix
    host_subnet_size_v6: int | None = None  # the IPv6 slice each host takes of it

    def to_json(self, claims: int) -> dict:
        d = {"host_subnet_size": self.host_subnet_size, "max_routes": self.max_routes, "claims": claims}
        if self.subnet6 is not None:  # only then: an IPv4-only network's settings as before dual-stack
            d.update(subnet6=str(self.subnet6.cidr), host_subnet_size_v6=self.host_subnet_size_v6)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "VpcSettings":
        return cls(d["host_subnet_size"], d["max_routes"], netaddr.IPNetwork(d["subnet6"]) if d.get("subnet6") else None,
                   d.get("host_subnet_size_v6"))

    def describe(self) -> str:
        v6 = f", IPv6 {self.subnet6.cidr} with host_subnet_size_v6={self.host_subnet_size_v6}" if self.subnet6 else ", no IPv6"
        return f"host_subnet_size={self.host_subnet_size} and max_routes={self.max_routes}{v6}"


@dataclasses.dataclass(frozen=True)
class HostSubnet:
    host: str
    network: str  # the network's CIDR
    subnet: str  # this host's part of it
    underlay: str  # where the other hosts route it
    left_at: float | None = None
    mac: str | None = None  # the host's underlay MAC: on-link peers send to it straight from their flows
    # A dual-stack network's IPv6 prefix and this host's slice of it; None on an IPv4-only network.
    network6: str | None = None
    subnet6: str | None = None

    @property
    def gateway(self) -> netaddr.IPAddress:
        """The host's own address in its subnet: its containers' gateway."""
        return netaddr.IPNetwork(self.subnet).network + 1

    @property
    def gateway6(self) -> netaddr.IPAddress | None:
        """The host's own address in its IPv6 slice: its containers' IPv6 gateway."""
        return netaddr.IPNetwork(self.subnet6).network + 1 if self.subnet6 else None

    def to_json(self) -> dict:
        # An IPv4-only record is written as before dual-stack: plugins of the version before build it
        # with `cls(**data)`, and a field they do not know would fail them during an upgrade.
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in _OMITTED_WHEN_EMPTY or v is not None}

    @classmethod
    def from_json(cls, data: dict) -> "HostSubnet":
        # Fields a newer version added are left out, so a host may run an older version for a while.
        return cls(**{k: v for k, v in data.items() if k in _HOST_SUBNET_FIELDS})


_HOST_SUBNET_FIELDS = {f.name for f in dataclasses.fields(HostSubnet)}
_OMITTED_WHEN_EMPTY = ("network6", "subnet6")
