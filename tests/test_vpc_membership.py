"""Host subnets of a vpc network in a real store (ZooKeeper, and the embedded one): a host gone from the
store is marked left by the others, its subnet is free after the grace period, and a host that comes
back in time keeps its subnet."""

from __future__ import annotations

import time

import netaddr

from acsnet.plugins.vpc.membership import Membership
from acsnet.store import open_store

NETWORK = netaddr.IPNetwork("100.71.0.0/16")


def test_a_dead_hosts_subnet_is_marked_left_and_free_after_the_grace(store_url):
    first, second, third = (open_store(store_url, timeout=5.0) for _ in range(3))
    try:
        for store, host in ((first, "ha"), (second, "hb"), (third, "hc")):
            store.register_host(host, "vpc", {"host_id": host})
        a = Membership(first, "ha", "192.0.2.1", "02:00:00:00:00:01", grace=1.0)
        b = Membership(second, "hb", "192.0.2.2", "02:00:00:00:00:02", grace=1.0)
        c = Membership(third, "hc", "192.0.2.3", "02:00:00:00:00:03", grace=1.0)
        a.claim(NETWORK, 24, 2)
        held_by_b = b.claim(NETWORK, 24, 2)
        assert held_by_b.mac == "02:00:00:00:00:02"
        assert a.mark_gone(NETWORK, first.live_hosts()) == []  # everyone alive: nothing marked

        second.close()  # hb dies: its session ends
        deadline = time.monotonic() + 15
        while "hb" in first.live_hosts():
            assert time.monotonic() < deadline, "hb stayed alive after its session was closed"
            time.sleep(0.1)
        assert a.mark_gone(NETWORK, first.live_hosts()) == ["hb"]
        assert a.mark_gone(NETWORK, first.live_hosts()) == []  # once
        assert a.settings(NETWORK) == (24, 2)

        # Within the grace the dead host's subnet still counts against max_routes...
        try:
            c.claim(NETWORK, 24, 2)
            raise AssertionError("a third host got in while the dead one's subnet was in its grace period")
        except Exception as e:
            assert "max_routes=2" in str(e), e
        # ...after it, the subnet is free again, and the next host may get it.
        time.sleep(1.2)
        assert c.claim(NETWORK, 24, 2).subnet == held_by_b.subnet
    finally:
        for store in (first, third):
            store.close()


def test_a_host_marked_gone_that_comes_back_in_time_claims_its_subnet_again(store_url):
    first, second = open_store(store_url, timeout=5.0), open_store(store_url, timeout=5.0)
    try:
        first.register_host("ha", "vpc", {"host_id": "ha"})
        a = Membership(first, "ha", "192.0.2.1", "02:00:00:00:00:01")
        b = Membership(second, "hb", "192.0.2.2", "02:00:00:00:00:02")
        a.claim(NETWORK, 24, 50)
        before = b.claim(NETWORK, 24, 50)
        assert a.mark_gone(NETWORK, {"ha"}) == ["hb"]  # hb seen gone (a reboot, a partition)
        assert b.held([NETWORK]) == []
        assert b.claim(NETWORK, 24, 50).subnet == before.subnet  # back: the same subnet, not left any more
        assert [h.subnet for h in b.held([NETWORK])] == [before.subnet]
    finally:
        first.close()
        second.close()
