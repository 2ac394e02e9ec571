"""The IPAM's host-subnet records through its state module, on the embedded store (fast)."""

from __future__ import annotations

import threading

import netaddr

from acsnet.ipam.state import HostSubnetAssignment, network_of_key, subnet_key
from acsnet.store import open_store

NETWORK = netaddr.IPNetwork("100.70.0.0/16")


def test_subnet_key_and_its_inverse():
    assert subnet_key(NETWORK) == "100.70.0.0_16" and network_of_key("100.70.0.0_16") == NETWORK


def test_host_subnet_read_write_watch_clear(embedded_url):
    store = open_store(embedded_url)
    try:
        seen, changed = [], threading.Event()

        def on_hosts(hosts):
            seen.append(hosts)
            changed.set()

        HostSubnetAssignment.watch_all(store, NETWORK, on_hosts)
        assert seen[0] == [] and HostSubnetAssignment.read(store, NETWORK, "h1") is None
        changed.clear()
        assert HostSubnetAssignment.write(store, NETWORK, "h1", "100.70.0.0/24")
        assert not HostSubnetAssignment.write(store, NETWORK, "h1", "100.70.9.0/24"), "a claim is not replaced"
        assert changed.wait(10) and seen[-1] == ["h1"]
        assert HostSubnetAssignment.read(store, NETWORK, "h1") == netaddr.IPNetwork("100.70.0.0/24")
        assert HostSubnetAssignment.read_all(store, NETWORK) == ["h1"]
        assert HostSubnetAssignment.clear(store, NETWORK, "h1") and HostSubnetAssignment.read_all(store, NETWORK) == []
    finally:
        store.close()


def test_a_claim_and_a_release_commit_in_the_callers_transaction(embedded_url):
    """vpc commits these operations beside its own record: all of them or none."""
    from acsnet.store import Create, encode

    store = open_store(embedded_url)
    try:
        HostSubnetAssignment.prepare(store, NETWORK)
        store.create("/t/mine")
        refused = [Create("/t/mine", b"x")] + HostSubnetAssignment.claim_operations(NETWORK, "h1", "100.70.0.0/24")
        assert not store.commit(refused) and HostSubnetAssignment.read(store, NETWORK, "h1") is None
        assert store.commit([Create("/t/other", encode({}))] + HostSubnetAssignment.claim_operations(NETWORK, "h1", "100.70.0.0/24"))
        assert HostSubnetAssignment.read(store, NETWORK, "h1") == netaddr.IPNetwork("100.70.0.0/24")
        assert store.commit(HostSubnetAssignment.release_operations(store, NETWORK, "h1"))
        assert HostSubnetAssignment.read(store, NETWORK, "h1") is None
        assert HostSubnetAssignment.release_operations(store, NETWORK, "h1") == []
    finally:
        store.close()


def test_the_layout_written_by_the_previous_version_is_read(embedded_url):
    store = open_store(embedded_url)
    try:
        store.create("/acsnet/ipam/host-subnets/100.70.0.0_16/old", b'{"subnet":"100.70.3.0/24"}')
        assert HostSubnetAssignment.read(store, NETWORK, "old") == netaddr.IPNetwork("100.70.3.0/24")
        assert HostSubnetAssignment.read_all(store, NETWORK) == ["old"]
    finally:
        store.close()
