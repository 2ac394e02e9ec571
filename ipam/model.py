"""What the IPAM stores: pools and address records, and where in the store they live.

Key layout (below the store root `/acsnet`):
    ipam/pools/<pool-id>                 Pool (JSON)
    ipam/pools/<pool-id>/hosts/<host>    {"refs": n}: hosts sharing a local-space pool
    ipam/pools/<pool-id>/chunks          {"full": [chunk, ...]}: chunks with no free address in range
    ipam/pools/<pool-id>/chunks/<n>      bitmap of offsets n*4096 .. n*4096+4095 (bytes)
    ipam/pools/<pool-id>/addresses/<ip>  AddressRecord (JSON): who holds the address
    ipam/subnets/<cidr>/<pool-id>        which pools use a subnet (auto pools must not overlap any)
    ipam/host-subnets/<cidr>/<host>      {"subnet": CIDR}: a network split per host (the vpc driver): this
                                         host's endpoints get addresses of its own subnet
    ipam/retention/<cidr>/<ip>           Retention: the application an address is kept for when its
                                         container goes (written by `acsnet front` for acsnet.app=NAME)
"""

from __future__ import annotations

import dataclasses
import time

import netaddr

from acsnet.store import ROOT, join

LOCAL_SPACE = "acsnet-local"
GLOBAL_SPACE = "acsnet-global"
POOL_NAME_OPTION = "acsnet.pool"

POOLS = join(ROOT, "ipam", "pools")
SUBNETS = join(ROOT, "ipam", "subnets")
RETENTION = join(ROOT, "ipam", "retention")
HOST_SUBNETS = join(ROOT, "ipam", "host-subnets")
DEFAULT_RETENTION_SECONDS = 24 * 3600


def pool_path(pool_id: str, *rest: str) -> str:
    return join(POOLS, pool_id, *rest)


def subnet_key(network: netaddr.IPNetwork) -> str:
    """A network as a store key's name: `/` is a path separator there."""
    return str(network.cidr).replace("/", "_")


def network_of_key(key: str) -> netaddr.IPNetwork:
    """The inverse of `subnet_key`."""
    return netaddr.IPNetwork(key.replace("_", "/"))


@dataclasses.dataclass(frozen=True)
class Pool:
    pool_id: str
    space: str
    network: netaddr.IPNetwork
    sub_pool: netaddr.IPNetwork | None
    options: dict[str, str]
    shared: bool  # a local-space pool with an explicit subnet, shared by every host that asks for it

    def to_json(self) -> dict:
        return {
            "id": self.pool_id,
            "space": self.space,
            "network": str(self.network.cidr),
            "sub_pool": str(self.sub_pool.cidr) if self.sub_pool else None,
            "options": self.options,
            "shared": self.shared,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Pool":
        return cls(
            data["id"],
            data["space"],
            netaddr.IPNetwork(data["network"]),
            netaddr.IPNetwork(data["sub_pool"]) if data.get("sub_pool") else None,
            data.get("options") or {},
            data.get("shared", False),
        )


ENDPOINT, GATEWAY, AUX, RETAINED = "endpoint", "gateway", "aux", "retained"


@dataclasses.dataclass(frozen=True)
class AddressRecord:
    kind: str  # endpoint | gateway | aux | retained
    holders: tuple[str, ...]  # host ids; an endpoint address has exactly one; a retained one, its application
    mac: str | None = None
    since: float = dataclasses.field(default_factory=time.time)
    until: float | None = None  # a retained address: kept for its application until then

    def to_json(self) -> dict:
        data = {"kind": self.kind, "holders": list(self.holders), "mac": self.mac, "since": self.since}
        return {**data, "until": self.until} if self.until is not None else data

    @classmethod
    def from_json(cls, data: dict) -> "AddressRecord":
        return cls(data["kind"], tuple(data["holders"]), data.get("mac"), data.get("since", 0.0), data.get("until"))


def retention_path(network: netaddr.IPNetwork, address) -> str:
    return join(RETENTION, subnet_key(network), str(address))


@dataclasses.dataclass(frozen=True)
class Retention:
    """An address of an application's container, to keep for the application when the container goes."""

    app: str
    seconds: float = DEFAULT_RETENTION_SECONDS

    def to_json(self) -> dict:
        return {"app": self.app, "seconds": self.seconds}

    @classmethod
    def from_json(cls, data: dict) -> "Retention":
        return cls(data["app"], float(data.get("seconds", DEFAULT_RETENTION_SECONDS)))
