"""What the IPAM stores: pools, address records and retentions, as typed values.

Where each lives in the store, and every read and write of them, is `acsnet.ipam.state`'s.
"""

from __future__ import annotations

import dataclasses
import time

import netaddr

from acsnet.ipam.chunks import LEGACY_CHUNK_BITS, ChunkGeometry

LOCAL_SPACE = "acsnet-local"
GLOBAL_SPACE = "acsnet-global"
POOL_NAME_OPTION = "acsnet.pool"

DEFAULT_RETENTION_SECONDS = 24 * 3600


@dataclasses.dataclass(frozen=True)
class Pool:
    pool_id: str
    space: str
    network: netaddr.IPNetwork
    sub_pool: netaddr.IPNetwork | None
    options: dict[str, str]
    shared: bool  # a local-space pool with an explicit subnet, shared by every host that asks for it
    # Addresses per chunk bitmap, fixed when the pool is created (`chunks.geometry_for`); a pool stored
    # without it (by a version before) has the chunks of then.
    chunk_bits: int = LEGACY_CHUNK_BITS

    @property
    def geometry(self) -> ChunkGeometry:
        return ChunkGeometry(self.chunk_bits)

    def to_json(self) -> dict:
        return {
            "id": self.pool_id,
            "space": self.space,
            "network": str(self.network.cidr),
            "sub_pool": str(self.sub_pool.cidr) if self.sub_pool else None,
            "options": self.options,
            "shared": self.shared,
            "chunk_bits": self.chunk_bits,
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
            int(data.get("chunk_bits", LEGACY_CHUNK_BITS)),
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
