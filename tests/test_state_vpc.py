"""vpc membership records through their state module, on the embedded store (fast)."""

from __future__ import annotations

import threading

import netaddr

from acsnet.plugins.vpc.model import HostSubnet
from acsnet.plugins.vpc.state import HostSubnetRecord, SubnetClaim, VpcNetworkSettings
from acsnet.store import open_store

NETWORK = netaddr.IPNetwork("100.72.0.0/16")


def test_vpc_records_read_write_watch_clear(embedded_url):
    store = open_store(embedded_url)
    try:
        assert VpcNetworkSettings.read_all(store) == [] and VpcNetworkSettings.read(store, NETWORK) is None
        assert VpcNetworkSettings.write(store, NETWORK, {"host_subnet_size": 24, "max_routes": 4, "claims": 0})
        assert not VpcNetworkSettings.write(store, NETWORK, {"host_subnet_size": 26, "max_routes": 1, "claims": 0})
        assert VpcNetworkSettings.read_all(store) == [NETWORK]
        assert VpcNetworkSettings.read(store, NETWORK)["host_subnet_size"] == 24

        # The one watch a host keeps of the network: its settings, which every change of its host
        # records moves on, a claim's, a release's and a record's value changed in place alike.
        seen, changed = [], threading.Event()

        def on_settings(node):
            seen.append(node)
            changed.set()

        VpcNetworkSettings.watch(store, NETWORK, on_settings)
        assert seen[0].json()["host_subnet_size"] == 24
        changed.clear()
        record = HostSubnet("h1", str(NETWORK), "100.72.0.0/24", "192.0.2.11")
        settings = VpcNetworkSettings.read_versioned(store, NETWORK)
        assert store.commit([VpcNetworkSettings.replace_operation(NETWORK, {**settings.json(), "claims": 1}, settings.version),
                             SubnetClaim.create_operation(NETWORK, record.subnet, "h1"),
                             HostSubnetRecord.create_operation(record)])
        assert changed.wait(10) and seen[-1].json()["claims"] == 1
        assert HostSubnetRecord.read(store, NETWORK, "h1") == record and HostSubnetRecord.read_all(store, NETWORK) == {"h1": record}
        assert SubnetClaim.read(store, NETWORK, "100.72.0.0/24") == "h1"
        assert SubnetClaim.read_all(store, NETWORK) == [netaddr.IPNetwork("100.72.0.0/24")]

        node = HostSubnetRecord.read_versioned(store, NETWORK, "h1")
        left = HostSubnet(**{**record.to_json(), "left_at": 1.0})
        changed.clear()
        before = seen[-1].version
        assert HostSubnetRecord.replace(store, left, node.version) and not HostSubnetRecord.replace(store, left, node.version)
        assert changed.wait(10) and seen[-1].version == before + 1, "a record changed in place went unheard"
        assert seen[-1].json() == {"host_subnet_size": 24, "max_routes": 4, "claims": 1}, "the settings changed"
        VpcNetworkSettings.unwatch(store, NETWORK)
        assert store.watched_paths() == []
        node = HostSubnetRecord.read_versioned(store, NETWORK, "h1")
        assert store.commit([HostSubnetRecord.delete_operation(NETWORK, "h1", node.version)]
                            + SubnetClaim.release_operations(store, NETWORK, record.subnet))
        assert HostSubnetRecord.read_all(store, NETWORK) == {} and SubnetClaim.read_all(store, NETWORK) == []
        assert VpcNetworkSettings.clear(store, NETWORK) and VpcNetworkSettings.read_all(store) == []
    finally:
        store.close()


def test_the_layout_written_by_the_previous_version_is_read(embedded_url):
    store = open_store(embedded_url)
    try:
        store.create("/acsnet/vpc/networks/100.72.0.0_16", b'{"host_subnet_size":24,"max_routes":2,"claims":1}')
        store.create("/acsnet/vpc/networks/100.72.0.0_16/hosts/old",
                     b'{"host":"old","network":"100.72.0.0/16","subnet":"100.72.5.0/24","underlay":"192.0.2.9"}')
        store.create("/acsnet/vpc/networks/100.72.0.0_16/subnets/100.72.5.0_24", b'{"host":"old"}')
        assert VpcNetworkSettings.read_all(store) == [NETWORK]
        assert HostSubnetRecord.read(store, NETWORK, "old").subnet == "100.72.5.0/24"
        assert SubnetClaim.read(store, NETWORK, "100.72.5.0/24") == "old"
    finally:
        store.close()
