"""How full each IPAM pool is, and which networks use it: what `acsnet pools` prints and the dashboard's
pools bar shows. Counted from the chunk bitmaps (read in one batch, none for a chunk the summary marks
full), never by reading the pool's address records.

Counts are over the pool's allocation range (`--ip-range`, else the subnet less its network and
broadcast addresses): `used` is every address taken in it (endpoints, gateway, aux addresses and those
retained for an application), `retained` those kept for an application with no container now,
`free` what dynamic allocation can still hand out.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from acsnet.ipam import chunks
from acsnet.ipam.model import RETAINED, Pool
from acsnet.ipam.state import AddressRecords, ChunkBitmaps, ChunkSummary, PoolHostReferences, PoolRecords, Retentions
from acsnet.plugins.segments import state as segment_state
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.store import Store


@dataclasses.dataclass(frozen=True)
class NetworkUse:
    """A network of a segment driver on one host (drivers never learn Docker's network names)."""

    driver: str
    network_id: str
    segment: int
    subnet: str
    host: str


@dataclasses.dataclass(frozen=True)
class PoolUsage:
    pool_id: str
    space: str
    subnet: str
    range: str | None  # --ip-range, if the pool has one
    shared: bool
    size: int  # addresses in the allocation range
    used: int
    retained: int
    hosts: list[str]  # hosts holding a reference to a shared local pool
    networks: list[str]  # "<driver> <network-id12> (<segment>) on <hosts>"

    @property
    def free(self) -> int:
        return self.size - self.used

    @property
    def in_use(self) -> int:
        return self.used - self.retained

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "free": self.free, "in_use": self.in_use}


def range_size(pool: Pool) -> int:
    span = chunks.allocation_range(pool.network, pool.sub_pool)
    return 0 if span.empty else span.last - span.first + 1


def used_in_range(pool: Pool, bitmaps: dict[int, int], full: set[int]) -> int:
    """Addresses taken in the allocation range: bitmaps for the chunks given, the range's whole share of
    a chunk the summary marks full (its bitmap need not be read)."""
    span = chunks.allocation_range(pool.network, pool.sub_pool)
    used = 0
    for chunk in set(bitmaps) | full:
        bits = pool.geometry.bits_in_chunk(chunk, span)
        if bits.empty:
            continue
        if chunk in full:
            used += bits.last - bits.first + 1
            continue
        mask = ((1 << (bits.last + 1)) - 1) ^ ((1 << bits.first) - 1)
        used += (bitmaps[chunk] & mask).bit_count()
    return used


def read_used(store: Store, pool: Pool) -> int:
    summary = ChunkSummary.read(store, pool.pool_id)
    full = summary[0] if summary else set()
    bitmaps = ChunkBitmaps.read_many(store, pool.pool_id, [n for n in ChunkBitmaps.numbers(store, pool.pool_id) if n not in full])
    return used_in_range(pool, bitmaps, full)


def retained_counts(store: Store, pools: dict[str, Pool]) -> dict[str, int]:
    """Per pool, the addresses retained for an application: one read per retention entry (an
    application's addresses), none per address of the pool."""
    counts = dict.fromkeys(pools, 0)
    for network, ip, _retention in Retentions.read_all(store):
        for pool in pools.values():
            if pool.network.cidr == network.cidr:
                record = AddressRecords.read(store, pool.pool_id, ip)
                if record is not None and record.kind == RETAINED:
                    counts[pool.pool_id] += 1
    return counts


def network_uses(store: Store) -> list[NetworkUse]:
    """Every segment network on every host: one read per host and driver, plus one per network."""
    found = []
    for layout in LAYOUTS.values():
        for host in segment_state.hosts(store, layout):
            for network in segment_state.read_host_networks(store, layout, host).values():
                found.append(NetworkUse(layout.driver, network.network_id, network.segment, str(network.subnet.cidr), host))
    return found


SHOWN = 8  # hosts and network ids named per line; the rest are counted


def _some(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def networks_of(pool: Pool, uses: list[NetworkUse]) -> list[str]:
    """The networks whose subnet is the pool's, one line per driver and segment with the hosts it is on
    (a local-scope network is one network per host, each with its own id)."""
    grouped: dict[tuple[str, int], list[NetworkUse]] = {}
    for use in uses:
        if use.subnet == str(pool.network.cidr):
            grouped.setdefault((use.driver, use.segment), []).append(use)
    lines = []
    for (driver, segment), found in sorted(grouped.items(), key=lambda i: (i[0][0], str(i[0][1]))):
        number = {"vlan": f" VLAN {segment}", "vxlan": f" VNI {segment}"}.get(driver, "")  # vpc's is its range
        ids = sorted({u.network_id[:12] for u in found})
        lines.append(f"{driver}{number} on {_some(sorted({u.host for u in found}))} "
                     f"(network{'s' if len(ids) > 1 else ''} {_some(ids)})")
    return lines


def pool_usages(store: Store, used_of: Callable[[Pool], int] | None = None,
                uses: list[NetworkUse] | None = None) -> list[PoolUsage]:
    """Every pool's usage, by subnet. `used_of` and `uses` let the dashboard answer from what its
    watches keep; the CLI reads them from the store."""
    pools = PoolRecords.read_all(store)
    retained = retained_counts(store, pools)
    uses = network_uses(store) if uses is None else uses
    usages = []
    for pool_id, pool in pools.items():
        usages.append(PoolUsage(
            pool_id, pool.space, str(pool.network.cidr), str(pool.sub_pool.cidr) if pool.sub_pool else None, pool.shared,
            range_size(pool), used_of(pool) if used_of else read_used(store, pool), retained[pool_id],
            PoolHostReferences.hosts(store, pool_id) if pool.shared else [], networks_of(pool, uses)))
    return sorted(usages, key=lambda u: (u.subnet, u.pool_id))
