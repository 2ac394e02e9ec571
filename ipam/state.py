"""The IPAM's records read or written outside the allocator: host subnets (the only module that builds
their keys) and address records (for operator tools).

    ipam/host-subnets/<cidr>/<host>   {"subnet": CIDR}: a network split per host (the vpc driver); this
                                      host's endpoints get addresses of its own subnet

The IPAM owns this keyspace. A driver that splits a network (vpc) asks for the operations of a claim
or a release (`claim_operations`, `release_operations`) and commits them in its own transaction, so
its record and the IPAM's view change together; it never writes these keys itself.
"""

from __future__ import annotations

from typing import Callable, Iterator

import netaddr

from acsnet.ipam import chunks
from acsnet.ipam.model import (HOST_SUBNETS, POOLS, RETENTION, AddressRecord, Pool, Retention, network_of_key, pool_path,
                               retention_path, subnet_key)
from acsnet.store import Create, Delete, Store, encode, join
from acsnet.store.base import Operation


class HostSubnetAssignment:
    """`ipam/host-subnets/<cidr>/<host>`: which part of a split network a host gives addresses of."""

    @staticmethod
    def key(network: netaddr.IPNetwork, host: str | None = None) -> str:
        network_key = join(HOST_SUBNETS, subnet_key(network))
        return network_key if host is None else join(network_key, host)

    @staticmethod
    def read(store: Store, network: netaddr.IPNetwork, host: str) -> netaddr.IPNetwork | None:
        data = store.get_json(HostSubnetAssignment.key(network, host))
        return netaddr.IPNetwork(data["subnet"]) if data else None

    @staticmethod
    def read_all(store: Store, network: netaddr.IPNetwork) -> list[str]:
        """The hosts holding a part of the network (empty: the network is not split)."""
        return store.children(HostSubnetAssignment.key(network))

    @staticmethod
    def watch_all(store: Store, network: netaddr.IPNetwork, callback: Callable[[list[str]], None]) -> None:
        store.watch_children(HostSubnetAssignment.key(network), callback)

    @staticmethod
    def prepare(store: Store, network: netaddr.IPNetwork) -> None:
        """Make the network's parent node, which a claim's `Create` in a commit needs."""
        store.create(HostSubnetAssignment.key(network))

    @staticmethod
    def claim_operations(network: netaddr.IPNetwork, host: str, subnet: str) -> list[Operation]:
        """What a commit does to give `host` the part `subnet` of `network` (after `prepare`)."""
        return [Create(HostSubnetAssignment.key(network, host), encode({"subnet": str(subnet)}))]

    @staticmethod
    def release_operations(store: Store, network: netaddr.IPNetwork, host: str) -> list[Operation]:
        """What a commit does to take the host's part back (nothing if it holds none), at the version
        read now, so the commit fails if it moved on meanwhile."""
        node = store.get(HostSubnetAssignment.key(network, host))
        return [] if node is None else [Delete(HostSubnetAssignment.key(network, host), node.version)]

    @staticmethod
    def write(store: Store, network: netaddr.IPNetwork, host: str, subnet: str) -> bool:
        """The host's part, if it has none recorded yet (True if this call recorded it)."""
        HostSubnetAssignment.prepare(store, network)
        return store.create(HostSubnetAssignment.key(network, host), encode({"subnet": str(subnet)}))

    @staticmethod
    def clear(store: Store, network: netaddr.IPNetwork, host: str) -> bool:
        return store.delete(HostSubnetAssignment.key(network, host))


class AddressRecords:
    """`ipam/pools/<pool-id>/addresses/<ip>`: who holds an address (read here for operator tools; the
    allocator writes them in its own commits)."""

    @staticmethod
    def key(pool_id: str, address: str | None = None) -> str:
        return pool_path(pool_id, "addresses") if address is None else pool_path(pool_id, "addresses", str(address))

    @staticmethod
    def pools(store: Store) -> list[str]:
        return store.children(POOLS)

    @staticmethod
    def read(store: Store, pool_id: str, address: str) -> AddressRecord | None:
        data = store.get_json(AddressRecords.key(pool_id, address))
        return AddressRecord.from_json(data) if data else None

    @staticmethod
    def read_all(store: Store) -> Iterator[tuple[str, str, AddressRecord]]:
        """(pool id, address, record) of every address held in any pool."""
        for pool_id in AddressRecords.pools(store):
            for address in store.children(AddressRecords.key(pool_id)):
                record = AddressRecords.read(store, pool_id, address)
                if record is not None:
                    yield pool_id, address, record


class PoolRecords:
    """`ipam/pools/<pool-id>`: the pools (read here for operator tools and tests)."""

    @staticmethod
    def watch_all(store: Store, callback: Callable[[list[str]], None]) -> None:
        """Call `callback` with every pool id now and after every pool made or removed."""
        store.watch_children(POOLS, callback)

    @staticmethod
    def hosts(store: Store, pool_id: str) -> list[str]:
        """The hosts holding a reference to a shared local pool."""
        return store.children(pool_path(pool_id, "hosts"))

    @staticmethod
    def read(store: Store, pool_id: str) -> Pool | None:
        data = store.get_json(pool_path(pool_id))
        return Pool.from_json(data) if data else None

    @staticmethod
    def read_all(store: Store) -> dict[str, Pool]:
        found = {}
        for pool_id in store.children(POOLS):
            pool = PoolRecords.read(store, pool_id)
            if pool is not None:
                found[pool_id] = pool
        return found


class PoolChunks:
    """`ipam/pools/<pool-id>/chunks` (the summary: chunks with no free address in range) and
    `.../chunks/<n>` (bitmaps): how full a pool is, without reading its addresses."""

    @staticmethod
    def read_summary(store: Store, pool_id: str) -> set[int] | None:
        data = store.get_json(pool_path(pool_id, "chunks"))
        return None if data is None else set(data.get("full", []))

    @staticmethod
    def numbers(store: Store, pool_id: str) -> list[int]:
        """The chunks that have a bitmap (one is made when its first address is taken)."""
        return sorted(int(n) for n in store.children(pool_path(pool_id, "chunks")) if n.isdigit())

    @staticmethod
    def read_bitmap(store: Store, pool_id: str, chunk: int) -> int:
        node = store.get(pool_path(pool_id, "chunks", str(chunk)))
        return chunks.decode(node.value if node else None)

    @staticmethod
    def watch_numbers(store: Store, pool_id: str, callback: Callable[[list[int]], None]) -> None:
        store.watch_children(pool_path(pool_id, "chunks"),
                             lambda names: callback(sorted(int(n) for n in names if n.isdigit())))

    @staticmethod
    def watch_bitmap(store: Store, pool_id: str, chunk: int, callback: Callable[[int | None], None]) -> None:
        """`callback` gets the bitmap now and after every change (None once the chunk is gone)."""
        store.watch_value(pool_path(pool_id, "chunks", str(chunk)),
                          lambda node: callback(None if node is None else chunks.decode(node.value)))


class RetentionRecords:
    """`ipam/retention/<cidr>/<ip>`: the application each address is kept for (read for operator tools;
    `acsnet.ipam.retention` writes them)."""

    @staticmethod
    def addresses(store: Store, network: netaddr.IPNetwork) -> list[str]:
        """The addresses of a subnet kept for an application (in use or not)."""
        return store.children(join(RETENTION, subnet_key(network)))

    @staticmethod
    def read(store: Store, network: netaddr.IPNetwork, ip: str) -> Retention | None:
        data = store.get_json(retention_path(network, ip))
        return Retention.from_json(data) if data else None

    @staticmethod
    def read_all(store: Store) -> Iterator[tuple[netaddr.IPNetwork, str, Retention]]:
        for key in store.children(RETENTION):
            for ip in store.children(join(RETENTION, key)):
                data = store.get_json(join(RETENTION, key, ip))
                if data:
                    yield network_of_key(key), ip, Retention.from_json(data)
