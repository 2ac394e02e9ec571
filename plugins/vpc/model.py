"""What the vpc driver stores besides the networks and endpoints it shares with the segment drivers
(`acsnet.plugins.segments.model`: those are keyed by network id, these by the network's range).

    vpc/networks/<cidr>                          {"host_subnet_size", "max_routes", "claims": n}: one
                                                 network (local-scope copies on each host share it)
    vpc/networks/<cidr>/hosts/<host>             HostSubnet: a host's part of the network and where to
                                                 route it; "left_at" once the host left (its routes go
                                                 at once, its subnet is free again after a grace period)
    vpc/networks/<cidr>/subnets/<host-subnet>    the host holding a host subnet (no two hosts get one)
plus the IPAM's host-subnet record (`acsnet.ipam.state.HostSubnetAssignment`), which tells the IPAM to
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
class HostSubnet:
    host: str
    network: str  # the network's CIDR
    subnet: str  # this host's part of it
    underlay: str  # where the other hosts route it
    left_at: float | None = None
    mac: str | None = None  # the host's underlay MAC: on-link peers send to it straight from their flows

    @property
    def gateway(self) -> netaddr.IPAddress:
        """The host's own address in its subnet: its containers' gateway."""
        return netaddr.IPNetwork(self.subnet).network + 1

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "HostSubnet":
        return cls(**data)
