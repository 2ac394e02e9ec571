"""Host subnets of a vpc network in a real store (ZooKeeper, and the embedded one): a host gone from the
store is marked left by the others, its subnet is free after the grace period, and a host that comes
back in time keeps its subnet."""

from __future__ import annotations

import time

import netaddr

from acsnet.plugins.vpc.membership import Membership
from acsnet.plugins.vpc.model import VpcSettings
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
        assert a.settings(NETWORK) == VpcSettings(24, 2)

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


NETWORK6 = netaddr.IPNetwork("fd00:73::/64")


def test_a_dual_stack_network_gives_each_host_an_ipv6_slice_beside_its_subnet_and_the_ipam_both(store_url):
    """Slices claimed, counted and released with the host's IPv4 subnet, in the same commit; the IPAM
    learns each host's IPv6 slice under the network's IPv6 prefix, as it does its IPv4 subnet."""
    from acsnet.errors import Conflict
    from acsnet.ipam.state import HostSubnetAssignment

    first, second, third = (open_store(store_url, timeout=5.0) for _ in range(3))
    try:
        a = Membership(first, "ha", "192.0.2.1", "02:00:00:00:00:01", grace=0.0)
        b = Membership(second, "hb", "192.0.2.2", "02:00:00:00:00:02", grace=0.0)
        c = Membership(third, "hc", "192.0.2.3", "02:00:00:00:00:03", grace=0.0)
        network = netaddr.IPNetwork("100.73.0.0/16")
        held_a = a.claim(network, 24, 2, NETWORK6, 80)
        held_b = b.claim(network, 24, 2, NETWORK6, 80)
        assert (held_a.subnet6, held_b.subnet6) == ("fd00:73::/80", "fd00:73:0:0:1::/80")
        assert (held_a.network6, str(held_b.gateway6)) == ("fd00:73::/64", "fd00:73::1:0:0:1")
        assert a.claim(network, 24, 2, NETWORK6, 80) == held_a  # claimed again: the same
        assert HostSubnetAssignment.read(first, NETWORK6, "hb") == netaddr.IPNetwork(held_b.subnet6)
        assert a.settings(network) == VpcSettings(24, 2, NETWORK6, 80)
        # The route limit counts hosts: two hosts, four slices, and a third host is refused.
        try:
            c.claim(network, 24, 2, NETWORK6, 80)
            raise AssertionError("a third host got in past max_routes=2")
        except Conflict as e:
            assert "max_routes=2" in e.message and "2 hosts hold subnets" in e.message, e.message
        # Other IPv6 settings than the network's first host's: refused, naming both.
        for other in ((None, None), (netaddr.IPNetwork("fd00:74::/64"), 80), (NETWORK6, 96)):
            try:
                c.claim(network, 24, 2, *other)
                raise AssertionError(f"claimed with {other}")
            except Conflict as e:
                assert "exists with host_subnet_size=24 and max_routes=2, IPv6 fd00:73::/64 with host_subnet_size_v6=80" in e.message
        # A host that leaves gives both back: the IPAM forgets its slice, and the next host takes it.
        assert [h.subnet6 for h in b.leave()] == [held_b.subnet6]
        assert HostSubnetAssignment.read(first, NETWORK6, "hb") is None
        time.sleep(0.1)
        assert c.claim(network, 24, 2, NETWORK6, 80).subnet6 == held_b.subnet6
        assert HostSubnetAssignment.read(first, NETWORK6, "hc") == netaddr.IPNetwork(held_b.subnet6)
    finally:
        for store in (first, second, third):
            store.close()


def test_host_subnet_records_of_older_and_newer_versions_load():
    """An IPv4-only record is written without the IPv6 fields (the version before builds records with
    cls(**data)); a record of that version loads; a field of a later version is left out."""
    from acsnet.plugins.vpc.model import HostSubnet

    old = {"host": "h1", "network": "100.73.0.0/16", "subnet": "100.73.0.0/24", "underlay": "192.0.2.1",
           "left_at": None, "mac": "02:00:00:00:00:01"}
    record = HostSubnet.from_json(old)
    assert record.subnet6 is None and record.gateway6 is None and record.to_json() == old
    dual = HostSubnet(**{**old, "network6": "fd00:73::/64", "subnet6": "fd00:73::/80"})
    assert HostSubnet.from_json(dual.to_json()) == dual and str(dual.gateway6) == "fd00:73::1"
    assert HostSubnet.from_json({**dual.to_json(), "later": 1}) == dual
    assert VpcSettings.from_json({"host_subnet_size": 24, "max_routes": 2, "claims": 3}) == VpcSettings(24, 2)
    assert "subnet6" not in VpcSettings(24, 2).to_json(claims=0)


def test_a_ranges_settings_go_with_its_last_host_subnet_so_it_can_be_made_again_with_other_options(store_url):
    """While any host holds a subnet of a range, other options are refused naming the stored ones; the
    last host to release its subnet takes the settings with it (one commit), and the range is made
    again with other options. Hosts releasing at once never leave settings that no host holds."""
    import threading

    from acsnet.errors import Conflict
    from acsnet.ipam.state import HostSubnetAssignment
    from acsnet.plugins.vpc.state import HostSubnetRecord, SubnetClaim, VpcNetworkSettings

    network = netaddr.IPNetwork("100.75.0.0/16")
    first, second, third = (open_store(store_url, timeout=5.0) for _ in range(3))
    try:
        a = Membership(first, "ha", "192.0.2.1", "02:00:00:00:00:01")
        b = Membership(second, "hb", "192.0.2.2", "02:00:00:00:00:02")
        c = Membership(third, "hc", "192.0.2.3", "02:00:00:00:00:03")
        options_a, options_b = (24, 4, NETWORK6, 80), (26, 8, netaddr.IPNetwork("fd00:75::/64"), 96)
        a.claim(network, *options_a)
        b.claim(network, *options_a)
        assert a.release(network) is False  # hb still holds one: the settings stay, and refuse others
        assert a.held([network]) == [] and HostSubnetAssignment.read(first, NETWORK6, "ha") is None
        try:
            c.claim(network, *options_b)
            raise AssertionError("other options taken while a host held a subnet of the range")
        except Conflict as e:
            assert "exists with host_subnet_size=24 and max_routes=4, IPv6 fd00:73::/64 with host_subnet_size_v6=80" in e.message
        assert b.release(network) is True
        assert VpcNetworkSettings.read_all(first) == [] and a.settings(network) is None
        assert HostSubnetRecord.hosts(first, network) == [] and SubnetClaim.read_all(first, network) == []
        assert HostSubnetAssignment.read_all(first, network) == [] and HostSubnetAssignment.read_all(first, NETWORK6) == []
        assert b.release(network) is True  # again: nothing left, nothing done

        # A node of the range made just then as a parent (an earlier version's agent watching its host
        # records made them), the settings' node empty: still no settings, and the next claim's options
        # are stored.
        first.create(HostSubnetRecord.key(network))
        assert a.settings(network) is None
        held = c.claim(network, *options_b)
        assert c.settings(network) == VpcSettings(*options_b) and held.subnet == "100.75.0.0/26" and held.subnet6 == "fd00:75::/96"
        assert c.release(network) is True and c.settings(network) is None

        # Two hosts releasing at once, again and again: the settings always go with the last subnet.
        for _ in range(10):
            a.claim(network, *options_a)
            b.claim(network, *options_a)
            go = threading.Barrier(2)
            threads = [threading.Thread(target=lambda m=m: (go.wait(), m.release(network))) for m in (a, b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert HostSubnetRecord.hosts(first, network) == [] and a.settings(network) is None
    finally:
        for store in (first, second, third):
            store.close()


def test_a_host_releasing_its_subnet_also_frees_those_of_hosts_gone_past_the_grace_and_the_settings_with_them(store_url):
    from acsnet.plugins.vpc.state import VpcNetworkSettings

    network = netaddr.IPNetwork("100.76.0.0/16")
    first, second = open_store(store_url, timeout=5.0), open_store(store_url, timeout=5.0)
    try:
        a = Membership(first, "ha", "192.0.2.1", grace=0.0)
        b = Membership(second, "hb", "192.0.2.2", grace=0.0)
        a.claim(network, 24, 4)
        b.claim(network, 24, 4)
        b.leave()  # left, its grace (none here) over: it holds nothing any more
        time.sleep(0.05)
        assert a.release(network) is True and VpcNetworkSettings.read_all(first) == []
    finally:
        first.close()
        second.close()


def test_gc_dead_hosts_releases_a_dead_hosts_subnet_and_the_ranges_settings_with_the_last_one(store_url):
    """`acsnet gc --dead-hosts` on the store alone (audit's store findings and repair, no OVS needed):
    the subnet of a host that is not alive is found, left alone without --dead-hosts, released with it,
    and the range's settings go with its last subnet."""
    from acsnet.audit import repair, store_findings
    from acsnet.plugins.vpc.state import VpcNetworkSettings

    network = netaddr.IPNetwork("100.77.0.0/16")
    first, second = open_store(store_url, timeout=5.0), open_store(store_url, timeout=5.0)
    try:
        first.register_host("ha", "vpc", {"host_id": "ha"})
        a = Membership(first, "ha", "192.0.2.1")
        b = Membership(second, "hb", "192.0.2.2")  # never alive in the store: dead
        a.claim(network, 24, 4)
        held = b.claim(network, 24, 4)
        assert a.release(network) is False  # hb, dead, still holds its subnet: the settings stay
        findings = [f for f in store_findings(first, first.live_hosts(), 0.0, ["vpc"]) if f.kind == "dead-host-subnet"]
        assert [(f.subject, held.subnet in f.detail) for f in findings] == [(f"{network}/hb", True)], findings
        assert repair(first, None, {}, "ha", findings, dead_hosts=False) == [] and a.settings(network) == VpcSettings(24, 4)
        assert len(repair(first, None, {}, "ha", findings, dead_hosts=True)) == 1
        assert VpcNetworkSettings.read_all(first) == [] and store_findings(first, first.live_hosts(), 0.0, ["vpc"]) == []
    finally:
        first.close()
        second.close()


def test_the_ipams_node_of_a_split_network_goes_with_its_last_host_and_comes_back_with_the_next(store_url):
    """`ipam/host-subnets/<cidr>` (and the IPv6 prefix's) is removed when its last host's part goes,
    by a release (one commit, with a host gone past the grace in it) or by a leave, and made again by
    the next claim; the IPAM's watch of it, set once, hears the network split again."""
    import threading

    from acsnet.ipam.state import HostSubnetAssignment

    network, network6 = netaddr.IPNetwork("100.78.0.0/16"), netaddr.IPNetwork("fd00:78::/64")
    first, second = open_store(store_url, timeout=5.0), open_store(store_url, timeout=5.0)
    try:
        a = Membership(first, "ha", "192.0.2.1", grace=0.0)
        b = Membership(second, "hb", "192.0.2.2", grace=0.0)
        seen, changed = [], threading.Condition()

        def on_hosts(hosts):  # as the IPAM's allocator follows a split network
            with changed:
                seen.append(hosts)
                changed.notify_all()

        def heard(hosts):
            with changed:
                assert changed.wait_for(lambda: seen[-1] == hosts, 10), f"the watch said {seen}, not {hosts}"

        HostSubnetAssignment.watch_all(first, network, on_hosts)
        nodes = (HostSubnetAssignment.key(network), HostSubnetAssignment.key(network6))

        def left() -> list:
            return [key for key in nodes if first.get(key) is not None]

        a.claim(network, 24, 4, network6, 80)
        b.claim(network, 24, 4, network6, 80)
        heard(["ha", "hb"])
        b.leave()  # gone past its grace (none): released with ha's own release, in ha's commit
        assert left() == list(nodes), "a node went while a host still held a part"
        time.sleep(0.05)
        assert a.release(network) is True
        assert left() == [], "the IPAM's nodes of a network no host holds a part of were left behind"
        heard([])
        b.claim(network, 24, 4, network6, 80)
        heard(["hb"])
        b.leave()
        assert left() == [], "a leave left the IPAM's nodes behind"
        heard([])
        a.claim(network, 24, 4, network6, 80)
        heard(["ha"])
        assert HostSubnetAssignment.read(first, network6, "ha") is not None
    finally:
        first.close()
        second.close()


def test_releasing_the_last_part_of_a_split_network_leaves_its_node_to_a_host_claiming_meanwhile(store_url):
    """The node's delete rides in the release's commit: a claim made between the release's reads and
    its commit fails the commit (a node with a child is not deleted), and the release read again
    leaves the node, now the claimer's."""
    from acsnet.ipam.state import HostSubnetAssignment

    network = netaddr.IPNetwork("100.79.0.0/16")
    store = open_store(store_url, timeout=5.0)
    try:
        assert HostSubnetAssignment.write(store, network, "ha", "100.79.0.0/24")
        release = HostSubnetAssignment.release_operations(store, network, "ha")
        assert HostSubnetAssignment.write(store, network, "hb", "100.79.1.0/24")  # meanwhile
        assert store.commit(release) is False
        assert HostSubnetAssignment.read_all(store, network) == ["ha", "hb"]
        assert store.commit(HostSubnetAssignment.release_operations(store, network, "ha"))
        assert HostSubnetAssignment.read_all(store, network) == ["hb"]
        HostSubnetAssignment.clear(store, network, "hb")
        assert store.get(HostSubnetAssignment.key(network)) is None
    finally:
        store.close()
