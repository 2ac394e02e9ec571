"""The segment agent with a fake datapath: the real agent on the real embedded store (one SQLite file,
its watches and sessions), with `RecordingDatapath` standing in for OVS and the kernel. Each host is
an agent with its own store session in this process; what its datapath was told to program is read
from its `RecordedSwitch`. Seconds, not minutes: the lab tests (test_vlan, test_vxlan, test_vpc,
test_reliability) show the same on real switches."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time

import netaddr
import pytest

from acsnet.after_answer import Journal
from acsnet.errors import Conflict
from acsnet.plugins.segments import state
from acsnet.plugins.segments.agent import HANDOVER_SECONDS, SegmentAgent
from acsnet.plugins.segments.model import LAYOUTS, SegmentEndpoint, SegmentNetwork
from acsnet.plugins.segments.ports import DRIVER_ID, ENDPOINT_ID, SPARE
from acsnet.plugins.segments.recording import RecordedSwitch, RecordingDatapath
from acsnet.plugins.vxlan.agent import VXLAN_TABLE_PARTS, vxlan_table
from acsnet.store import open_store
from acsnet.store.liveness import LIVE, HostRecord, HostSessions

VNI = 4242
SUBNET = netaddr.IPNetwork("10.42.0.0/24")
NETWORK_ID = "n" * 64


def wait_for(condition, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout}s")


def endpoint(number: int, *, since: float | None = None) -> SegmentEndpoint:
    return SegmentEndpoint(f"{number:02d}" * 32, NETWORK_ID, VNI, f"10.42.0.{number}", 24, f"02:42:0a:2a:00:{number:02x}",
                           time.time() if since is None else since)


class Cluster:
    """Hosts, each an agent with its own store session and its recorded switch (which outlives the agent)."""

    def __init__(self, url: str, driver: str = "vxlan", *, open_host_store=None, **datapath_options):
        self.url = url
        self.open_host_store = open_host_store or (lambda host: open_store(url, timeout=5.0))  # host -> its store
        self.driver = driver
        self.datapath_options = datapath_options
        self.switches: dict[str, RecordedSwitch] = {}
        self.agents: dict[str, SegmentAgent] = {}
        self.stores = {}

    def start(self, host: str, **agent_options) -> SegmentAgent:
        store = self.open_host_store(host)
        store.register_host(host, self.driver, {"host_id": host})
        switch = self.switches.setdefault(host, RecordedSwitch())
        datapath = RecordingDatapath(self.driver, switch, vtep=f"192.0.2.{len(self.switches)}",
                                     host_mac=f"02:00:00:00:01:{len(self.switches):02x}", **self.datapath_options)
        # No spare pairs unless a test asks for them: they are made a second after the start, and which of
        # a test's endpoints would take one would depend on the machine's speed.
        agent = SegmentAgent(store, datapath, host, **{"resync_seconds": 30.0, "spare_pairs": 0, **agent_options})
        agent.start()
        self.agents[host], self.stores[host] = agent, store
        return agent

    def stop(self, host: str) -> None:
        """The plugin exits: its agent stops and its store session ends (the host is dead until restarted)."""
        self.agents.pop(host).stop()
        self.stores.pop(host).close()

    def close(self) -> None:
        for host in list(self.agents):
            self.stop(host)


@pytest.fixture
def cluster(embedded_url):
    made = Cluster(embedded_url)
    yield made
    made.close()


def add_network(agent: SegmentAgent) -> None:
    agent.add_network(SegmentNetwork(NETWORK_ID, VNI, SUBNET, None, None, 1450))


def two_hosts_h2_following(cluster: Cluster, **h1_options) -> tuple[SegmentAgent, SegmentAgent]:
    """h1 and h2 on the network, h2 with an endpoint (10.42.0.9) on it: h2 follows the segment."""
    h1, h2 = cluster.start("h1", **h1_options), cluster.start("h2")
    add_network(h1)
    add_network(h2)
    h2.add_endpoint(endpoint(9))
    return h1, h2


def test_an_endpoint_added_on_one_host_shows_in_another_hosts_recorded_table_and_goes_with_it(cluster):
    h1, h2 = two_hosts_h2_following(cluster)  # h2 follows the segment from its first endpoint on it
    first = endpoint(1)
    h1.add_endpoint(first)
    assert f"local segment={VNI} ip=10.42.0.1 mac={first.mac} port={first.host_port}" in cluster.switches["h1"].flows
    assert cluster.switches["h1"].ports[first.host_port][ENDPOINT_ID] == first.endpoint_id
    assert cluster.switches["h1"].ports[first.host_port][DRIVER_ID] == "vxlan"
    remote = f"remote segment={VNI} ip=10.42.0.1 mac={first.mac} host=h1 vtep=192.0.2.1"
    wait_for(lambda: remote in cluster.switches["h2"].flows, what="h1's endpoint in h2's table")
    wait_for(lambda: "10.42.0.1" in cluster.switches["h2"].announced, what="h2 told of the new address")

    h1.remove_endpoint(first.endpoint_id)
    wait_for(lambda: not any("10.42.0.1" in f for f in cluster.switches["h1"].flows), what="its flows gone (the worker's)")
    wait_for(lambda: remote not in cluster.switches["h2"].flows, what="h1's endpoint gone from h2's table")
    wait_for(lambda: first.host_port not in cluster.switches["h1"].ports, what="the port retired")
    wait_for(lambda: first.host_port not in cluster.switches["h1"].links, what="the veth deleted")
    assert state.read_host_endpoints(cluster.stores["h1"], LAYOUTS["vxlan"], "h1") == {}


def test_a_restarted_switch_has_its_flows_again_within_a_worker_pass_not_at_the_periodic_check__recording_bridge(cluster):
    """ovs-vswitchd restarted (a new pid) starts with none of the flows: every container's traffic stops
    until they are back. The worker notices at its next pass (at least every ORPHAN_CHECK_SECONDS), not
    at the periodic check (300 s here). The lab test is tests/test_vlan.py's TSO one, on OVS."""
    from acsnet.plugins.segments.worker import ORPHAN_CHECK_SECONDS

    h1, h2 = two_hosts_h2_following(cluster, resync_seconds=300.0)
    h1.add_endpoint(endpoint(1))
    switch = cluster.switches["h1"]
    wait_for(lambda: any("host=h2" in f for f in switch.flows), what="h2's endpoint in h1's table")
    installed, before = switch.flows, switch.installs
    switch.restart()
    assert switch.flows == []
    wait_for(lambda: switch.flows == installed, timeout=ORPHAN_CHECK_SECONDS + 3, what="the flows installed again")
    assert switch.installs == before + 1, "installed whole, once"


def test_an_address_held_on_a_live_host_is_refused_on_another_after_the_handover_wait(cluster):
    h1, h2 = cluster.start("h1"), cluster.start("h2")
    add_network(h1)
    add_network(h2)
    h1.add_endpoint(endpoint(5))
    taken = endpoint(5)
    started = time.monotonic()
    with pytest.raises(Conflict, match="in use by an endpoint on host h1"):
        h2.add_endpoint(SegmentEndpoint("ff" * 32, NETWORK_ID, VNI, taken.ip, 24, "02:42:0a:2a:00:ff", time.time()))
    assert HANDOVER_SECONDS <= time.monotonic() - started < HANDOVER_SECONDS + 3  # waited for it to go, bounded
    assert "ff" * 32 not in h2.endpoints and not any(p.startswith("vhffff") for p in cluster.switches["h2"].ports)


def test_a_claim_waiting_for_another_hosts_record_holds_up_no_other_request_of_its_host(cluster):
    """The handover wait of a genuine conflict (2 s) runs before the agent's lock: another container on
    the same host is added meanwhile, at its usual pace."""
    h1, h2 = cluster.start("h1"), cluster.start("h2")
    add_network(h1)
    add_network(h2)
    h2.add_endpoint(endpoint(9))  # h2 follows the segment: its watch names h1's record below
    h1.add_endpoint(endpoint(5))
    wait_for(lambda: h2.remote.other_hosts_naming(VNI, "10.42.0.5") == {"h1"}, what="h1's record seen on h2")
    refused = []

    def conflicting():
        try:
            h2.add_endpoint(SegmentEndpoint("ff" * 32, NETWORK_ID, VNI, "10.42.0.5", 24, "02:42:0a:2a:00:ff", time.time()))
        except Conflict as e:
            refused.append((time.monotonic(), e.message))

    started = time.monotonic()
    waiting = threading.Thread(target=conflicting)
    waiting.start()
    time.sleep(0.3)  # the conflicting claim is waiting now
    h2.add_endpoint(endpoint(7))
    assert time.monotonic() - started < HANDOVER_SECONDS / 2, "another request waited behind the handover wait"
    waiting.join(timeout=HANDOVER_SECONDS + 5)
    assert refused and "in use by an endpoint on host h1" in refused[0][1]
    assert HANDOVER_SECONDS <= refused[0][0] - started < HANDOVER_SECONDS + 3
    assert endpoint(7).endpoint_id in h2.endpoints and "ff" * 32 not in h2.endpoints


def slow_clears(monkeypatch, seconds: float) -> None:
    """Each commit of an endpoint's records' removal starts `seconds` late (the store is the real one)."""
    real = state.clear_endpoint_records

    def slowed(*args):
        time.sleep(seconds)
        real(*args)

    monkeypatch.setattr(state, "clear_endpoint_records", slowed)


def test_with_a_journal_a_removal_answers_before_its_commit_and_its_flows_and_records_go_just_after__commit_slowed(cluster, tmp_path, monkeypatch):
    journal = str(tmp_path / "h1-clears.journal")
    h1, h2 = two_hosts_h2_following(cluster, clear_journal=journal)
    first = endpoint(1)
    h1.add_endpoint(first)
    remote = f"remote segment={VNI} ip=10.42.0.1 mac={first.mac} host=h1 vtep=192.0.2.1"
    wait_for(lambda: remote in cluster.switches["h2"].flows, what="h1's endpoint in h2's table")
    assert not os.path.exists(journal)  # nothing pending: no file

    slow_clears(monkeypatch, 1.0)
    started = time.monotonic()
    h1.remove_endpoint(first.endpoint_id)
    assert time.monotonic() - started < 0.5  # not behind the commit
    assert h1.clears_pending == 1 and first.endpoint_id in open(journal).read()
    assert state.read_host_endpoint(cluster.stores["h1"], LAYOUTS["vxlan"], "h1", first.endpoint_id) is not None
    wait_for(lambda: not any("10.42.0.1" in f for f in cluster.switches["h1"].flows), what="its flows gone, the commit pending")
    assert h1.clears_pending == 1
    wait_for(lambda: h1.clears_pending == 0, what="the removal committed")
    assert state.read_host_endpoints(cluster.stores["h1"], LAYOUTS["vxlan"], "h1") == {}
    assert state.read_segment_records(cluster.stores["h1"], LAYOUTS["vxlan"], VNI).keys() == {f"10.42.0.9~{'09' * 6}"}
    wait_for(lambda: remote not in cluster.switches["h2"].flows, what="h1's endpoint gone from h2's table")
    assert not os.path.exists(journal)


def test_an_address_another_live_host_answered_the_removal_of_is_claimed_once_it_commits__commit_slowed(cluster, tmp_path, monkeypatch):
    """dockerd releases the address the moment DeleteEndpoint answers; the IPAM's release may commit
    before the driver's records go, and another host be handed the address: its claim waits for them."""
    h1, h2 = cluster.start("h1", clear_journal=str(tmp_path / "h1-clears.journal")), cluster.start("h2")
    add_network(h1)
    add_network(h2)
    h1.add_endpoint(endpoint(5))
    slow_clears(monkeypatch, 0.5)
    h1.remove_endpoint(endpoint(5).endpoint_id)
    moved = SegmentEndpoint("ff" * 32, NETWORK_ID, VNI, "10.42.0.5", 24, "02:42:0a:2a:00:ff", time.time())
    h2.add_endpoint(moved)  # no Conflict: h1's record went within the handover wait
    records = state.read_segment_records(cluster.stores["h2"], LAYOUTS["vxlan"], VNI)
    assert [r.host for r in records.values()] == ["h2"]


def test_a_removal_answered_before_a_restart_is_committed_at_the_start_and_its_endpoint_not_loaded_again__journal_written_by_the_test_commit_slowed(cluster, tmp_path, monkeypatch):
    """The plugin killed right after answering a DeleteEndpoint: the journal has the removal, the store
    still has the endpoint's records, and its veth and port are still there (they go after the answer).
    Started again, it commits the removal, does not take the endpoint back, and removes its port. (The
    commit is slowed so that the start reads the records before they go, as a start with a slow store does.)"""
    journal = str(tmp_path / "h1-clears.journal")
    h1 = cluster.start("h1", clear_journal=journal)
    add_network(h1)
    gone, kept = endpoint(3), endpoint(4)
    h1.add_endpoint(gone)
    h1.add_endpoint(kept)
    cluster.stop("h1")
    Journal(journal, SegmentEndpoint).add(h1.endpoints[gone.endpoint_id])  # as the killed plugin wrote it
    assert gone.host_port in cluster.switches["h1"].ports and gone.host_port in cluster.switches["h1"].links

    slow_clears(monkeypatch, 0.5)
    h1 = cluster.start("h1", clear_journal=journal)
    assert state.read_host_endpoint(cluster.stores["h1"], LAYOUTS["vxlan"], "h1", gone.endpoint_id) is not None
    assert set(h1.endpoints) == {kept.endpoint_id}
    wait_for(lambda: not os.path.exists(journal), what="the journal committed")
    assert set(state.read_host_endpoints(cluster.stores["h1"], LAYOUTS["vxlan"], "h1")) == {kept.endpoint_id}
    assert list(state.read_segment_records(cluster.stores["h1"], LAYOUTS["vxlan"], VNI)) == [f"10.42.0.4~{'04' * 6}"]
    wait_for(lambda: gone.host_port not in cluster.switches["h1"].ports, what="its port removed")
    assert kept.host_port in cluster.switches["h1"].ports
    assert not any("10.42.0.3" in f for f in cluster.switches["h1"].flows)


def test_a_claim_on_a_followed_segment_checks_its_address_against_the_watchs_names__claim_threads_listings_counted(cluster, monkeypatch):
    """A host with an endpoint on a segment follows it: a claim there reads only the records of its own
    address (none when it is free), and still refuses one held on a live host once the watch said so."""
    h1, h2 = cluster.start("h1"), cluster.start("h2")
    add_network(h1)
    add_network(h2)
    h1.add_endpoint(endpoint(3))
    h2.add_endpoint(endpoint(4))  # h2 follows the segment from here on
    listed = []  # what h2's claims list (its worker may list the segment in the background: not counted)
    store = cluster.stores["h2"]
    real_children = store.children

    def children(path):
        if threading.current_thread().name.startswith("vxlan-claim"):
            listed.append(path)
        return real_children(path)

    monkeypatch.setattr(store, "children", children)
    h2.add_endpoint(endpoint(6))
    h1.add_endpoint(endpoint(7))
    wait_for(lambda: any("ip=10.42.0.7 " in f for f in cluster.switches["h2"].flows), what="h1's 10.42.0.7 in h2's table")
    with pytest.raises(Conflict, match="in use by an endpoint on host h1"):
        h2.add_endpoint(SegmentEndpoint("ee" * 32, NETWORK_ID, VNI, "10.42.0.7", 24, "02:42:0a:2a:00:ee", time.time()))
    assert not [p for p in listed if p.rstrip("/").endswith(f"/{VNI}")], listed
    assert "ee" * 32 not in h2.endpoints and "10.42.0.6" in [e.ip for e in h2.endpoints.values()]


def test_a_dead_hosts_routes_are_withdrawn_and_come_back_with_it(cluster):
    h1, h2 = two_hosts_h2_following(cluster)
    h1.add_endpoint(endpoint(1))
    remote = "remote segment=4242 ip=10.42.0.1"
    wait_for(lambda: any(f.startswith(remote) for f in cluster.switches["h2"].flows), what="h1's route on h2")

    cluster.stop("h1")  # every session of h1 ends: it is dead
    wait_for(lambda: not any(f.startswith(remote) for f in cluster.switches["h2"].flows), what="h1's route withdrawn")

    cluster.start("h1")  # its records stayed: back with its session
    wait_for(lambda: any(f.startswith(remote) for f in cluster.switches["h2"].flows), what="h1's route back")


def test_a_restarted_plugin_installs_exactly_the_same(cluster):
    h1, h2 = cluster.start("h1"), cluster.start("h2")
    add_network(h1)
    add_network(h2)
    for n in (1, 2):
        h1.add_endpoint(endpoint(n))
    h2.add_endpoint(endpoint(3))
    wait_for(lambda: len([f for f in cluster.switches["h1"].flows if f.startswith("remote")]) == 1, what="h2's endpoint on h1")
    flows, ports = list(cluster.switches["h1"].flows), cluster.switches["h1"].ports.copy()

    cluster.stop("h1")
    restarted = cluster.start("h1")
    assert cluster.switches["h1"].flows == flows
    assert cluster.switches["h1"].ports == ports
    assert set(restarted.endpoints) == {endpoint(1).endpoint_id, endpoint(2).endpoint_id}


def test_a_restart_forgets_endpoints_whose_veth_is_gone_and_removes_ports_nobody_owns(cluster):
    h1 = cluster.start("h1")
    add_network(h1)
    kept, lost = endpoint(1), endpoint(2)
    h1.add_endpoint(kept)
    h1.add_endpoint(lost)
    cluster.stop("h1")
    switch = cluster.switches["h1"]
    switch.lose_veth(lost)  # its container died while the plugin was down
    switch.ports["vhstranger000"] = {ENDPOINT_ID: "77" * 32, DRIVER_ID: "vxlan"}  # a crash between steps
    switch.ports["vhothers00000"] = {ENDPOINT_ID: "88" * 32, DRIVER_ID: "vlan"}  # another driver's, on a shared bridge

    h1 = cluster.start("h1")
    assert set(h1.endpoints) == {kept.endpoint_id}
    assert lost.host_port not in switch.ports and "vhstranger000" not in switch.ports
    assert "vhothers00000" in switch.ports
    assert not any(lost.ip in f for f in switch.flows)
    layout = LAYOUTS["vxlan"]
    assert set(state.read_host_endpoints(cluster.stores["h1"], layout, "h1")) == {kept.endpoint_id}
    assert [r.ip for r in state.read_segment_records(cluster.stores["h1"], layout, VNI).values()] == [kept.ip]


def test_the_orphan_sweep_removes_an_endpoint_no_container_joined(cluster):
    h1 = cluster.start("h1", orphan_grace=0.2)
    add_network(h1)
    joined, orphan = endpoint(1, since=time.time() - 10), endpoint(2, since=time.time() - 10)
    h1.add_endpoint(joined)
    h1.add_endpoint(orphan)
    cluster.switches["h1"].take_container_end(joined)
    h1.sweep_orphans()  # first seen idle now
    time.sleep(0.25)
    h1.sweep_orphans()
    assert set(h1.endpoints) == {joined.endpoint_id}
    assert not any(orphan.ip in f for f in cluster.switches["h1"].flows)
    assert [r.ip for r in state.read_segment_records(cluster.stores["h1"], LAYOUTS["vxlan"], VNI).values()] == [joined.ip]


def test_the_recorded_table_can_be_a_drivers_real_flows(embedded_url):
    cluster = Cluster(embedded_url, table=vxlan_table)
    try:
        h1, h2 = cluster.start("h1"), cluster.start("h2")
        add_network(h1)
        add_network(h2)
        h2.add_endpoint(endpoint(9))
        h1.add_endpoint(endpoint(1))
        # h2 sends h1's container's MAC through the tunnel to h1's VTEP, and answers ARP for its address
        tunnel = (f"cookie=0xac6,table=10,priority=100,reg1={VNI},dl_dst={endpoint(1).mac},"
                  f"actions=set_field:{VNI}->tun_id,set_field:192.0.2.1->tun_dst,output:acsvtep")
        wait_for(lambda: tunnel in cluster.switches["h2"].flows, what="h2's tunnel flow to h1")
        assert any("arp_tpa=10.42.0.1," in f for f in cluster.switches["h2"].flows)
        h1.remove_endpoint(endpoint(1).endpoint_id)
        wait_for(lambda: not any("10.42.0.1" in f for f in cluster.switches["h2"].flows), what="h2's flows to it gone")
    finally:
        cluster.close()


def test_a_global_network_is_taken_at_its_first_endpoint_elsewhere_and_dropped_when_deleted(cluster):
    h1, h2 = cluster.start("h1", cluster_wide=True), cluster.start("h2", cluster_wide=True)
    add_network(h1)  # dockerd sends CreateNetwork of a global network to one host only
    assert NETWORK_ID not in h2.networks
    assert h2.network(NETWORK_ID).segment == VNI  # its first endpoint there asks for it
    h1.add_endpoint(endpoint(8))
    h2.add_endpoint(endpoint(7))
    wait_for(lambda: any(f.startswith("remote segment=4242 ip=10.42.0.7") for f in cluster.switches["h1"].flows),
             what="h2's endpoint on h1")

    h2.remove_endpoint(endpoint(7).endpoint_id)
    h1.remove_network(NETWORK_ID)  # ... and DeleteNetwork to one host only
    wait_for(lambda: NETWORK_ID not in h2.networks, what="h2 dropping the deleted network")
    assert state.read_host_networks(cluster.stores["h2"], LAYOUTS["vxlan"], "h2") == {}


def test_a_swarm_network_is_each_hosts_own_copy_and_one_host_deleting_it_leaves_the_others(cluster):
    """Every swarm node creates its copy of a swarm network and deletes it when its last task leaves:
    the others keep theirs (and their endpoints), and no cluster-wide record is made or cleared."""
    h1, h2 = cluster.start("h1", cluster_wide=True), cluster.start("h2", cluster_wide=True)
    for agent in (h1, h2):
        agent.add_network(SegmentNetwork(NETWORK_ID, VNI, SUBNET, None, None, 1450, swarm=True))
    assert state.read_global_network(cluster.stores["h1"], LAYOUTS["vxlan"], NETWORK_ID) is None
    first = endpoint(1)
    h1.add_endpoint(first)
    h2.add_endpoint(endpoint(2))  # a host hears of a segment's records once it has an endpoint there
    remote = f"remote segment={VNI} ip=10.42.0.1 mac={first.mac} host=h1 vtep=192.0.2.1"
    wait_for(lambda: remote in cluster.switches["h2"].flows, what="h1's endpoint in h2's table")

    h2.remove_endpoint(endpoint(2).endpoint_id)  # its last task left
    h2.remove_network(NETWORK_ID)
    h1.wake()
    time.sleep(0.5)
    assert NETWORK_ID in h1.networks and first.endpoint_id in h1.endpoints
    assert f"local segment={VNI} ip=10.42.0.1 mac={first.mac} port={first.host_port}" in cluster.switches["h1"].flows
    assert state.read_host_networks(cluster.stores["h1"], LAYOUTS["vxlan"], "h1")[NETWORK_ID].swarm


def remote_lines(switch: RecordedSwitch) -> list[str]:
    return [f for f in switch.flows if f.startswith("remote")]


def test_a_host_without_endpoints_on_a_segment_hears_nothing_of_it_and_catches_up_at_its_first(cluster):
    h1, h2 = cluster.start("h1"), cluster.start("h2", watch_linger=0.3)
    add_network(h1)
    add_network(h2)  # the network exists on h2, but no container of h2 is on it
    installs = cluster.switches["h2"].installs
    h1.add_endpoint(endpoint(1))
    h1.add_endpoint(endpoint(2))
    time.sleep(1.0)  # several of the embedded store's watch polls
    assert h2.remote.watched == set() and remote_lines(cluster.switches["h2"]) == []
    assert cluster.switches["h2"].installs == installs and cluster.switches["h2"].changes == 0, "h2 was told"

    h2.add_endpoint(endpoint(3))  # its first endpoint there: the records already there are in its flows at once
    assert remote_lines(cluster.switches["h2"]) == [f"remote segment={VNI} ip=10.42.0.{n} mac={endpoint(n).mac} host=h1 "
                                                    f"vtep=192.0.2.1" for n in (1, 2)]
    h1.add_endpoint(endpoint(4))
    wait_for(lambda: len(remote_lines(cluster.switches["h2"])) == 3, what="h1's next endpoint on h2")

    h2.remove_endpoint(endpoint(3).endpoint_id)  # its last: the segment's flows and watch go after the linger
    wait_for(lambda: h2.remote.watched == set() and remote_lines(cluster.switches["h2"]) == [], what="the watch ended")
    installs = cluster.switches["h2"].installs
    h1.add_endpoint(endpoint(5))
    time.sleep(1.0)
    assert cluster.switches["h2"].installs == installs and remote_lines(cluster.switches["h2"]) == []


def test_an_endpoint_here_or_on_another_host_changes_only_its_own_flows_and_the_table_stays_the_whole_one(embedded_url):
    cluster = Cluster(embedded_url, parts=VXLAN_TABLE_PARTS)
    try:
        h1, h2 = cluster.start("h1"), cluster.start("h2")
        add_network(h1)
        add_network(h2)
        h2.add_endpoint(endpoint(9))
        switch = cluster.switches["h2"]
        installs = switch.installs
        for n in (1, 2, 3):
            h1.add_endpoint(endpoint(n))
        h1.remove_endpoint(endpoint(2).endpoint_id)
        h2.add_endpoint(endpoint(8))  # h2's own second endpoint: its own flows change, not the whole table
        wanted = {f"arp_tpa=10.42.0.{n}," for n in (1, 3)}
        wait_for(lambda: {w for w in wanted for f in switch.flows if w in f} == wanted
                 and not any("arp_tpa=10.42.0.2," in f for f in switch.flows), what="h1's endpoints on h2")
        h2.reconcile()  # the periodic check, the flows intact: this host's own flows again, not every record's
        assert switch.installs == installs and switch.changes >= 2, "each endpoint changed its flows, not the whole table"
        with h2.lock:
            assert sorted(switch.flows) == sorted(vxlan_table(h2.view()))
    finally:
        cluster.close()


def watched_paths(store) -> list[str]:
    """Spy on a real store: the paths it is asked to watch the children of, from now on, either way
    (names whole, or each one made or deleted: a store may do the second through the first)."""
    paths, in_leaves = [], threading.local()
    watch_children, watch_leaves = store.watch_children, store.watch_leaves

    def spied_children(path, callback):
        if not getattr(in_leaves, "path", None):
            paths.append(path)
        return watch_children(path, callback)

    def spied_leaves(path, callback):
        paths.append(path)
        in_leaves.path = path
        try:
            return watch_leaves(path, callback)
        finally:
            in_leaves.path = None

    store.watch_children, store.watch_leaves = spied_children, spied_leaves
    return paths


def test_an_agent_follows_every_other_hosts_liveness_with_one_watch(cluster):
    """One children watch on the sessions list, however many hosts have records on its segments (one per
    peer host was N^2 watches over a cluster); a dead peer's routes still go and come back with it."""
    h0 = cluster.start("h0")
    add_network(h0)
    peers = [f"h{n}" for n in range(1, 6)]
    for n, host in enumerate(peers, start=1):
        agent = cluster.start(host)
        add_network(agent)
        agent.add_endpoint(endpoint(n))
    paths = watched_paths(cluster.stores["h0"])
    h0.add_endpoint(endpoint(9))
    wait_for(lambda: len(remote_lines(cluster.switches["h0"])) == len(peers), what="every peer's route on h0")
    assert paths.count(LIVE) == 1
    assert not any(path == HostSessions.key(host) for path in paths for host in peers), paths

    cluster.stop("h3")
    wait_for(lambda: len(remote_lines(cluster.switches["h0"])) == len(peers) - 1, what="h3's route withdrawn")
    assert not any("host=h3" in line for line in remote_lines(cluster.switches["h0"]))
    cluster.start("h3")
    wait_for(lambda: len(remote_lines(cluster.switches["h0"])) == len(peers), what="h3's route back")
    assert paths.count(LIVE) == 1  # still the one watch: h3 came back through it
    assert not any(path == HostSessions.key(host) for path in paths for host in peers), paths


def start_earlier_version(cluster: Cluster, host: str) -> SegmentAgent:
    """A host whose plugin is of a version before the sessions list: its registration wrote only the
    per-host session node (what `register_host` wrote then), the rest of the agent is the same."""
    store = open_store(cluster.url, timeout=5.0)
    HostRecord.write(store, host, {"host_id": host})
    assert HostSessions.write(store, host, HostSessions.name(cluster.driver, 1))
    switch = cluster.switches.setdefault(host, RecordedSwitch())
    agent = SegmentAgent(store, RecordingDatapath(cluster.driver, switch, vtep="192.0.2.99", host_mac="02:00:00:00:01:99"),
                         host, resync_seconds=30.0)
    agent.start()
    cluster.agents[host], cluster.stores[host] = agent, store
    return agent


def test_during_a_rolling_upgrade_a_host_of_the_earlier_version_is_seen_alive_and_dead(cluster):
    """A host still on the per-host layout: its routes are in an upgraded host's table while it lives,
    withdrawn when it dies, and back when it returns: through a watch of its own if it was alive when
    first seen, through the periodic reconcile if it was dead then (a dead host is read, not watched)."""
    new = cluster.start("new")
    add_network(new)
    new.add_endpoint(endpoint(9))
    old = start_earlier_version(cluster, "old")
    add_network(old)
    old.add_endpoint(endpoint(1))
    route = "remote segment=4242 ip=10.42.0.1"

    def routed(host: str) -> bool:
        return any(f.startswith(route) for f in cluster.switches[host].flows)

    wait_for(lambda: routed("new"), what="old's route on new")
    cluster.stop("old")
    wait_for(lambda: not routed("new"), what="old's route withdrawn")
    start_earlier_version(cluster, "old")
    wait_for(lambda: routed("new"), what="old's route back on new")

    cluster.stop("old")
    late = cluster.start("late")  # first sees old dead
    add_network(late)
    late.add_endpoint(endpoint(8))
    wait_for(lambda: any("ip=10.42.0.9" in f for f in remote_lines(cluster.switches["late"])), what="new's route on late")
    assert not routed("late")
    start_earlier_version(cluster, "old")
    late.reconcile()
    wait_for(lambda: routed("late"), what="old's route back on late")


def test_a_segment_whose_watch_could_not_be_set_is_watched_at_the_next_try_store_failure_faked(embedded_url):
    """The store's watch call fails once (faked: a wrapper raises instead of asking the embedded store):
    the segment is not taken as followed, so the next pass sets its watch and hears its changes; marked
    first, it stayed unwatched for good."""
    from acsnet.errors import StoreUnavailable
    from acsnet.plugins.segments.watch import RemoteRecords

    store = open_store(embedded_url, timeout=5.0)
    real_watch, calls, woken = store.watch_children, [], []

    def failing_once(path, callback):
        calls.append(path)
        if len(calls) == 1:
            raise StoreUnavailable("the store did not answer (faked)")
        return real_watch(path, callback)

    store.watch_children = failing_once
    try:
        remote = RemoteRecords(store, LAYOUTS["vxlan"], "h1", withdraw_dead_hosts=False, wake=lambda: woken.append(1))
        with pytest.raises(StoreUnavailable):
            remote.watch(7, collect_arrivals=False)
        assert 7 not in remote.watched
        remote.watch(7, collect_arrivals=False)
        assert 7 in remote.watched and len(calls) == 2
    finally:
        store.close()


def test_hosts_followed_for_their_liveness_alone_move_its_epoch_and_none_of_their_records(embedded_url):
    """The vpc driver follows its peers' liveness (`follow_hosts`), records or not: a peer's last session
    ending moves `liveness_epoch`, so the driver reads its host subnets again; with records kept in the
    flows whatever their host (`withdraw_dead_hosts` off, as vpc's), nothing goes into the change."""
    from acsnet.plugins.segments.datapath import RemoteChange
    from acsnet.plugins.segments.model import SegmentRecord
    from acsnet.plugins.segments.watch import RemoteRecords

    layout = LAYOUTS["vpc"]
    watcher, peer = open_store(embedded_url, timeout=5.0), open_store(embedded_url, timeout=5.0)
    peer.register_host("h2", "vpc", {"host_id": "h2"})
    state.prepare_segment(peer, layout, VNI)
    record = SegmentRecord("h2", "02:00:00:00:00:02", "192.0.2.12", "10.42.0.2", "02:42:0a:2a:00:02", "02" * 32)
    assert peer.commit([state.segment_record_operation(layout, VNI, record)])
    woken = []
    try:
        remote = RemoteRecords(watcher, layout, "h1", withdraw_dead_hosts=False, wake=lambda: woken.append(1))
        remote.watch(VNI, collect_arrivals=False)
        assert remote.records(VNI) == (record,) and remote.take_change().added == ((VNI, record),)
        start = remote.liveness_epoch
        remote.follow_hosts({"h1", "h2"})
        assert remote.liveness_epoch == start + 1 and not remote.liveness_changed()
        followed = remote.liveness_epoch
        remote.follow_hosts({"h2"})
        assert remote.liveness_epoch == followed, "a host followed already moved the epoch"
        peer.close()
        wait_for(lambda: woken, what="the sessions list's watch waking the worker")
        wait_for(lambda: remote.liveness_changed() is False and remote.liveness_epoch > followed,
                 what="h2's end taken in")
        assert remote.take_change() == RemoteChange() and remote.records(VNI) == (record,)
    finally:
        watcher.close()
        peer.close()


def test_a_host_the_list_names_while_its_sessions_are_read_gets_no_watch_of_its_own(embedded_url):
    """A followed host not in the sessions list as its watch said is read in the per-host layout; one
    the list's watch named while that read went on is alive by the list, and is not watched on its
    own. It was, for the agent's life: 239 of 1,000 relayed simulated hosts' sessions watches."""
    from acsnet.plugins.segments.watch import RemoteRecords

    watcher, peer = open_store(embedded_url, timeout=5.0), open_store(embedded_url, timeout=5.0)
    try:
        remote = RemoteRecords(watcher, LAYOUTS["vxlan"], "h1", withdraw_dead_hosts=True, wake=lambda: None)
        remote.follow_hosts({"h3"})  # the list's watch is set
        peer.register_host("h2", "vxlan", {"host_id": "h2"})
        wait_for(lambda: "h2" in remote._listed, what="the list's watch naming h2")
        remote._check_unlisted(["h2"])  # as if the list had named h2 while this read its sessions
        assert HostSessions.key("h2") not in watcher.watched_paths(), watcher.watched_paths()
        assert remote._alive("h2")
    finally:
        watcher.close()
        peer.close()


def spares(switch: RecordedSwitch) -> set[str]:
    with switch.lock:
        return {name for name, ids in switch.ports.items() if ids.get(SPARE)}


def test_an_endpoint_takes_a_spare_pair_made_ahead_and_a_new_one_is_made_after_it(cluster):
    h1 = cluster.start("h1", spare_pairs=2)
    switch = cluster.switches["h1"]
    wait_for(lambda: len(spares(switch)) == 2, what="two spares on the bridge")
    ready = spares(switch)
    assert all(switch.options[name] == {} for name in ready)  # vxlan: no tag
    add_network(h1)
    plugged = []
    real_plug = h1.datapath.bridge.plug
    h1.datapath.bridge.plug = lambda *args, **kwargs: plugged.append(args) or real_plug(*args, **kwargs)
    h1.add_endpoint(endpoint(1))
    assert plugged == [], "a port was made on the request path"
    stored = h1.endpoint(endpoint(1).endpoint_id)
    assert stored.host_port in ready and stored.container_port == "vc" + stored.host_port[2:]
    assert switch.ports[stored.host_port] == {ENDPOINT_ID: stored.endpoint_id, DRIVER_ID: "vxlan", "acsnet-network": NETWORK_ID,
                                              "acsnet-ip": stored.ip, "attached-mac": stored.mac}  # the spare's label gone
    assert f"local segment={VNI} ip=10.42.0.1 mac={stored.mac} port={stored.host_port}" in switch.flows
    # the store holds the pair's name (a restart and the audit find the port by it)
    assert state.read_host_endpoints(cluster.stores["h1"], LAYOUTS["vxlan"], "h1")[stored.endpoint_id].host_port == stored.host_port
    wait_for(lambda: len(spares(switch)) == 2, what="the spare taken made again")
    assert len(spares(switch) - ready) == 1
    h1.remove_endpoint(stored.endpoint_id)
    wait_for(lambda: stored.host_port not in switch.ports and stored.container_port not in switch.links, what="its port retired")


def start_with_one_spare(made: Cluster) -> tuple[SegmentAgent, RecordedSwitch, str]:
    """h1 of the cluster, keeping one spare pair, once it is made: the agent, its switch, the spare's port."""
    h1 = made.start("h1", spare_pairs=1)
    switch = made.switches["h1"]
    wait_for(lambda: len(spares(switch)) == 1, what="a spare on the bridge")
    (spare,) = spares(switch)
    return h1, switch, spare


def test_a_vlan_spare_has_a_tag_no_traffic_has_and_keeps_it_when_an_endpoint_takes_it__recording_bridge(embedded_url):
    made = Cluster(embedded_url, driver="vlan")
    try:
        h1, switch, spare = start_with_one_spare(made)
        assert switch.options[spare] == {"tag": 4095}
        h1.add_network(SegmentNetwork(NETWORK_ID, 217, SUBNET, None, None, 1500))
        h1.add_endpoint(dataclasses.replace(endpoint(1), segment=217))
        assert h1.endpoint(endpoint(1).endpoint_id).host_port == spare and switch.options[spare] == {"tag": 4095}
    finally:
        made.close()


def test_a_spare_pairs_endpoint_gone_within_the_refill_delay_leaves_its_pair_as_the_spare__recording_bridge(embedded_url):
    """`docker run --rm` in a loop: each container takes the spare, and its pair, back on the host when
    the container is gone (the recording keeps both ends there throughout), becomes the spare again
    instead of leaving the bridge while a new pair is made: no port made or removed per container
    (each was an ovs-vswitchd reconfiguration). A pair kept beyond the spares wanted leaves as before."""
    from acsnet.plugins.segments.ports import REFILL_DELAY_SECONDS

    made = Cluster(embedded_url, driver="vlan")
    try:
        h1, switch, spare = start_with_one_spare(made)
        index = switch.links[spare]
        h1.add_network(SegmentNetwork(NETWORK_ID, 217, SUBNET, None, None, 1500))
        for number in (1, 2, 3):
            h1.add_endpoint(dataclasses.replace(endpoint(number), segment=217))
            assert h1.endpoint(endpoint(number).endpoint_id).host_port == spare, "the container did not take the spare"
            h1.remove_endpoint(endpoint(number).endpoint_id)
            wait_for(lambda: spares(switch) == {spare}, what="its pair a spare again")
            assert switch.options[spare] == {"tag": 4095} and switch.ports[spare] == {DRIVER_ID: "vlan", SPARE: "true"}
        time.sleep(REFILL_DELAY_SECONDS + 0.3)
        assert spares(switch) == {spare} and switch.links[spare] == index, "a pair was made or removed"

        # Two at once, one spare wanted: the first pair back is the spare, the other leaves the bridge.
        h1.add_endpoint(dataclasses.replace(endpoint(4), segment=217))
        h1.add_endpoint(dataclasses.replace(endpoint(5), segment=217))
        ports = {h1.endpoint(endpoint(n).endpoint_id).host_port for n in (4, 5)}
        h1.remove_endpoint(endpoint(4).endpoint_id)
        h1.remove_endpoint(endpoint(5).endpoint_id)
        wait_for(lambda: len(ports & set(switch.ports)) == 1 and len(spares(switch)) == 1, what="one spare kept, one port gone")
    finally:
        made.close()


def test_a_spare_is_fitted_with_the_offloads_the_bridge_wants_as_tso_goes_off_and_on_again__recording_bridge(embedded_url):
    """ovs-vswitchd restarted with its userspace TSO turned off: a spare made before keeps its veth's TX
    offloads, which the datapath now cannot complete (TCP would fail). The next container still takes it
    (taking a spare makes no system call) and its offloads are turned off as it is fitted; back on the
    host, it is a spare as it now is. With TSO on again, the same pair serves the next container with
    its offloads turned on again (without them, TCP at a fraction of the speed). The lab test is
    tests/test_vlan.py's, on OVS."""
    made = Cluster(embedded_url, driver="vlan")
    try:
        h1, switch, spare = start_with_one_spare(made)
        assert not switch.offloads_off
        h1.add_network(SegmentNetwork(NETWORK_ID, 217, SUBNET, None, None, 1500))
        switch.tso = False
        h1.add_endpoint(dataclasses.replace(endpoint(1), segment=217))
        taken = h1.endpoint(endpoint(1).endpoint_id)
        assert taken.host_port == spare and {taken.host_port, taken.container_port} <= switch.offloads_off
        h1.remove_endpoint(endpoint(1).endpoint_id)
        wait_for(lambda: spares(switch) == {spare}, what="its pair a spare again")

        switch.tso = True
        h1.add_endpoint(dataclasses.replace(endpoint(2), segment=217))
        again = h1.endpoint(endpoint(2).endpoint_id)
        assert again.host_port == spare and not {again.host_port, again.container_port} & switch.offloads_off
        h1.remove_endpoint(endpoint(2).endpoint_id)
        wait_for(lambda: spares(switch) == {spare}, what="its pair a spare again, offloads and all")
    finally:
        made.close()


def test_a_restart_keeps_endpoints_on_spare_pairs_relabels_one_a_crash_left_unlabelled_and_replaces_the_spares(cluster):
    h1 = cluster.start("h1", spare_pairs=2)
    switch = cluster.switches["h1"]
    wait_for(lambda: len(spares(switch)) == 2, what="two spares on the bridge")
    add_network(h1)
    h1.add_endpoint(endpoint(1))
    h1.add_endpoint(endpoint(2))
    wait_for(lambda: len(spares(switch)) == 2, what="the spares made again")
    first, second = (h1.endpoint(endpoint(n).endpoint_id) for n in (1, 2))
    assert first.pair and second.pair
    flows, left = list(switch.flows), spares(switch)
    cluster.stop("h1")
    assert spares(switch) == set() and not left & set(switch.links), "a stopped plugin left its spares"
    # a crash just after the claim committed and before the port's labels were written
    switch.ports[second.host_port] = {DRIVER_ID: "vxlan", SPARE: "true"}

    h1 = cluster.start("h1", spare_pairs=2)
    assert set(h1.endpoints) == {first.endpoint_id, second.endpoint_id}
    assert switch.flows == flows
    assert switch.ports[second.host_port][ENDPOINT_ID] == second.endpoint_id and SPARE not in switch.ports[second.host_port]
    assert not left & set(switch.ports), "the previous process's spares stayed"
    wait_for(lambda: len(spares(switch)) == 2, what="new spares")


def test_a_spare_that_cannot_be_fitted_leaves_no_claim_behind_and_is_retired__failing_recording_bridge(cluster):
    from acsnet.errors import DatapathError

    h1 = cluster.start("h1", spare_pairs=1)
    switch = cluster.switches["h1"]
    wait_for(lambda: len(spares(switch)) == 1, what="a spare on the bridge")
    (spare,) = spares(switch)
    add_network(h1)

    def failing_fit(*args, **kwargs):
        raise DatapathError("ovsdb-server said no")

    h1.datapath.bridge.fit_spare = failing_fit
    with pytest.raises(DatapathError):
        h1.add_endpoint(endpoint(3))
    assert endpoint(3).endpoint_id not in h1.endpoints
    assert state.read_host_endpoints(cluster.stores["h1"], LAYOUTS["vxlan"], "h1") == {}
    assert state.read_segment_records(cluster.stores["h1"], LAYOUTS["vxlan"], VNI) == {}
    wait_for(lambda: spare not in switch.ports and "vc" + spare[2:] not in switch.links, what="the spare retired")


def test_the_periodic_check_leaves_a_spare_being_made_alone__slowed_recording_bridge(cluster):
    """The 30 s check surveys the bridge under the agent's lock while the retirer makes a spare outside
    it: a spare already on the bridge but not yet offered must not be taken for a port nobody owns."""
    h1 = cluster.start("h1", spare_pairs=1)
    switch = cluster.switches["h1"]
    wait_for(lambda: len(spares(switch)) == 1, what="a spare on the bridge")
    add_network(h1)
    real_make, on_bridge, go_on = h1.datapath.bridge.make_spare, threading.Event(), threading.Event()

    def slow_make(*args, **kwargs):
        real_make(*args, **kwargs)
        on_bridge.set()
        go_on.wait(5)

    h1.datapath.bridge.make_spare = slow_make
    h1.add_endpoint(endpoint(1))  # takes the spare; the retirer makes the next
    assert on_bridge.wait(5), "no spare made after one was taken"
    h1.reconcile()
    go_on.set()
    wait_for(lambda: h1.ports._spares, what="the spare offered")
    (made,) = spares(switch)
    h1.add_endpoint(endpoint(2))
    assert h1.endpoint(endpoint(2).endpoint_id).host_port == made and ENDPOINT_ID in switch.ports[made]


def test_a_pass_with_nothing_new_reads_nothing_and_keeps_the_sorted_records_until_a_change_or_a_death__store_reads_counted(embedded_url):
    """Every watch event wakes a pass over every followed segment: one whose watch said nothing new
    since is neither diffed nor read, and its sorted records are the ones kept. A new record, or a host
    found dead (its records removed as a change), changes them (at 1,000 hosts a segment holds 10,000 records: sorting them on each pass
    was the agent's largest cost in the scale simulation)."""
    from acsnet.plugins.segments.model import SegmentRecord
    from acsnet.plugins.segments.watch import RemoteRecords

    layout = LAYOUTS["vxlan"]
    writer, watcher, peer = (open_store(embedded_url, timeout=5.0) for _ in range(3))
    peer.register_host("h3", "vxlan", {"host_id": "h3"})
    reads = []
    real_get_many = watcher.get_many
    watcher.get_many = lambda paths: reads.append(len(paths)) or real_get_many(paths)
    state.prepare_segment(writer, layout, VNI)

    def add(number: int, host: str) -> None:
        record = SegmentRecord(host, "02:00:00:00:00:01", "192.0.2.9", f"10.42.0.{number}", f"02:42:0a:2a:00:{number:02x}", f"{number:02d}" * 32)
        assert writer.commit([state.segment_record_operation(layout, VNI, record)])

    try:
        add(3, "h3")
        add(2, "h3")
        remote = RemoteRecords(watcher, layout, "h1", withdraw_dead_hosts=True, wake=lambda: None)
        remote.watch(VNI, collect_arrivals=False)
        wait_for(lambda: remote.liveness_changed() or [r.ip for r in remote.records(VNI)] == ["10.42.0.2", "10.42.0.3"],
                 what="h3's records, h3 seen alive")
        first = remote.records(VNI)
        reads.clear()
        for _ in range(3):
            assert not remote.refresh_all(collect_arrivals=True)
        assert reads == [] and remote.records(VNI) is first

        add(4, "h3")
        wait_for(lambda: len(remote.names(VNI)) == 3, what="the watch's new list")
        assert remote.refresh_all(collect_arrivals=True) and reads == [1]  # the new record alone
        assert [r.ip for r in remote.records(VNI)] == ["10.42.0.2", "10.42.0.3", "10.42.0.4"]

        remote.take_change()  # programmed: the flows hold .2, .3 and .4
        add(5, "h3")
        wait_for(lambda: len(remote.names(VNI)) == 4, what="the watch's list with .5")
        assert remote.refresh_all(collect_arrivals=True)  # .5 is to be added at the next program
        peer.close()  # h3's plugin gone: its records leave the flows once the sessions list says so
        wait_for(remote.liveness_changed, what="h3's death taken in")
        assert remote.records(VNI) == ()
        change = remote.take_change()  # the death is a change of h3's records, not a whole table
        # .5 never reached the flows: it leaves the change rather than being added and removed in it
        assert change.added == () and sorted(r.ip for _, r in change.removed) == ["10.42.0.2", "10.42.0.3", "10.42.0.4"]
    finally:
        for store in (writer, watcher, peer):
            store.close()


def test_a_host_starting_or_stopping_is_taken_in_by_its_session_alone_on_zookeeper__names_and_hosts_counted(zk_url):
    """The sessions list's watch hands over the one session made or ended, and the liveness pass asks
    about that session's host alone: with 30 hosts followed, a host starting is one name taken in and
    no host asked (it has no records yet), a host stopping one name and one host, whose records alone
    leave the flows. The whole list is taken in once, at the start (at 1,000 hosts starting one after
    another, the whole list on every following host at each start was ~170 million names)."""
    from acsnet.plugins.segments.model import SegmentRecord
    from acsnet.plugins.segments.watch import RemoteRecords

    layout = LAYOUTS["vxlan"]
    watcher, writer = open_store(zk_url, timeout=5.0), open_store(zk_url, timeout=5.0)
    peers = {f"p{n}": open_store(zk_url, timeout=5.0) for n in range(30)}
    state.prepare_segment(writer, layout, VNI)

    def record(n: int) -> SegmentRecord:
        return SegmentRecord(f"p{n}", "02:00:00:00:00:01", f"192.0.2.{n + 1}", f"10.42.0.{n + 1}", "02:42:0a:2a:00:01", f"{n:064d}")

    try:
        for n, (host, store) in enumerate(peers.items()):
            store.register_host(host, "vxlan", {"host_id": host})
        assert writer.commit([state.segment_record_operation(layout, VNI, record(n)) for n in range(30)])
        remote = RemoteRecords(watcher, layout, "h1", withdraw_dead_hosts=True, wake=lambda: None)
        taken, asked = [], []
        real_take, real_alive = remote._listed.take, remote._alive
        remote._listed.take = lambda change: taken.append(
            len(change.names) if change.names is not None else len(change.made) + len(change.deleted)) or real_take(change)
        remote._alive = lambda host: asked.append(host) or real_alive(host)
        remote.watch(VNI, collect_arrivals=False)
        assert len(remote.records(VNI)) == 30 and taken == [30]  # the whole list once, at the start
        remote.liveness_changed()
        remote.take_change()
        taken.clear(), asked.clear()

        peers["p30"] = open_store(zk_url, timeout=5.0)
        peers["p30"].register_host("p30", "vxlan", {"host_id": "p30"})
        wait_for(lambda: taken == [1], what="the started host's session, alone")
        assert not remote.liveness_changed() and asked == []  # not followed: nothing of it is in the flows

        peers.pop("p7").close()
        wait_for(lambda: taken == [1, 1], what="the stopped host's session, alone")
        assert remote.liveness_changed() and asked == ["p7"]
        assert remote.take_change().removed == ((VNI, record(7)),) and len(remote.records(VNI)) == 29

        peers["p7"] = open_store(zk_url, timeout=5.0)
        peers["p7"].register_host("p7", "vxlan", {"host_id": "p7"})
        wait_for(lambda: taken == [1, 1, 1], what="the host back, alone")
        assert remote.liveness_changed() and asked == ["p7", "p7"]
        assert remote.take_change().added == ((VNI, record(7)),) and len(remote.records(VNI)) == 30
    finally:
        for store in (watcher, writer, *peers.values()):
            store.close()


def test_hosts_followed_that_are_not_alive_are_checked_in_one_batch_of_reads_on_zookeeper__requests_counted(zk_url):
    """30 hosts with records and no session (not started yet, or dead): their per-host sessions are read
    in one request when first seen and at each periodic recheck, not one request per host (~360 a host
    at 1,000 simulated hosts starting). One that comes back as an earlier version's plugin (per-host
    session only) is found by the recheck, and its records alone go into the flows."""
    from acsnet.plugins.segments.model import SegmentRecord
    from acsnet.plugins.segments.watch import RemoteRecords

    layout = LAYOUTS["vxlan"]
    watcher, writer = open_store(zk_url, timeout=5.0), open_store(zk_url, timeout=5.0)
    state.prepare_segment(writer, layout, VNI)

    def record(n: int) -> SegmentRecord:
        return SegmentRecord(f"d{n}", "02:00:00:00:00:01", f"192.0.2.{n + 1}", f"10.42.0.{n + 1}", "02:42:0a:2a:00:01", f"{n:064d}")

    try:
        assert writer.commit([state.segment_record_operation(layout, VNI, record(n)) for n in range(30)])
        remote = RemoteRecords(watcher, layout, "h1", withdraw_dead_hosts=True, wake=lambda: None)
        requests: list[str] = []
        watcher.observer = lambda operation, seconds: requests.append(operation)
        remote.watch(VNI, collect_arrivals=False)
        assert requests.count("children_many") == 1 and "children" not in requests, requests
        assert remote.records(VNI) == ()  # none alive: none in the flows

        requests.clear()
        remote.recheck_unlisted()
        assert requests == ["children_many"]

        HostRecord.write(writer, "d7", {"host_id": "d7"})  # d7 back, on a version before the sessions list
        assert HostSessions.write(writer, "d7", HostSessions.name("vxlan", 1))
        requests.clear()
        remote.recheck_unlisted()
        assert requests[0] == "children_many" and "children" not in requests[1:], requests  # d7's watch is set
        assert remote.liveness_changed() and remote.take_change().added == ((VNI, record(7)),)
        assert remote.records(VNI) == (record(7),)
    finally:
        watcher.close()
        writer.close()


def writer_and_follower(zk_url: str):
    """Two sessions on the ensemble, the writer's with the test's segment made: one writes records, the
    other follows them (a `RemoteRecords` of its own)."""
    writer, follower = open_store(zk_url, timeout=5.0), open_store(zk_url, timeout=5.0)
    state.prepare_segment(writer, LAYOUTS["vxlan"], VNI)
    return writer, follower


def h3_record(number: int):
    """The record of h3's endpoint `number` (up to 62,500 of them, each its own address)."""
    from acsnet.plugins.segments.model import SegmentRecord
    return SegmentRecord("h3", "02:00:00:00:00:01", "192.0.2.9", f"10.42.{number // 250}.{number % 250 + 1}",
                         "02:42:0a:2a:00:01", f"{number:064d}")


def test_a_record_made_or_deleted_in_a_large_segment_is_taken_in_by_its_name_alone_on_zookeeper__names_looked_at_counted(zk_url):
    """ZooKeeper's leaves watch names the one record made or deleted, and a pass looks at that name
    alone: neither the watch nor the pass goes through the segment's other 300 names (at 1,000 hosts,
    10,000 of them, on every host following it, at every change). The whole list is compared only when
    one is handed over: at the start."""
    from acsnet.plugins.segments.watch import RemoteRecords

    layout = LAYOUTS["vxlan"]
    writer, watcher = writer_and_follower(zk_url)
    record = h3_record

    try:
        assert writer.commit([state.segment_record_operation(layout, VNI, record(n)) for n in range(300)])
        remote = RemoteRecords(watcher, layout, "h1", withdraw_dead_hosts=False, wake=lambda: None)
        looked_at = []
        real_bring_in_line = remote._bring_in_line
        remote._bring_in_line = lambda number, cache, names, touched, *args, **kw: (
            looked_at.append((len(names), None if touched is None else len(touched)))
            or real_bring_in_line(number, cache, names, touched, *args, **kw))
        remote.watch(VNI, collect_arrivals=False)
        assert looked_at == [(300, None)] and len(remote.records(VNI)) == 300  # the whole list, at the start

        assert writer.commit([state.segment_record_operation(layout, VNI, record(300))])
        wait_for(lambda: len(remote.names(VNI)) == 301, what="the made record's name")
        assert remote.refresh_all(collect_arrivals=False) and looked_at[1:] == [(1, 1)]
        assert not remote.refresh_all(collect_arrivals=False) and len(looked_at) == 2  # nothing new: nothing looked at

        assert writer.delete(layout.record(VNI, record(7).ip, record(7).endpoint_id))
        wait_for(lambda: len(remote.names(VNI)) == 300, what="the deleted record's name gone")
        assert remote.refresh_all(collect_arrivals=False) and looked_at[2:] == [(0, 1)]  # gone: none there now, one touched
        ips = {r.ip for r in remote.records(VNI)}
        assert len(ips) == 300 and record(300).ip in ips and record(7).ip not in ips
        assert [r.ip for _, r in remote.take_change().removed] == [record(7).ip]
    finally:
        writer.close()
        watcher.close()


def test_a_segment_followed_through_a_session_expiry_holds_exactly_the_stores_records_after_on_zookeeper(zk_url):
    """The 1,000-host simulation's agents lost their sessions during the first load, and their tables had
    not converged when it ended. Here, at the size of a test: the follower's session expires (kazoo's own
    hook: the server still holds the old session until it times out) while records are made and deleted
    in its segment; once a new session is up, passes bring its cache to exactly the store's records."""
    from kazoo.protocol.connection import _SESSION_EXPIRED

    from acsnet.plugins.segments.watch import RemoteRecords

    layout = LAYOUTS["vxlan"]
    writer, watcher = writer_and_follower(zk_url)
    record = h3_record

    def in_store() -> set[str]:
        return {r.ip for r in state.read_segment_records_named(
            writer, layout, VNI, state.segment_record_names(writer, layout, VNI)).values()}

    try:
        assert writer.commit([state.segment_record_operation(layout, VNI, record(n)) for n in range(40)])
        remote = RemoteRecords(watcher, layout, "h1", withdraw_dead_hosts=False, wake=lambda: None)
        remote.watch(VNI, collect_arrivals=False)
        assert {r.ip for r in remote.records(VNI)} == in_store()
        old_session = watcher._client.client_id[0]

        watcher._client._call(_SESSION_EXPIRED, None)
        for n in range(40, 80):  # made and deleted while the follower has no session, and as it comes back
            assert writer.commit([state.segment_record_operation(layout, VNI, record(n))])
            if n % 2:
                gone = record(n - 40)
                assert writer.delete(layout.record(VNI, gone.ip, gone.endpoint_id))
            with contextlib.suppress(Exception):  # a pass cut by the expiry is tried again at the next
                remote.refresh_all(collect_arrivals=False)
        wait_for(lambda: watcher.connected and watcher._client.client_id[0] != old_session, timeout=15,
                 what="the follower's new session")

        def caught_up() -> bool:
            with contextlib.suppress(Exception):
                remote.refresh_all(collect_arrivals=False)
            return {r.ip for r in remote.records(VNI)} == in_store()
        wait_for(caught_up, timeout=15, what="the follower's cache equal to the store's records")
        assert len(in_store()) == 60
        assert writer.commit([state.segment_record_operation(layout, VNI, record(100))])  # and it still follows
        wait_for(caught_up, timeout=5, what="a record made after the new session")
        assert record(100).ip in {r.ip for r in remote.records(VNI)}
    finally:
        writer.close()
        watcher.close()
