"""vpc membership records, the only module that builds their keys (layout in `acsnet.plugins.vpc.model`).

    vpc/networks/<cidr>                        VpcNetworkSettings: host_subnet_size, max_routes, claims
    vpc/networks/<cidr>/hosts/<host>           HostSubnetRecord: a host's part of the network
    vpc/networks/<cidr>/subnets/<host-subnet>  SubnetClaim: the host holding a host subnet

Reads that feed a compare-and-set return the `Versioned` node; writes that must happen together are
offered as operations, for the caller's one commit.

Every change of a network's host records moves its settings' version on: a claim and a release write
the settings in their commit, and `HostSubnetRecord.replace` writes them back as they are. So the one
watch a host keeps on the settings (`VpcNetworkSettings.watch`) hears of any change of the records, a
record's value (a host marked left, its NIC changed) as well as a host coming or going, which a
watch of the records' names does not.
"""

from __future__ import annotations

from typing import Callable

import netaddr

from acsnet.errors import StoreUnavailable
from acsnet.ipam.state import network_of_key, subnet_key
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.plugins.vpc.model import HostSubnet
from acsnet.store import Create, Delete, SetValue, Store, Versioned, encode, join, read_each

NETWORKS = join(LAYOUTS["vpc"].root, "networks")  # keyed by range: a network's id is the segment agent's


class VpcNetworkSettings:
    """`vpc/networks/<cidr>`: one vpc network (local-scope copies on each host share it)."""

    @staticmethod
    def key(network: netaddr.IPNetwork) -> str:
        return join(NETWORKS, subnet_key(network))

    @staticmethod
    def read(store: Store, network: netaddr.IPNetwork) -> dict | None:
        return store.get_json(VpcNetworkSettings.key(network))

    @staticmethod
    def read_versioned(store: Store, network: netaddr.IPNetwork) -> Versioned | None:
        return store.get(VpcNetworkSettings.key(network))

    @staticmethod
    def read_all(store: Store) -> list[netaddr.IPNetwork]:
        """The range of every vpc network any host has."""
        return [network_of_key(key) for key in store.children(NETWORKS)]

    @staticmethod
    def write(store: Store, network: netaddr.IPNetwork, settings: dict) -> bool:
        """The network's settings and the parents its records need, unless it exists (True if made)."""
        made = store.create(VpcNetworkSettings.key(network), encode(settings))
        store.create(HostSubnetRecord.key(network))
        store.create(SubnetClaim.key(network))
        return made

    @staticmethod
    def watch(store: Store, network: netaddr.IPNetwork, callback: Callable[[Versioned | None], None]) -> None:
        """Call `callback` now and on every change of the network's settings, whose version every change
        of its host records moves on (see the module's docstring); None while it has none."""
        store.watch_value(VpcNetworkSettings.key(network), callback)

    @staticmethod
    def unwatch(store: Store, network: netaddr.IPNetwork) -> None:
        """End this process's watch of the network's settings (`watch`)."""
        store.end_watches(VpcNetworkSettings.key(network))

    @staticmethod
    def replace_operation(network: netaddr.IPNetwork, settings: dict, version: int) -> SetValue:
        return SetValue(VpcNetworkSettings.key(network), encode(settings), version)

    @staticmethod
    def delete_operations(store: Store, network: netaddr.IPNetwork, version: int) -> list[Delete]:
        """Deleting the network's settings at `version`, with the parents of its records: in a commit
        after its last records' deletes, it fails if a host claimed meanwhile (a record under a parent,
        or the claim counter moved on)."""
        parents = [key for key in (HostSubnetRecord.key(network), SubnetClaim.key(network)) if store.get(key) is not None]
        return [Delete(key) for key in parents] + [Delete(VpcNetworkSettings.key(network), version)]

    @staticmethod
    def clear(store: Store, network: netaddr.IPNetwork) -> bool:
        return store.delete(VpcNetworkSettings.key(network), recursive=True)


class HostSubnetRecord:
    """`vpc/networks/<cidr>/hosts/<host>`: a host's part of the network and where to route it."""

    @staticmethod
    def key(network: netaddr.IPNetwork, host: str | None = None) -> str:
        hosts = join(VpcNetworkSettings.key(network), "hosts")
        return hosts if host is None else join(hosts, host)

    @staticmethod
    def read(store: Store, network: netaddr.IPNetwork, host: str) -> HostSubnet | None:
        data = store.get_json(HostSubnetRecord.key(network, host))
        return HostSubnet.from_json(data) if data else None

    @staticmethod
    def read_versioned(store: Store, network: netaddr.IPNetwork, host: str) -> Versioned | None:
        return store.get(HostSubnetRecord.key(network, host))

    @staticmethod
    def hosts(store: Store, network: netaddr.IPNetwork) -> list[str]:
        return store.children(HostSubnetRecord.key(network))

    @staticmethod
    def read_all(store: Store, network: netaddr.IPNetwork) -> dict[str, HostSubnet]:
        """Every host's record of the network, those that left included."""
        return read_each(store, HostSubnetRecord.hosts(store, network), lambda host: HostSubnetRecord.key(network, host),
                         HostSubnet.from_json)

    @staticmethod
    def replace(store: Store, record: HostSubnet, version: int) -> bool:
        """Compare-and-set the host's record, in one commit with the network's settings written back as
        they are, which moves their version on for the hosts watching them; False if the record moved on."""
        network = netaddr.IPNetwork(record.network)
        key = HostSubnetRecord.key(network, record.host)
        for _attempt in range(20):
            settings = VpcNetworkSettings.read_versioned(store, network)
            operations = [SetValue(key, encode(record.to_json()), version)]
            if settings is not None:
                operations.append(SetValue(VpcNetworkSettings.key(network), settings.value, settings.version))
            if store.commit(operations):
                return True
            current = store.get(key)
            if current is None or current.version != version:
                return False
        raise StoreUnavailable(f"network {network}: host {record.host}'s record kept colliding with other hosts' "
                               "claims; retry")

    @staticmethod
    def create_operation(record: HostSubnet) -> Create:
        return Create(HostSubnetRecord.key(netaddr.IPNetwork(record.network), record.host), encode(record.to_json()))

    @staticmethod
    def delete_operation(network: netaddr.IPNetwork, host: str, version: int) -> Delete:
        return Delete(HostSubnetRecord.key(network, host), version)

    @staticmethod
    def clear(store: Store, network: netaddr.IPNetwork, host: str) -> bool:
        return store.delete(HostSubnetRecord.key(network, host))


class SubnetClaim:
    """`vpc/networks/<cidr>/subnets/<host-subnet>`: which host holds a host subnet (no two get one)."""

    @staticmethod
    def key(network: netaddr.IPNetwork, subnet: str | None = None) -> str:
        claims = join(VpcNetworkSettings.key(network), "subnets")
        return claims if subnet is None else join(claims, subnet_key(netaddr.IPNetwork(subnet)))

    @staticmethod
    def read(store: Store, network: netaddr.IPNetwork, subnet: str) -> str | None:
        data = store.get_json(SubnetClaim.key(network, subnet))
        return data["host"] if data else None

    @staticmethod
    def read_all(store: Store, network: netaddr.IPNetwork) -> list[netaddr.IPNetwork]:
        return [network_of_key(key) for key in store.children(SubnetClaim.key(network))]

    @staticmethod
    def create_operation(network: netaddr.IPNetwork, subnet: str, host: str) -> Create:
        return Create(SubnetClaim.key(network, subnet), encode({"host": host}))

    @staticmethod
    def release_operations(store: Store, network: netaddr.IPNetwork, subnet: str) -> list:
        """Deleting the claim at the version read now (nothing if it is gone)."""
        node = store.get(SubnetClaim.key(network, subnet))
        return [] if node is None else [Delete(SubnetClaim.key(network, subnet), node.version)]
