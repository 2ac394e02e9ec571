"""IP retention per application: the addresses of an application's containers are kept for it when
its containers go, so that a redeployed application gets them back.

`acsnet front` records, when a container labelled acsnet.app=NAME starts, which addresses it has
(`ipam/retention/<subnet>/<ip>`, committed with the address's record: `remember`); when dockerd releases
such an address the IPAM keeps it as `retained` for NAME until the retention period ends
(`AcsnetIpam._retained`); an address released before the front recorded it becomes `retained` at once.
A retained address has its bit set like one in use, so dynamic allocation never hands it out; the front
pins NAME's next containers to its retained addresses. Listing, releasing and expiry are here.
"""

from __future__ import annotations

import dataclasses
import time

import netaddr

from acsnet.ipam.allocator import PoolAllocator
from acsnet.ipam.model import ENDPOINT, RETAINED, AddressRecord, Pool, Retention
from acsnet.ipam.state import AddressRecords, Retentions, SubnetPools
from acsnet.store import Store


@dataclasses.dataclass(frozen=True)
class AppAddress:
    app: str
    subnet: str
    ip: str
    state: str  # "in use by <host>", "retained until <time>", "free"
    until: float | None


def remember(store: Store, app: str, seconds: float, address: netaddr.IPAddress, mac: str | None,
             timeout: float = 5.0) -> bool:
    """Record that `address` (its endpoint's MAC: `mac`) belongs to a container of `app`, so that the IPAM
    keeps it for `app` when dockerd releases it. The record is committed with the address's own record
    (`PoolAllocator.record_with`), so the order of this call and dockerd's release does not matter: a
    release that already happened leaves the address free, and it is then taken as retained for `app`
    here; a release racing this commit fails its version check and reads the record. False (nothing
    kept) when another endpoint or application holds the address now, or no pool has it."""
    mac = mac.lower() if mac else None
    now = time.time()

    def decide(current: AddressRecord | None) -> AddressRecord | None:
        if current is None:  # released before this record: out of dynamic allocation from now on
            return AddressRecord(RETAINED, (app,), None, now, now + seconds)
        if current.kind == ENDPOINT and mac is not None and (current.mac or "").lower() == mac:
            return current
        if current.kind == RETAINED and current.holders == (app,):
            return current
        return None

    for pool in _pools_holding(store, address, mac):
        Retentions.prepare(store, pool.network)

        def retention_record(network=pool.network) -> list:
            return Retentions.write_operations(store, network, address, Retention(app, seconds))

        return PoolAllocator(store, pool, timeout).record_with(address, decide, retention_record) is not None
    return False


def _pools_holding(store: Store, address: netaddr.IPAddress, mac: str | None) -> list[Pool]:
    """The pool the address is in: the one whose record has this MAC; failing that, the only pool whose
    network holds the address (several pools may overlap: then none, no guessing)."""
    pools = [pool for network in SubnetPools.networks(store) if address in network
             for pool in SubnetPools.pools(store, network) if address in pool.network]
    for pool in pools:
        record = AddressRecords.read(store, pool.pool_id, str(address))
        if record is not None and mac is not None and (record.mac or "").lower() == mac:
            return [pool]
    return pools if len(pools) == 1 else []


def _record(store: Store, pools: list[Pool], ip: str) -> tuple[Pool | None, AddressRecord | None]:
    for pool in pools:
        record = AddressRecords.read(store, pool.pool_id, ip)
        if record is not None:
            return pool, record
    return None, None


def addresses(store: Store, app: str | None = None) -> list[AppAddress]:
    found = []
    pools: dict[netaddr.IPNetwork, list[Pool]] = {}
    for network, ip, retention in Retentions.read_all(store):
        if app is not None and retention.app != app:
            continue
        if network not in pools:
            pools[network] = SubnetPools.pools(store, network)
        _pool, record = _record(store, pools[network], ip)
        if record is None:
            state, until = "free", None
        elif record.kind == RETAINED:
            state, until = f"retained until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(record.until or 0))}", record.until
        else:
            state, until = f"in use by {record.holders[0]}", None
        found.append(AppAddress(retention.app, str(network.cidr), ip, state, until))
    return sorted(found, key=lambda a: (a.app, netaddr.IPAddress(a.ip)))


def retained_entries(store: Store, app: str, subnets: list[str]) -> list[AppAddress]:
    """The application's addresses in these subnets that are kept for it now (not in use, not expired);
    `until` tells one keeping from the next (it is set anew each time the address is released)."""
    wanted = {netaddr.IPNetwork(s).cidr for s in subnets}
    now = time.time()
    return [a for a in addresses(store, app)
            if netaddr.IPNetwork(a.subnet) in wanted and a.until is not None and a.until > now]


def retained(store: Store, app: str, subnets: list[str]) -> list[str]:
    return [a.ip for a in retained_entries(store, app, subnets)]


def release(store: Store, app: str, ip: str | None = None, *, expired_only: bool = False, timeout: float = 5.0) -> list[str]:
    """Forget the application's addresses (all, one, or those past their retention) and free the ones
    only kept for it; an address in use stays with its container. Returns the addresses forgotten."""
    done = []
    now = time.time()
    for entry in addresses(store, app):
        if ip is not None and entry.ip != ip:
            continue
        if expired_only and (entry.until is None or entry.until > now):
            continue
        network = netaddr.IPNetwork(entry.subnet)
        pool, record = _record(store, SubnetPools.pools(store, network), entry.ip)
        if pool is not None and record is not None and record.kind == RETAINED:
            PoolAllocator(store, pool, timeout).release(
                netaddr.IPAddress(entry.ip),
                lambda current, _retention: None if current.kind == RETAINED and current.holders == (entry.app,) else current)
        Retentions.clear(store, network, entry.ip)
        done.append(entry.ip)
    return done
