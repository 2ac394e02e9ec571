"""Several IPAM plugin processes, one per simulated host (distinct --host-id), sharing a real ZooKeeper."""

from __future__ import annotations

import collections
import signal
import threading
import time

import pytest

from acsnet.ipam.state import AddressRecords, ChunkBitmaps, PoolRecords
from acsnet.store import open_store

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


def mac_option(host: int, n: int) -> dict:
    return {"com.docker.network.endpoint.macaddress": f"02:42:{host:02x}:00:{n // 256:02x}:{n % 256:02x}"}


@pytest.fixture
def three_hosts(plugins, zk_url, tmp_path):
    return [plugins("ipam", "--store", zk_url, "--host-id", f"h{i}", plugin_dir=str(tmp_path / f"h{i}")) for i in (1, 2, 3)]


def test_three_hosts_allocate_from_one_pool_at_once(three_hosts, zk_url):
    pool_ids = set()
    for host in three_hosts:
        status, reply = host.client().call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": "100.64.0.0/22"})
        assert status == 200, reply
        pool_ids.add(reply["PoolID"])
        assert host.client().call("IpamDriver.RequestAddress", {"PoolID": reply["PoolID"], "Address": "", "Options": GATEWAY}) == (
            200, {"Address": "100.64.0.1/22", "Data": {}})
    assert len(pool_ids) == 1, "one logical network on every host shares one pool"
    pool_id = pool_ids.pop()

    per_thread, threads_per_host = 150, 2
    granted: dict[str, list[str]] = collections.defaultdict(list)
    errors: list = []

    def allocate(host_index: int, thread_index: int):
        client = three_hosts[host_index].client()
        for n in range(per_thread):
            status, reply = client.call("IpamDriver.RequestAddress", {
                "PoolID": pool_id, "Address": "", "Options": mac_option(host_index, thread_index * 1000 + n)})
            if status != 200:
                errors.append(reply)
            else:
                granted[f"h{host_index + 1}"].append(reply["Address"].split("/")[0])

    threads = [threading.Thread(target=allocate, args=(h, t)) for h in range(3) for t in range(threads_per_host)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert not errors, errors[:3]
    everything = [a for addresses in granted.values() for a in addresses]
    assert len(everything) == 3 * threads_per_host * per_thread
    assert len(set(everything)) == len(everything), "an address was handed out twice"
    print(f"{len(everything)} allocations by 3 hosts in {elapsed:.1f}s")

    # The store agrees with what was handed out, holder by holder, and the bitmap matches the records.
    store = open_store(zk_url)
    try:
        records = AddressRecords.read_pool(store, pool_id)
        assert set(records) == set(everything) | {"100.64.0.1"}
        for host, addresses in granted.items():
            assert all(records[a].holders == (host,) for a in addresses)
        taken = sum(ChunkBitmaps.read(store, pool_id, n)[0].bit_count() for n in ChunkBitmaps.numbers(store, pool_id))
        assert taken == len(records)

        # Every host releases its own addresses, then the network: nothing is left behind.
        def release(host_index: int):
            client = three_hosts[host_index].client()
            for address in granted[f"h{host_index + 1}"]:
                assert client.call("IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": address}) == (200, {})

        threads = [threading.Thread(target=release, args=(h,)) for h in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for host in three_hosts:
            assert host.client().call("IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": "100.64.0.1"}) == (200, {})
            assert host.client().call("IpamDriver.ReleasePool", {"PoolID": pool_id}) == (200, {})
        assert not PoolRecords.exists(store, pool_id), "the pool and all its records are gone"
    finally:
        store.close()


@pytest.mark.parametrize("how", ["clean stop", "SIGKILL"])
def test_pinned_address_taken_over_only_when_the_holder_is_gone(plugins, zk_url, tmp_path, how):
    h1 = plugins("ipam", "--store", zk_url, "--host-id", "h1", plugin_dir=str(tmp_path / "h1"))
    h2 = plugins("ipam", "--store", zk_url, "--host-id", "h2", plugin_dir=str(tmp_path / "h2"))
    status, reply = h1.client().call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-global", "Pool": "192.0.2.0/24"})
    pool_id = reply["PoolID"]
    pinned = {"PoolID": pool_id, "Address": "192.0.2.110"}
    assert h1.client().call("IpamDriver.RequestAddress", {**pinned, "Options": mac_option(1, 1)})[0] == 200

    status, reply = h2.client().call("IpamDriver.RequestAddress", {**pinned, "Options": mac_option(2, 1)})
    assert status == 409 and reply["Err"] == "address 192.0.2.110 is in use by an endpoint on host h1"

    h1.stop(signal.SIGTERM if how == "clean stop" else signal.SIGKILL)
    # A killed host's session lives until ZooKeeper's session timeout (10 s); a clean stop ends it at once.
    deadline = time.monotonic() + 30
    while True:
        status, reply = h2.client().call("IpamDriver.RequestAddress", {**pinned, "Options": mac_option(2, 1)})
        if status == 200 or time.monotonic() > deadline:
            break
        assert status == 409, reply
        time.sleep(0.25)
    assert (status, reply) == (200, {"Address": "192.0.2.110/24", "Data": {}})


def test_a_host_that_loses_a_race_for_a_chunk_moves_to_another_and_one_alone_takes_the_lowest(zk_url):
    """Two hosts (the real IPAM driver, each its own session) on one /16 (1,024 chunks of 64): the one
    whose cached chunk moved on under it takes its next addresses from another open chunk; the other,
    alone on the lowest chunk, keeps taking the lowest free address. No address twice."""
    import netaddr

    from acsnet.ipam.driver import AcsnetIpam
    from acsnet.plugins.protocol import AddressRequest, PoolRequest

    stores = [open_store(zk_url, timeout=10.0) for _ in range(2)]
    try:
        h1, h2 = (AcsnetIpam(store, host, timeout=10.0) for store, host in zip(stores, ("h1", "h2")))
        pool_id = h1.request_pool(PoolRequest("acsnet-global", netaddr.IPNetwork("100.64.0.0/16"), None, {}, False)).pool_id

        def take(driver, n: int) -> netaddr.IPAddress:
            mac = f"02:42:00:00:{n // 256:02x}:{n % 256:02x}"
            return driver.request_address(AddressRequest(pool_id, None, {AddressRequest.MAC_OPTION: mac})).address

        assert str(take(h1, 1)) == "100.64.0.1"  # alone: the lowest
        assert str(take(h2, 2)) == "100.64.0.2"
        moved = take(h1, 3)  # h1's cached chunk 0 changed under it: its commit lost, and it moved
        chunk_bits = h1._allocator(pool_id).geometry.bits
        assert chunk_bits == 64
        assert int(moved) - int(netaddr.IPAddress("100.64.0.0")) >= chunk_bits, f"{moved} is still in the contested chunk"
        assert int(take(h1, 4)) == int(moved) + 1, "it stays in the chunk it moved to"
        assert str(take(h2, 5)) == "100.64.0.3", "the other host keeps the lowest free address"
    finally:
        for store in stores:
            store.close()
