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


def test_a_pool_stored_before_chunk_sizes_keeps_its_4096_bit_chunks(embedded_url):
    """A /16 pool as the version before wrote it: no chunk size in its record, 4,096-bit chunk bitmaps.
    It is still read with 4,096-bit chunks (a new /16 has 64-bit ones, which would read its chunk 1 as
    offsets 64..127): allocation, release, a pinned address and the usage count all agree."""
    import json

    from acsnet.ipam.driver import AcsnetIpam
    from acsnet.ipam.state import AddressRecords, PoolRecords
    from acsnet.pools import read_used
    from acsnet.plugins.protocol import AddressRelease, AddressRequest

    pool_id = "global-100.64.0.0_16-0123456789ab"
    pool_json = {"id": pool_id, "space": "acsnet-global", "network": "100.64.0.0/16", "sub_pool": None,
                 "options": {}, "shared": False}
    store = open_store(embedded_url)
    try:
        root = f"/acsnet/ipam/pools/{pool_id}"
        store.create(root, json.dumps(pool_json).encode())
        store.create(f"{root}/hosts")
        store.create(f"{root}/addresses")
        store.create("/acsnet/ipam/subnets/100.64.0.0_16/" + pool_id)
        # Chunk 0 (offsets 0..4095) full, chunk 1 (4096..8191) with its first ten offsets taken.
        store.create(f"{root}/chunks", b'{"full": [0]}')
        store.create(f"{root}/chunks/0", ((1 << 4096) - 1).to_bytes(512, "little"))
        store.create(f"{root}/chunks/1", ((1 << 10) - 1).to_bytes(512, "little"))

        ipam = AcsnetIpam(store, "h1")
        assert ipam._allocator(pool_id).geometry.bits == 4096

        def allocate(address=None, n=0):
            mac = {AddressRequest.MAC_OPTION: f"02:42:00:00:00:{n:02x}"}
            return str(ipam.request_address(AddressRequest(pool_id, address, mac)).address)

        assert allocate(n=1) == "100.64.16.10", "offset 4096 + 10: the lowest free, in 4,096-bit chunks"
        assert allocate(netaddr.IPAddress("100.64.16.20"), n=2) == "100.64.16.20"
        assert read_used(store, PoolRecords.read(store, pool_id)) == 4095 + 10 + 2
        ipam.release_address(AddressRelease(pool_id, netaddr.IPAddress("100.64.16.10")))
        assert allocate(n=3) == "100.64.16.10"
        ipam.release_address(AddressRelease(pool_id, netaddr.IPAddress("100.64.16.3")))  # a bit with no record
        assert allocate(n=4) == "100.64.16.3"
        assert sorted(AddressRecords.addresses(store, pool_id)) == ["100.64.16.10", "100.64.16.20", "100.64.16.3"]
        assert [int(n) for n in store.children(f"{root}/chunks")] == [0, 1], "no chunk node of another size"
        assert len(store.get(f"{root}/chunks/1").value) == 512
    finally:
        store.close()

