"""The acsnet IPAM driver: libnetwork IPAM semantics on top of the shared store.

Address spaces:
- `acsnet-global`: every RequestPool is its own pool, even for a subnet another pool uses (the vxlan
  overlapping-subnet case). Gateway and aux addresses belong to the pool, whichever host frees them.
- `acsnet-local`: the same (subnet, ip-range, ipam options) asked for by several hosts is one shared
  pool, because under local scope one logical network is created on each host. Each host holds a
  reference; gateway and aux addresses record every request of every host (a host asking twice is
  listed twice) and are freed when the last one is released. `--ipam-opt acsnet.pool=NAME` separates two pools of one subnet.
Without a subnet, a pool is carved from a supernet (default 100.64.0.0/10, /24 each) so that it
overlaps no pool in either space.

Endpoint addresses (dockerd sends the endpoint's MAC with them because we ask for it; that is how they
are told from aux addresses) belong to one host. A pinned request for an address held by a host whose
liveness is gone from the store takes it over: that is how a container comes back with its IP on
another host. A host releasing an address another host took over leaves it alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid

import netaddr

from acsnet.ipam import chunks
from acsnet.ipam.allocator import PoolAllocator, PoolCache
from acsnet.ipam.model import AUX, ENDPOINT, GATEWAY, GLOBAL_SPACE, LOCAL_SPACE, RETAINED, AddressRecord, Pool, Retention
from acsnet.ipam.releases import PendingRelease, release_queue
from acsnet.ipam.state import HostSubnetAssignment, PoolHostReferences, PoolRecords, SubnetPools, subnet_key
from acsnet.errors import Conflict, Exhausted, InvalidRequest, NotFound, StoreUnavailable
from acsnet.plugins.driver import IpamDriver
from acsnet.plugins.protocol import AddressGrant, AddressRelease, AddressRequest, PoolGrant, PoolRequest
from acsnet.store import Store

log = logging.getLogger(__name__)

POOL_LIFECYCLE_LOCK = "ipam-pools"

# IP version → (supernet, prefix length of the pools carved from it)
Supernets = dict[int, tuple[netaddr.IPNetwork, int]]


def parse_supernets(
    v4: str = "100.64.0.0/10", v4_size: int = 24, v6: str = "fd61:6373:6e65::/48", v6_size: int = 64
) -> Supernets:
    """Checked before a plugin starts, so a bad default pool is a clear startup error."""
    supernets = {}
    for version, text, size in ((4, v4, v4_size), (6, v6, v6_size)):
        try:
            supernet = netaddr.IPNetwork(text)
        except (netaddr.AddrFormatError, ValueError):
            raise ValueError(f"default pool {text!r} is not a valid CIDR") from None
        if supernet.version != version or not supernet.prefixlen <= size <= (32 if version == 4 else 128):
            raise ValueError(f"default pool {text} cannot be split into IPv{version} /{size} pools")
        supernets[version] = (supernet.cidr, size)
    return supernets


class AcsnetIpam(IpamDriver):
    def __init__(self, store: Store, host_id: str, *, supernets: Supernets | None = None, timeout: float = 5.0,
                 release_journal: str | None = None):
        """With `release_journal` (a plugin's IPAM: `acsnet.ipam.releases`), the release of an endpoint's
        address this process recorded is answered once in that file and committed just after; without it
        (the CLI's, tests'), every release is committed before it returns."""
        self.store = store
        self.host_id = host_id
        self.timeout = timeout
        self._supernets = supernets or parse_supernets()
        self._pools: dict[str, Pool] = {}
        # Threads of this process allocating from one pool would only collide on the same chunk and
        # retry; one at a time per pool here, and compare-and-set arbitrates between hosts.
        self._pool_locks: dict[str, threading.Lock] = {}
        self._pool_locks_guard = threading.Lock()
        self._pool_caches: dict[str, PoolCache] = {}  # used under the pool's lock only
        self._host_subnets: dict[str, dict] = {}  # subnet (CIDR) -> this host's part of it, if split per host
        self._host_subnets_lock = threading.Lock()
        # (pool, address) -> the `since` of the endpoint record this process holds for it: the releases
        # that may be answered before their commit.
        self._handed_out: dict[tuple[str, str], float] = {}
        self._releases = release_queue(release_journal, self._commit_release) if release_journal else None

    def close(self) -> None:
        """Commit the releases answered (within the store's timeout; the journal keeps the rest)."""
        if self._releases is not None:
            self._releases.close(self.timeout)

    @property
    def releases_pending(self) -> int:
        return len(self._releases) if self._releases is not None else 0

    # -- capabilities ----------------------------------------------------------------------------

    def capabilities(self) -> dict[str, bool]:
        # The MAC tells endpoint requests from aux ones; the store keeps pools, so no replay is needed.
        return {"RequiresMACAddress": True, "RequiresRequestReplay": False}

    def default_address_spaces(self) -> tuple[str, str]:
        return LOCAL_SPACE, GLOBAL_SPACE

    # -- pools -----------------------------------------------------------------------------------

    def request_pool(self, request: PoolRequest) -> PoolGrant:
        if request.address_space not in (LOCAL_SPACE, GLOBAL_SPACE):
            raise InvalidRequest(
                f"unknown address space {request.address_space!r}: acsnet serves {LOCAL_SPACE} and {GLOBAL_SPACE}"
            )
        with self.store.lock(POOL_LIFECYCLE_LOCK, self.timeout):
            if request.pool is None:
                network = self._carve(6 if request.v6 else 4)
                pool = Pool(self._new_pool_id(request.address_space, network), request.address_space, network, None, request.options, False,
                            chunks.geometry_for(network).bits)
            elif request.address_space == LOCAL_SPACE:
                pool = Pool(self._shared_pool_id(request), LOCAL_SPACE, request.pool, request.sub_pool, request.options, True,
                            chunks.geometry_for(request.sub_pool or request.pool).bits)
                if PoolRecords.exists(self.store, pool.pool_id):
                    self._add_host_reference(pool.pool_id)
                    return PoolGrant(pool.pool_id, pool.network)
            else:
                pool = Pool(self._new_pool_id(GLOBAL_SPACE, request.pool), GLOBAL_SPACE, request.pool, request.sub_pool, request.options, False,
                            chunks.geometry_for(request.sub_pool or request.pool).bits)
            self._create_pool(pool)
            if pool.shared:
                self._add_host_reference(pool.pool_id)
        log.info("pool=%s network=%s space=%s host=%s created or joined", pool.pool_id, pool.network.cidr, pool.space, self.host_id)
        return PoolGrant(pool.pool_id, pool.network)

    def release_pool(self, pool_id: str) -> None:
        self._wait_for_releases(pool_id)  # its endpoints' addresses, answered and not yet committed
        with self.store.lock(POOL_LIFECYCLE_LOCK, self.timeout):
            pool = self._load_pool(pool_id)
            if pool is None:
                return  # released already: idempotent
            if pool.shared and self._drop_host_reference(pool_id):
                return  # other hosts still use it
            self._delete_pool(pool)

    def forget_dead_host(self, pool_id: str) -> None:
        """Drop every reference this host holds on a shared pool, as `acsnet gc --dead-hosts` does for a
        host that died with its networks (its dockerd will never send ReleasePool); the pool goes with
        the last reference, as in release_pool."""
        with self.store.lock(POOL_LIFECYCLE_LOCK, self.timeout):
            pool = self._load_pool(pool_id)
            if pool is None or not pool.shared:
                return
            PoolHostReferences.clear(self.store, pool_id, self.host_id)
            if not PoolHostReferences.hosts(self.store, pool_id):
                self._delete_pool(pool)

    @staticmethod
    def _shared_pool_id(request: PoolRequest) -> str:
        key = json.dumps(
            [str(request.pool.cidr), str(request.sub_pool.cidr) if request.sub_pool else "", request.options],
            sort_keys=True,
        )
        return f"local-{subnet_key(request.pool)}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    @staticmethod
    def _new_pool_id(space: str, network: netaddr.IPNetwork) -> str:
        prefix = "global" if space == GLOBAL_SPACE else "local"
        return f"{prefix}-{subnet_key(network)}-{uuid.uuid4().hex[:12]}"

    def _carve(self, version: int) -> netaddr.IPNetwork:
        """The first /size block of the supernet that overlaps no pool's subnet."""
        supernet, size = self._supernets[version]
        used = sorted(
            (n.first, n.last)
            for n in SubnetPools.networks(self.store)
            if n.version == version
        )
        block = 1 << ((32 if version == 4 else 128) - size)
        candidate = supernet.first
        for first, last in used:
            if last < candidate:
                continue
            if first > candidate + block - 1:
                break
            candidate = (last // block + 1) * block  # the next aligned block after the overlap
        if candidate + block - 1 > supernet.last:
            raise Exhausted(f"default pool {supernet.cidr} has no free /{size} left; give --subnet explicitly")
        return netaddr.IPNetwork(f"{netaddr.IPAddress(candidate, version)}/{size}")

    def _create_pool(self, pool: Pool) -> None:
        PoolRecords.prepare(self.store, pool)
        if not self.store.commit(PoolRecords.create_operations(pool)):
            raise Conflict(f"pool {pool.pool_id} could not be created: it exists already")
        self._pools[pool.pool_id] = pool

    def _delete_pool(self, pool: Pool) -> None:
        self._forget_pool(pool.pool_id)
        PoolRecords.delete(self.store, pool)
        log.info("pool=%s network=%s released", pool.pool_id, pool.network.cidr)

    def _add_host_reference(self, pool_id: str) -> None:
        held = PoolHostReferences.read(self.store, pool_id, self.host_id)
        if held is None:
            PoolHostReferences.write(self.store, pool_id, self.host_id, 1, None)
        else:
            PoolHostReferences.write(self.store, pool_id, self.host_id, held[0] + 1, held[1])

    def _drop_host_reference(self, pool_id: str) -> bool:
        """Drop one of this host's references; True if any host still references the pool."""
        held = PoolHostReferences.read(self.store, pool_id, self.host_id)
        if held is not None:
            refs, version = held
            if refs > 1:
                PoolHostReferences.write(self.store, pool_id, self.host_id, refs - 1, version)
            else:
                PoolHostReferences.clear(self.store, pool_id, self.host_id)
        return bool(PoolHostReferences.hosts(self.store, pool_id))

    def _load_pool(self, pool_id: str) -> Pool | None:
        pool = self._pools.get(pool_id)
        if pool is None:
            pool = PoolRecords.read(self.store, pool_id)
            if pool is None:
                return None
            self._pools[pool_id] = pool
        return pool

    def _forget_pool(self, pool_id: str) -> None:
        self._pools.pop(pool_id, None)
        self._pool_caches.pop(pool_id, None)

    def _allocator(self, pool_id: str) -> PoolAllocator:
        pool = self._load_pool(pool_id)
        if pool is None:
            raise NotFound(f"pool {pool_id} does not exist")
        return PoolAllocator(self.store, pool, self.timeout, self._pool_caches.setdefault(pool_id, PoolCache()))

    # -- addresses -------------------------------------------------------------------------------

    def _pool_lock(self, pool_id: str) -> threading.Lock:
        with self._pool_locks_guard:
            return self._pool_locks.setdefault(pool_id, threading.Lock())

    def request_address(self, request: AddressRequest) -> AddressGrant:
        allocator = self._allocator(request.pool_id)
        if request.address is not None:
            # An address asked for by name may be one this host released a moment ago (a container
            # replaced with its --ip): its release is committed first. (Not under the pool's lock, which
            # the commit takes.)
            self._wait_for_releases(request.pool_id)
        try:
            with self._pool_lock(request.pool_id):
                address, prefixlen = self._request_address(allocator, request)
        except NotFound:
            self._forget_pool(request.pool_id)  # removed by another host since we cached it
            raise
        return AddressGrant(address, prefixlen)

    def _request_address(self, allocator: PoolAllocator, request: AddressRequest) -> tuple[netaddr.IPAddress, int]:
        """The address, and the prefix length its container sees: the pool's, or (vpc) the host subnet's,
        so that addresses of other hosts are routed through the host rather than looked up on the link."""
        if request.is_gateway:
            kind = GATEWAY
            # Without an explicit gateway every host picks the same one: the pool's first host address.
            address = request.address or allocator.address_at(chunks.allocation_range(allocator.pool.network, None).first)
        else:
            kind = ENDPOINT if request.mac else AUX
            address = request.address
        record = AddressRecord(kind, (self.host_id,), request.mac)
        own = self._host_subnet(allocator.pool) if kind == ENDPOINT else None
        if own is not None and address is not None and (address not in own or address == own.network or address == own.broadcast
                                                          or address == own.network + 1):
            raise InvalidRequest(f"address {address} is not one of host {self.host_id}'s addresses in network "
                                 f"{allocator.pool.network.cidr}: its containers take addresses of {own.cidr} "
                                 f"(but not {own.network + 1}, the host's gateway)")
        if address is None:
            address = allocator.allocate_within(record, own) if own is not None else allocator.allocate_next(record)
            if kind == ENDPOINT:
                self._handed_out[(allocator.pool.pool_id, str(address))] = record.since
        elif kind == ENDPOINT:
            stored = allocator.allocate_at(address, record, lambda current: self._claim_endpoint(allocator.pool, address, current, record))
            self._handed_out[(allocator.pool.pool_id, str(address))] = stored.since
        else:
            allocator.allocate_at(address, record, lambda current: self._claim_shared(allocator.pool, address, current, kind))
        log.info("pool=%s address=%s kind=%s host=%s allocated", allocator.pool.pool_id, address, kind, self.host_id)
        return address, (own.prefixlen if own is not None else allocator.pool.network.prefixlen)

    def _host_subnet(self, pool: Pool) -> netaddr.IPNetwork | None:
        """This host's part of a network split per host (vpc), if the pool's network is one. Followed
        by a watch, so that an allocation reads nothing more for it (read again only when it changes).
        A split network this host holds no part of yet is a global one created on another host: this
        host's vpc plugin claims its part when it sees the network, moments later; the allocation waits
        for it (an address of the whole range would be routed nowhere)."""
        key = str(pool.network.cidr)
        with self._host_subnets_lock:
            known = self._host_subnets.get(key)
            if known is None:
                known = self._host_subnets[key] = {"stale": False, "subnet": None, "split": False,
                                                   "claimed": threading.Event(), "watched": threading.Event()}

                def on_change(hosts: list[str]) -> None:  # on the store's thread
                    known["stale"], known["subnet"], known["split"] = self.host_id in hosts, None, bool(hosts)
                    (known["claimed"].set if self.host_id in hosts else known["claimed"].clear)()
                    known["watched"].set()

                HostSubnetAssignment.watch_all(self.store, pool.network, on_change)
        known["watched"].wait(self.timeout)  # the watch's first call: whether the network is split
        # (Local scope: the host claims its part when dockerd creates the network on it, before any address.)
        if pool.space == GLOBAL_SPACE and known["split"] and not known["claimed"].wait(self.timeout):
            raise Conflict(f"host {self.host_id} holds no part of network {pool.network.cidr}, which is split per host "
                           f"(vpc), after {self.timeout:g}s: is this host's vpc plugin running? (its log says why "
                           "it took none, e.g. the network's route limit)")
        with self._host_subnets_lock:
            if known["stale"]:
                known["stale"], known["subnet"] = False, HostSubnetAssignment.read(self.store, pool.network, self.host_id)
            return known["subnet"]

    def _claim_endpoint(self, pool: Pool, address, current: AddressRecord, wanted: AddressRecord) -> AddressRecord:
        if current.kind == RETAINED:
            # Kept for an application: a pinned request takes it (the front pins its app's containers to them).
            log.info("pool=%s address=%s retained for %s handed out again", pool.pool_id, address, current.holders[0])
            return wanted
        if current.kind != ENDPOINT:
            raise Conflict(f"address {address} is the {current.kind} address of pool {pool.pool_id} ({pool.network.cidr})")
        holder = current.holders[0]
        if holder == self.host_id:
            if current.mac == wanted.mac:
                return current  # dockerd retrying the same request
            raise Conflict(f"address {address} is in use by another endpoint on this host ({holder})")
        if self.store.host_alive(holder):
            raise Conflict(f"address {address} is in use by an endpoint on host {holder}")
        log.warning("pool=%s address=%s taken over from host %s, which is gone", pool.pool_id, address, holder)
        return wanted

    def _claim_shared(self, pool: Pool, address, current: AddressRecord, kind: str) -> AddressRecord:
        if current.kind != kind:
            holder = f" on host {current.holders[0]}" if current.kind == ENDPOINT else ""
            raise Conflict(f"address {address} is in use as an {current.kind} address{holder}, cannot be the {kind} address")
        if not pool.shared:
            return current
        # Counted per request, as the host's pool references are: a second network of the same subnet on
        # this host (or its refused create, which dockerd undoes with a release) must not free the gateway
        # the first network still uses.
        return AddressRecord(kind, tuple(sorted(current.holders + (self.host_id,))), current.mac, current.since)

    @staticmethod
    def _retained(pool: Pool, address, retention: Retention | None) -> AddressRecord | None:
        """What a released endpoint address becomes: kept for its application, if it has one."""
        if retention is None:
            return None
        log.info("pool=%s address=%s kept for application %s for %gs", pool.pool_id, address, retention.app, retention.seconds)
        return AddressRecord(RETAINED, (retention.app,), None, time.time(), time.time() + retention.seconds)

    def release_address(self, request: AddressRelease) -> None:
        """With a journal, an endpoint's address this process recorded is released after the answer
        (`acsnet.ipam.releases`); a gateway or aux address, counted per network and host, before it."""
        since = self._handed_out.pop((request.pool_id, str(request.address)), None)  # (one dict call: atomic)
        if self._releases is not None and since is not None:
            self._releases.submit(PendingRelease(request.pool_id, str(request.address), since))
            return
        self._release_from(request.pool_id, request.address, since)

    def _commit_release(self, release: PendingRelease) -> None:
        """A release answered before its commit (the release queue's thread)."""
        self._release_from(release.pool_id, netaddr.IPAddress(release.address), release.since)

    def _release_from(self, pool_id: str, address, since: float | None) -> None:
        pool = self._load_pool(pool_id)
        if pool is None:
            return  # the pool is gone, and its addresses with it: idempotent
        try:
            self._release(pool, address, since)
        except NotFound:
            self._forget_pool(pool_id)

    def _release(self, pool: Pool, address, since: float | None) -> None:
        """Free `address` (or keep it for its application); with `since`, only the record made then."""
        allocator = self._allocator(pool.pool_id)

        def remaining(current: AddressRecord, retention: Retention | None) -> AddressRecord | None:
            if since is not None and current.since != since:
                return current  # freed and handed out again since (by `acsnet gc`, or a commit replayed)
            return self._remaining_after_release(pool, address, current, retention)

        with self._pool_lock(pool.pool_id):
            allocator.release(address, remaining)

    def _wait_for_releases(self, pool_id: str) -> None:
        if self._releases is not None and not self._releases.wait_for_none(lambda r: r.pool_id == pool_id, self.timeout):
            raise StoreUnavailable(f"pool {pool_id}: this host's releases of its addresses are not in the store yet "
                                   f"after {self.timeout:g}s (is the store reachable?)")

    def _remaining_after_release(self, pool: Pool, address, current: AddressRecord, retention: Retention | None) -> AddressRecord | None:
        if current.kind == RETAINED:
            return current  # dockerd releasing again: the application keeps it
        if current.kind == ENDPOINT:
            if current.holders == (self.host_id,):
                return self._retained(pool, address, retention)
            log.warning(
                "pool=%s address=%s release from host %s ignored: held by host %s",
                pool.pool_id, address, self.host_id, current.holders[0],
            )
            return current
        if not pool.shared:
            return None
        if self.host_id not in current.holders:
            return current
        remaining = list(current.holders)
        remaining.remove(self.host_id)  # one of this host's requests
        remaining = tuple(remaining)
        return AddressRecord(current.kind, remaining, current.mac, current.since) if remaining else None
