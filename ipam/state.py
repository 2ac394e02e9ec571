"""The IPAM's host-subnet records, the only module that builds their keys.

    ipam/host-subnets/<cidr>/<host>   {"subnet": CIDR}: a network split per host (the vpc driver); this
                                      host's endpoints get addresses of its own subnet

The IPAM owns this keyspace. A driver that splits a network (vpc) asks for the operations of a claim
or a release (`claim_operations`, `release_operations`) and commits them in its own transaction, so
its record and the IPAM's view change together; it never writes these keys itself.
"""

from __future__ import annotations

from typing import Callable

import netaddr

from acsnet.ipam.model import HOST_SUBNETS, subnet_key
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
