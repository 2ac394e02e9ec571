"""The IPAM's keyspace: every key under `ipam/` is built here and nowhere else.

Key layout (below the store root `/acsnet`):
    ipam/pools/<pool-id>                 Pool (JSON), with its chunk size B        PoolRecords
    ipam/pools/<pool-id>/hosts/<host>    {"refs": n}: hosts sharing a local pool   PoolHostReferences
    ipam/pools/<pool-id>/chunks          {"full": [chunk, ...]}: chunks with no    ChunkSummary
                                         free address in range
    ipam/pools/<pool-id>/chunks/<n>      bitmap of offsets n*B .. n*B+B-1          ChunkBitmaps
    ipam/pools/<pool-id>/addresses/<ip>  AddressRecord (JSON): who holds it        AddressRecords
    ipam/subnets/<cidr>/<pool-id>        which pools use a subnet (auto pools      SubnetPools
                                         must not overlap any)
    ipam/retention/<cidr>/<ip>           Retention: the application an address     Retentions
                                         is kept for (written by `acsnet front`)
    ipam/host-subnets/<cidr>/<host>      {"subnet": CIDR}: a network split per     HostSubnetAssignment
                                         host (the vpc driver); this host's
                                         endpoints get addresses of its own subnet;
                                         the <cidr> node goes with its last host

A pool's chunk size B (`Pool.chunk_bits`) is in its pool record, which nothing rewrites, rather than
in the summary, which every version's allocator rewrites as {"full": [...]}; a pool record without
it is read as the 4,096 of the versions before. (In a cluster mid-upgrade, a host of the version before
reads a newer pool's chunks as 4,096 wide: the address record created in the same commit as the bit still
keeps any address from being handed out twice.)

Each record type knows its key and offers its reads, watches and writes; a write the caller commits
with others (the allocator's bit, record and summary in one commit; vpc's claim beside its own
records) is offered as operations. The IPAM owns this keyspace: a driver that splits a network (vpc)
asks for the operations of a claim or a release (`HostSubnetAssignment.claim_operations`,
`release_operations`) and commits them in its own transaction; it never writes these keys itself.
"""

from __future__ import annotations

from typing import Callable, Iterator

import netaddr

from acsnet.ipam import chunks
from acsnet.ipam.model import AddressRecord, Pool, Retention
from acsnet.store import Check, Create, Delete, SetValue, Store, encode, join, read_each
from acsnet.store import ROOT
from acsnet.store.base import Operation, Versioned

_POOLS = join(ROOT, "ipam", "pools")
_SUBNETS = join(ROOT, "ipam", "subnets")
_RETENTION = join(ROOT, "ipam", "retention")
_HOST_SUBNETS = join(ROOT, "ipam", "host-subnets")


def subnet_key(network: netaddr.IPNetwork) -> str:
    """A network as a store key's name: `/` is a path separator there."""
    return str(network.cidr).replace("/", "_")


def network_of_key(key: str) -> netaddr.IPNetwork:
    """The inverse of `subnet_key`."""
    return netaddr.IPNetwork(key.replace("_", "/"))


class PoolRecords:
    """`ipam/pools/<pool-id>`: the pools, each the parent of its hosts, chunks and addresses."""

    @staticmethod
    def key(pool_id: str) -> str:
        return join(_POOLS, pool_id)

    @staticmethod
    def read(store: Store, pool_id: str) -> Pool | None:
        data = store.get_json(PoolRecords.key(pool_id)) if "/" not in pool_id else None
        return Pool.from_json(data) if data else None

    @staticmethod
    def ids(store: Store) -> list[str]:
        return store.children(_POOLS)

    @staticmethod
    def watch_all(store: Store, callback: Callable[[list[str]], None]) -> None:
        """Call `callback` with every pool id now and after every pool made or removed."""
        store.watch_children(_POOLS, callback)

    @staticmethod
    def read_all(store: Store) -> dict[str, Pool]:
        return read_each(store, PoolRecords.ids(store), PoolRecords.key, Pool.from_json)

    @staticmethod
    def exists(store: Store, pool_id: str) -> bool:
        return store.get(PoolRecords.key(pool_id)) is not None

    @staticmethod
    def prepare(store: Store, pool: Pool) -> None:
        """Make the parents a pool's `create_operations` need."""
        store.create(_POOLS)
        store.create(SubnetPools.key(pool.network))

    @staticmethod
    def create_operations(pool: Pool) -> list[Operation]:
        """A new pool with an empty summary, and its claim on its subnet (after `prepare`)."""
        return [
            Create(PoolRecords.key(pool.pool_id), encode(pool.to_json())),
            Create(PoolHostReferences.key(pool.pool_id)),
            Create(ChunkSummary.key(pool.pool_id), encode({"full": []})),
            Create(AddressRecords.key(pool.pool_id)),
            Create(SubnetPools.key(pool.network, pool.pool_id)),
        ]

    @staticmethod
    def delete(store: Store, pool: Pool) -> None:
        """The pool with all its records, and its claim on its subnet."""
        store.delete(PoolRecords.key(pool.pool_id), recursive=True)
        store.delete(SubnetPools.key(pool.network, pool.pool_id))
        store.delete(SubnetPools.key(pool.network))  # only succeeds once no other pool claims the subnet


class PoolHostReferences:
    """`ipam/pools/<pool-id>/hosts/<host>`: how many times each host asked for a shared local pool."""

    @staticmethod
    def key(pool_id: str, host: str | None = None) -> str:
        hosts = join(PoolRecords.key(pool_id), "hosts")
        return hosts if host is None else join(hosts, host)

    @staticmethod
    def read(store: Store, pool_id: str, host: str) -> tuple[int, int] | None:
        """The host's references and their version (None: it holds none)."""
        node = store.get(PoolHostReferences.key(pool_id, host))
        return None if node is None else (node.json()["refs"], node.version)

    @staticmethod
    def hosts(store: Store, pool_id: str) -> list[str]:
        return store.children(PoolHostReferences.key(pool_id))

    @staticmethod
    def write(store: Store, pool_id: str, host: str, refs: int, version: int | None) -> bool:
        """Set the host's references (version None: it held none)."""
        if version is None:
            return store.create(PoolHostReferences.key(pool_id, host), encode({"refs": refs}))
        return store.compare_and_set(PoolHostReferences.key(pool_id, host), encode({"refs": refs}), version)

    @staticmethod
    def clear(store: Store, pool_id: str, host: str) -> bool:
        return store.delete(PoolHostReferences.key(pool_id, host))


class ChunkSummary:
    """`ipam/pools/<pool-id>/chunks`: the chunks with no free address in the pool's allocation range."""

    @staticmethod
    def key(pool_id: str) -> str:
        return join(PoolRecords.key(pool_id), "chunks")

    @staticmethod
    def read(store: Store, pool_id: str) -> tuple[set[int], int] | None:
        """The full chunks and the version (None: the pool does not exist)."""
        node = store.get(ChunkSummary.key(pool_id))
        return None if node is None else (set(node.json()["full"]), node.version)

    @staticmethod
    def write_operation(pool_id: str, full: set[int], version: int) -> SetValue:
        return SetValue(ChunkSummary.key(pool_id), encode({"full": sorted(full)}), version)


class ChunkBitmaps:
    """`ipam/pools/<pool-id>/chunks/<n>`: which addresses of a chunk are taken (absent: none)."""

    @staticmethod
    def key(pool_id: str, chunk: int) -> str:
        return join(ChunkSummary.key(pool_id), str(chunk))

    @staticmethod
    def read(store: Store, pool_id: str, chunk: int) -> tuple[int, int | None]:
        """The bitmap and its version (None: the node does not exist yet, all free)."""
        node = store.get(ChunkBitmaps.key(pool_id, chunk))
        return (chunks.decode(node.value), node.version) if node else (0, None)

    @staticmethod
    def read_many(store: Store, pool_id: str, numbers: list[int]) -> dict[int, int]:
        """The bitmaps of the chunks given, in one batch where the store can: a /16 has 1,024 chunks."""
        nodes = store.get_many([ChunkBitmaps.key(pool_id, n) for n in numbers])
        return {n: chunks.decode(node.value) if node else 0 for n, node in zip(numbers, nodes)}

    @staticmethod
    def numbers(store: Store, pool_id: str) -> list[int]:
        """The chunks that have a bitmap (one is made when its first address is taken)."""
        return sorted(int(n) for n in store.children(ChunkSummary.key(pool_id)) if n.isdigit())

    @staticmethod
    def watch_numbers(store: Store, pool_id: str, callback: Callable[[list[int]], None]) -> None:
        store.watch_children(ChunkSummary.key(pool_id),
                             lambda names: callback(sorted(int(n) for n in names if n.isdigit())))

    @staticmethod
    def watch(store: Store, pool_id: str, chunk: int, callback: Callable[[int | None], None]) -> None:
        """`callback` gets the bitmap now and after every change (None once the chunk is gone)."""
        store.watch_value(ChunkBitmaps.key(pool_id, chunk),
                          lambda node: callback(None if node is None else chunks.decode(node.value)))

    @staticmethod
    def end_watches(store: Store, pool_id: str) -> None:
        """End this process's watches of the pool's chunks and bitmaps (a pool released)."""
        store.end_watches(ChunkSummary.key(pool_id))

    @staticmethod
    def write_operation(pool_id: str, geometry: chunks.ChunkGeometry, chunk: int, bitmap: int,
                        version: int | None) -> Create | SetValue:
        if version is None:
            return Create(ChunkBitmaps.key(pool_id, chunk), geometry.encode(bitmap))
        return SetValue(ChunkBitmaps.key(pool_id, chunk), geometry.encode(bitmap), version)

    @staticmethod
    def check_operation(pool_id: str, chunk: int, version: int) -> Check:
        """Fails the commit if the bitmap moved on from `version`."""
        return Check(ChunkBitmaps.key(pool_id, chunk), version)


class AddressRecords:
    """`ipam/pools/<pool-id>/addresses/<ip>`: who holds an address. The allocator writes them in one
    commit with their bit (the operations below); operator tools read them."""

    @staticmethod
    def key(pool_id: str, address: str | None = None) -> str:
        addresses = join(PoolRecords.key(pool_id), "addresses")
        return addresses if address is None else join(addresses, str(address))

    @staticmethod
    def pools(store: Store) -> list[str]:
        return PoolRecords.ids(store)

    @staticmethod
    def read(store: Store, pool_id: str, address: str) -> AddressRecord | None:
        data = store.get_json(AddressRecords.key(pool_id, address))
        return AddressRecord.from_json(data) if data else None

    @staticmethod
    def read_versioned(store: Store, pool_id: str, address: str) -> tuple[AddressRecord, int] | None:
        node: Versioned | None = store.get(AddressRecords.key(pool_id, address))
        return None if node is None else (AddressRecord.from_json(node.json()), node.version)

    @staticmethod
    def read_versioned_beside_retention(store: Store, pool: Pool, address) -> tuple[tuple[AddressRecord, int] | None, Retention | None]:
        """The address's record with its version, and the application it is kept for (`Retentions`), in
        one batch: a release needs both, and two reads one after the other cost it a round trip more."""
        record, retention = store.get_many([AddressRecords.key(pool.pool_id, address), Retentions.key(pool.network, address)])
        return ((AddressRecord.from_json(record.json()), record.version) if record is not None else None,
                Retention.from_json(retention.json()) if retention is not None and retention.value else None)

    @staticmethod
    def addresses(store: Store, pool_id: str) -> list[str]:
        return store.children(AddressRecords.key(pool_id))

    @staticmethod
    def read_pool(store: Store, pool_id: str) -> dict[str, AddressRecord]:
        """Every address held in one pool, by address."""
        return read_each(store, AddressRecords.addresses(store, pool_id), lambda address: AddressRecords.key(pool_id, address),
                         AddressRecord.from_json)

    @staticmethod
    def read_all(store: Store) -> Iterator[tuple[str, str, AddressRecord]]:
        """(pool id, address, record) of every address held in any pool."""
        for pool_id in AddressRecords.pools(store):
            for address, record in AddressRecords.read_pool(store, pool_id).items():
                yield pool_id, address, record

    @staticmethod
    def create_operation(pool_id: str, address, record: AddressRecord) -> Create:
        return Create(AddressRecords.key(pool_id, address), encode(record.to_json()))

    @staticmethod
    def write_operation(pool_id: str, address, record: AddressRecord, version: int) -> SetValue:
        return SetValue(AddressRecords.key(pool_id, address), encode(record.to_json()), version)

    @staticmethod
    def delete_operation(pool_id: str, address, version: int) -> Delete:
        return Delete(AddressRecords.key(pool_id, address), version)

    @staticmethod
    def replace(store: Store, pool_id: str, address, record: AddressRecord, version: int) -> bool:
        return store.compare_and_set(AddressRecords.key(pool_id, address), encode(record.to_json()), version)


class SubnetPools:
    """`ipam/subnets/<cidr>/<pool-id>`: which pools use a subnet."""

    @staticmethod
    def key(network: netaddr.IPNetwork, pool_id: str | None = None) -> str:
        claims = join(_SUBNETS, subnet_key(network))
        return claims if pool_id is None else join(claims, pool_id)

    @staticmethod
    def networks(store: Store) -> list[netaddr.IPNetwork]:
        """Every subnet a pool uses."""
        return [network_of_key(key) for key in store.children(_SUBNETS)]

    @staticmethod
    def pools(store: Store, network: netaddr.IPNetwork) -> list[Pool]:
        """The pools of exactly this subnet."""
        found = []
        for pool_id in store.children(SubnetPools.key(network)):
            pool = PoolRecords.read(store, pool_id)
            if pool is not None:
                found.append(pool)
        return found


class Retentions:
    """`ipam/retention/<cidr>/<ip>`: the application an address of a subnet is kept for."""

    @staticmethod
    def key(network: netaddr.IPNetwork, address=None) -> str:
        subnet = join(_RETENTION, subnet_key(network))
        return subnet if address is None else join(subnet, str(address))

    @staticmethod
    def read(store: Store, network: netaddr.IPNetwork, address) -> Retention | None:
        data = store.get_json(Retentions.key(network, address))
        return Retention.from_json(data) if data else None

    @staticmethod
    def addresses(store: Store, network: netaddr.IPNetwork) -> list[str]:
        """The addresses of a subnet kept for an application (in use or not)."""
        return store.children(Retentions.key(network))

    @staticmethod
    def read_all(store: Store) -> Iterator[tuple[netaddr.IPNetwork, str, Retention]]:
        """(subnet, address, retention) of every address kept for an application."""
        for key in store.children(_RETENTION):
            network = network_of_key(key)
            for address in store.children(Retentions.key(network)):
                retention = Retentions.read(store, network, address)
                if retention is not None:
                    yield network, address, retention

    @staticmethod
    def prepare(store: Store, network: netaddr.IPNetwork) -> None:
        """Make the subnet's parent node, which `write_operations` in a commit needs."""
        store.create(Retentions.key(network))

    @staticmethod
    def write_operations(store: Store, network: netaddr.IPNetwork, address, retention: Retention) -> list[Operation]:
        """Record the retention (after `prepare`), replacing the one read now: the commit fails if it
        moved on meanwhile."""
        key, value = Retentions.key(network, address), encode(retention.to_json())
        node = store.get(key)
        return [Create(key, value)] if node is None else [SetValue(key, value, node.version)]

    @staticmethod
    def clear(store: Store, network: netaddr.IPNetwork, address) -> bool:
        return store.delete(Retentions.key(network, address))


class HostSubnetAssignment:
    """`ipam/host-subnets/<cidr>/<host>`: which part of a split network a host gives addresses of."""

    @staticmethod
    def key(network: netaddr.IPNetwork, host: str | None = None) -> str:
        network_key = join(_HOST_SUBNETS, subnet_key(network))
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
    def release_operations(store: Store, network: netaddr.IPNetwork, *hosts: str, keep_node: bool = False) -> list[Operation]:
        """What a commit does to take these hosts' parts back (nothing for one that holds none), each
        at the version read now, so the commit fails if it moved on meanwhile; and the network's node
        with them if no other host holds a part now (unless `keep_node`: the commit claims a part too):
        a host claiming meanwhile makes that delete, and so the commit, fail (a node with a child is
        not deleted), and the caller tries again."""
        operations: list[Operation] = []
        for host in hosts:
            node = store.get(HostSubnetAssignment.key(network, host))
            if node is not None:
                operations.append(Delete(HostSubnetAssignment.key(network, host), node.version))
        holders = HostSubnetAssignment.read_all(store, network)
        if operations and not keep_node and not set(holders) - set(hosts):
            operations.append(Delete(HostSubnetAssignment.key(network)))
        return operations

    @staticmethod
    def write(store: Store, network: netaddr.IPNetwork, host: str, subnet: str) -> bool:
        """The host's part, if it has none recorded yet (True if this call recorded it)."""
        HostSubnetAssignment.prepare(store, network)
        return store.create(HostSubnetAssignment.key(network, host), encode({"subnet": str(subnet)}))

    @staticmethod
    def clear(store: Store, network: netaddr.IPNetwork, host: str) -> bool:
        """The host's part, and the network's node if it was the last (a delete that leaves a node
        another host claimed in meanwhile)."""
        cleared = store.delete(HostSubnetAssignment.key(network, host))
        store.delete(HostSubnetAssignment.key(network))
        return cleared
