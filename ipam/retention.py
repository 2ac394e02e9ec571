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
from acsnet.ipam.model import (ENDPOINT, RETAINED, RETENTION, SUBNETS, AddressRecord, Pool, Retention, network_of_key,
                        pool_path, retention_path, subnet_key)
from acsnet.store import Create, SetValue, Store, encode, join


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
        path = retention_path(pool.network, address)
        store.create(join(RETENTION, subnet_key(pool.network)))

        def retention_record() -> list:
            value = encode(Retention(app, seconds).to_json())
            node = store.get(path)
            return [Create(path, value)] if node is None else [SetValue(path, value, node.version)]

        return PoolAllocator(store, pool, timeout).record_with(address, decide, retention_record) is not None
    return False


def _pools_holding(store: Store, address: netaddr.IPAddress, mac: str | None) -> list[Pool]:
    """The pool the address is in: the one whose record has this MAC; failing that, the only pool whose
    network holds the address (several pools may overlap: then none, no guessing)."""
    pools = [pool for key in store.children(SUBNETS) if address in network_of_key(key)
             for pool in _pools_of(store, key) if address in pool.network]
    for pool in pools:
        data = store.get_json(pool_path(pool.pool_id, "addresses", str(address)))
        if data and mac is not None and (AddressRecord.from_json(data).mac or "").lower() == mac:
            return [pool]
    return pools if len(pools) == 1 else []


def _pools_of(store: Store, subnet_key_: str) -> list[Pool]:
    pools = []
    for pool_id in store.children(join(SUBNETS, subnet_key_)):
        data = store.get_json(pool_path(pool_id))
        if data:
            pools.append(Pool.from_json(data))
    return pools


def _record(store: Store, pools: list[Pool], ip: str) -> tuple[Pool | None, AddressRecord | None]:
    for pool in pools:
        data = store.get_json(pool_path(pool.pool_id, "addresses", ip))
        if data:
            return pool, AddressRecord.from_json(data)
    return None, None


def addresses(store: Store, app: str | None = None) -> list[AppAddress]:
    found = []
    for key in store.children(RETENTION):
        pools = _pools_of(store, key)
        for ip in store.children(join(RETENTION, key)):
            data = store.get_json(join(RETENTION, key, ip))
            if not data or (app is not None and data["app"] != app):
                continue
            _pool, record = _record(store, pools, ip)
            if record is None:
                state, until = "free", None
            elif record.kind == RETAINED:
                state, until = f"retained until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(record.until or 0))}", record.until
            else:
                state, until = f"in use by {record.holders[0]}", None
            found.append(AppAddress(data["app"], str(network_of_key(key)), ip, state, until))
    return sorted(found, key=lambda a: (a.app, netaddr.IPAddress(a.ip)))


def retained_entries(store: Store, app: str, subnets: list[str]) -> list[AppAddress]:
    """The application's addresses in these subnets that are kept for it now (not in use, not expired);
    `until` tells one keeping from the next (it is set anew each time the address is released)."""
    wanted = {subnet_key(netaddr.IPNetwork(s)) for s in subnets}
    now = time.time()
    return [a for a in addresses(store, app)
            if subnet_key(netaddr.IPNetwork(a.subnet)) in wanted and a.until is not None and a.until > now]


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
        key = subnet_key(netaddr.IPNetwork(entry.subnet))
        pool, record = _record(store, _pools_of(store, key), entry.ip)
        if pool is not None and record is not None and record.kind == RETAINED:
            PoolAllocator(store, pool, timeout).release(
                netaddr.IPAddress(entry.ip),
                lambda current: None if current.kind == RETAINED and current.holders == (entry.app,) else current)
        store.delete(join(RETENTION, key, entry.ip))
        done.append(entry.ip)
    return done
