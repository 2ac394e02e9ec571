"""What the vlan driver stores, and where.

Key layout (below the store root `/acsnet`):
    vlan/hosts/<host>/networks/<network-id>    VlanNetwork: this host's networks (dockerd never replays them)
    vlan/hosts/<host>/endpoints/<endpoint-id>  VlanEndpoint: this host's endpoints, the desired local state
    vlan/segments/<vlan>/<ip>~<endpoint-id12>  SegmentRecord: who holds an address on a VLAN, for the ARP
                                               proxy of every host; immutable, so a watch on the children
                                               of a segment sees every change as a name added or removed
"""

from __future__ import annotations

import dataclasses

import netaddr

from plugins.store import ROOT, join

VLAN_ROOT = join(ROOT, "vlan")


def host_networks(host: str) -> str:
    return join(VLAN_ROOT, "hosts", host, "networks")


def host_endpoints(host: str) -> str:
    return join(VLAN_ROOT, "hosts", host, "endpoints")


def segment(vlan: int) -> str:
    return join(VLAN_ROOT, "segments", str(vlan))


def segment_key(ip: str, endpoint_id: str) -> str:
    return f"{ip}~{endpoint_id[:12]}"


@dataclasses.dataclass(frozen=True)
class VlanNetwork:
    network_id: str
    vlan: int
    subnet: netaddr.IPNetwork
    gateway: str | None
    gateway_mac: str | None
    mtu: int

    def to_json(self) -> dict:
        return {"network_id": self.network_id, "vlan": self.vlan, "subnet": str(self.subnet.cidr),
                "gateway": self.gateway, "gateway_mac": self.gateway_mac, "mtu": self.mtu}

    @classmethod
    def from_json(cls, d: dict) -> "VlanNetwork":
        return cls(d["network_id"], d["vlan"], netaddr.IPNetwork(d["subnet"]), d.get("gateway"), d.get("gateway_mac"), d["mtu"])


@dataclasses.dataclass(frozen=True)
class VlanEndpoint:
    endpoint_id: str
    network_id: str
    vlan: int
    ip: str
    prefixlen: int
    mac: str
    since: float = 0.0  # when it was created (audit gives new endpoints a grace period)

    @property
    def host_port(self) -> str:
        return f"vh{self.endpoint_id[:12]}"

    @property
    def container_port(self) -> str:
        return f"vc{self.endpoint_id[:12]}"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "VlanEndpoint":
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class SegmentRecord:
    host: str
    host_mac: str
    ip: str
    mac: str
    endpoint_id: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "SegmentRecord":
        return cls(**d)
