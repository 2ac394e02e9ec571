"""Releases answered before their commit (`acsnet.ipam.releases`): which ones, in what order, and what a
plugin killed in between leaves — `AcsnetIpam` on a real store (both backends), then `acsnet serve
ipam` killed on a real ZooKeeper."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.parse

import netaddr
import pytest

from acsnet.after_answer import journal_path
from acsnet.errors import StoreUnavailable
from acsnet.ipam import retention
from acsnet.ipam.driver import AcsnetIpam
from acsnet.ipam.model import ENDPOINT, RETAINED
from acsnet.ipam.releases import JOURNAL_KIND, PendingRelease
from acsnet.ipam.state import AddressRecords, ChunkBitmaps, PoolRecords
from acsnet.lab.plugin_process import PluginProcess
from acsnet.store import open_store
from tests.test_ipam_driver import mac, pool_request, release, request

SUBNET = "198.51.100.0/24"


@pytest.fixture
def ipam_with_journal(store_url, tmp_path):
    made = []

    def ipam(host_id: str = "h1") -> AcsnetIpam:
        store = open_store(store_url)
        store.register_host(host_id, "ipam", {})
        driver = AcsnetIpam(store, host_id, release_journal=journal_path(str(tmp_path), JOURNAL_KIND, host_id, store_url))
        made.append((driver, store))
        return driver

    yield ipam
    for driver, store in made:
        driver.close()
        store.close()


def record(ipam: AcsnetIpam, pool_id: str, address: str):
    return AddressRecords.read(ipam.store, pool_id, address)


def until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_an_endpoints_address_is_released_after_the_answer_and_a_gateway_before_it(ipam_with_journal):
    h1 = ipam_with_journal()
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    gateway = request(h1, pool, options={"RequestAddressType": "com.docker.network.gateway"}).split("/")[0]
    dynamic = request(h1, pool, options=mac(1)).split("/")[0]
    pinned = request(h1, pool, "198.51.100.77", options=mac(2)).split("/")[0]
    kept = request(h1, pool, options=mac(3)).split("/")[0]
    assert retention.remember(h1.store, "web", 3600, netaddr.IPAddress(kept), "02:42:00:00:00:03")

    commits = h1._pool_lock(pool)  # the release queue commits under it: held, nothing is committed
    with commits:
        for address in (dynamic, pinned, kept):
            release(h1, pool, address)
            assert record(h1, pool, address).kind == ENDPOINT  # answered, not committed
        assert h1.releases_pending == 3
    assert until(lambda: h1.releases_pending == 0)
    assert record(h1, pool, dynamic) is None and record(h1, pool, pinned) is None
    assert record(h1, pool, kept).kind == RETAINED  # decided at the commit, from the store

    release(h1, pool, gateway)  # counted per network and host: committed before the answer
    assert record(h1, pool, gateway) is None and h1.releases_pending == 0


def test_an_address_asked_for_by_name_right_after_its_release_waits_for_the_commit__commit_delayed(ipam_with_journal, monkeypatch):
    """A container replaced with its --ip on the same host: the pinned request finds the address free,
    not held by the endpoint that went (with the release still queued it would be refused as in use).
    A unit test: the queue's commit is held back 0.3 s by a wrapper; the store is real."""
    h1 = ipam_with_journal()
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    address = request(h1, pool, options=mac(1)).split("/")[0]
    go = threading.Event()
    real = h1._commit_release
    monkeypatch.setattr(h1._releases, "_commit", lambda pending: (go.wait(10), real(pending)))
    release(h1, pool, address)
    assert h1.releases_pending == 1
    threading.Timer(0.3, go.set).start()
    assert request(h1, pool, address, options=mac(2)).split("/")[0] == address
    assert record(h1, pool, address).mac == "02:42:00:00:00:02"


def test_a_pool_is_removed_after_its_queued_releases_and_a_release_replayed_frees_only_its_own_record(ipam_with_journal):
    h1 = ipam_with_journal()
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    gateway = request(h1, pool, options={"RequestAddressType": "com.docker.network.gateway"}).split("/")[0]
    address = request(h1, pool, options=mac(1)).split("/")[0]
    commits = h1._pool_lock(pool)
    commits.acquire()
    release(h1, pool, address)
    assert h1.releases_pending == 1
    threading.Timer(0.3, commits.release).start()
    release(h1, pool, gateway)  # committed before the answer: it waits for the lock, as the queue does
    h1.release_pool(pool)
    assert not PoolRecords.exists(h1.store, pool)

    # A release committed twice (the journal's done mark lost with a kill) finds the address handed out
    # again since, to a new record: it frees nothing.
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    address = request(h1, pool, options=mac(1)).split("/")[0]
    first = record(h1, pool, address)
    release(h1, pool, address)
    assert until(lambda: record(h1, pool, address) is None)
    assert request(h1, pool, options=mac(2)).split("/")[0] == address
    h1._commit_release(PendingRelease(pool, address, first.since))
    assert record(h1, pool, address).mac == "02:42:00:00:00:02"


def test_a_plugin_killed_while_its_releases_cannot_commit_commits_them_when_it_starts_again(zk_url, zookeeper, tmp_path):
    """`acsnet serve ipam` on a real ZooKeeper. The pool's chunk is made read-only with an ACL, so that the
    release of a container's address is answered and its commit refused (retried); the plugin is killed
    (SIGKILL) with the release in its journal, the ACL lifted, and the plugin started again: it commits
    the release, and no address is left held."""
    from kazoo.client import KazooClient
    from kazoo.security import make_acl, OPEN_ACL_UNSAFE

    plugin_dir, state_dir = tmp_path / "plugins", tmp_path / "state"
    plugin_dir.mkdir()
    state_dir.mkdir()

    def start():
        return PluginProcess.acsnet("ipam", str(plugin_dir), "--store", zk_url, "--host-id", "h1", "--state-dir",
                                    str(state_dir), log_dir=str(tmp_path)).start()

    def call(method: str, body: dict) -> dict:
        status, answer = plugin.client().call(method, body)
        assert status == 200, answer
        return answer

    store = open_store(zk_url)
    zk = KazooClient(hosts=zookeeper.address + urllib.parse.urlparse(zk_url.replace("zk://", "http://")).path)
    zk.start()
    plugin = start()
    try:
        pool = call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": SUBNET})["PoolID"]
        address = call("IpamDriver.RequestAddress", {"PoolID": pool, "Address": "", "Options": mac(1)})["Address"].split("/")[0]
        chunk_key = "/" + ChunkBitmaps.key(pool, 0).lstrip("/")
        zk.set_acls(chunk_key, [make_acl("world", "anyone", read=True, admin=True)])

        assert call("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": address}) == {}
        time.sleep(1.0)  # two refused commits, at least
        assert AddressRecords.read(store, pool, address) is not None
        journal = journal_path(str(state_dir), JOURNAL_KIND, "h1", zk_url)
        with open(journal) as f:
            assert [json.loads(line)["pending"]["address"] for line in f] == [address]
        os.killpg(plugin.process.pid, signal.SIGKILL)
        plugin.process.wait(10)

        zk.set_acls(chunk_key, OPEN_ACL_UNSAFE)
        plugin = start()
        assert until(lambda: AddressRecords.read(store, pool, address) is None)
        assert until(lambda: not os.path.exists(journal))  # nothing pending: no file kept
        assert "answered before a restart" in plugin.log()
    finally:
        plugin.stop()
        zk.stop()
        zk.close()
        store.close()


def test_while_releases_cannot_commit_a_request_by_name_fails_naming_them_and_they_commit_later__commit_faked(ipam_with_journal, monkeypatch):
    """The queue retries while the store refuses; a request by name waiting on it fails with a clear
    error rather than being refused as a conflict (a unit test: the commit is faked to refuse, the store is real)."""
    h1 = ipam_with_journal()
    h1.timeout = 0.5
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    address = request(h1, pool, options=mac(1)).split("/")[0]
    refusing = threading.Event()
    refusing.set()
    real = h1._release

    def release_unless_refused(*args):
        if refusing.is_set():
            raise StoreUnavailable("store away (faked)")
        return real(*args)

    monkeypatch.setattr(h1, "_release", release_unless_refused)
    release(h1, pool, address)
    with pytest.raises(StoreUnavailable, match="releases of its addresses are not in the store yet"):
        request(h1, pool, address, options=mac(2))
    refusing.clear()
    assert until(lambda: record(h1, pool, address) is None, timeout=5)
