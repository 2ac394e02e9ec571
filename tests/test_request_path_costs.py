"""What a request on `docker run --rm`'s path costs besides its own work, measured where a slow moment
came from (issue 19, "Faster on one host"): the store round trips, forks and netlink dumps a handler
makes, and the moments other work lands in. Each test fakes (or counts) one layer and says so."""

from __future__ import annotations

import threading
import time

from acsnet.plugins.segments.model import SegmentEndpoint
from acsnet.plugins.segments.ports import EndpointPorts
from acsnet.plugins.segments.recording import RecordedSwitch, RecordingBridge
from tests.test_ipam_releases import until


def endpoint(n: int) -> SegmentEndpoint:
    return SegmentEndpoint(f"{n:02d}" + "e" * 62, "n" * 64, 217, f"198.51.100.{n}", 24, f"02:42:c6:33:64:{n:02x}", time.time())


def test_deleted_ports_leave_the_bridge_after_the_retire_delay_together_and_at_once_on_stop__recording_bridge_for_ovs():
    """Taking a port off a userspace-datapath bridge stalls the host's own packets for 10-15 ms; right
    after DeleteEndpoint dockerd releases the address, whose store round trips must not meet that."""
    switch = RecordedSwitch()
    bridge = RecordingBridge("ovsbr0", switch)
    detached: dict[str, float] = {}
    real_detach = bridge.detach

    def detach(port: str) -> None:
        detached[port] = time.monotonic()
        real_detach(port)

    bridge.detach = detach
    ports = EndpointPorts(bridge, "vlan", threading.RLock(), retire_delay=0.3)
    ports.start()
    first, second, third = endpoint(1), endpoint(2), endpoint(3)
    for e in (first, second, third):
        ports.attach(e, mtu=1500, create_veth=True)

    looked_up: list[str] = []
    real_index = bridge.port_index
    bridge.port_index = lambda port: looked_up.append(threading.current_thread().name) or real_index(port)
    ports.unplug(first)
    retired_at = time.monotonic()
    ports.remove_unplugged(now=False)
    assert looked_up == [], "DeleteEndpoint's thread read the veth's index (a netlink call)"
    time.sleep(0.1)
    assert first.host_port in switch.ports, "the port left at once, while dockerd releases its address"
    ports.unplug(second)
    ports.remove_unplugged(now=False)
    deadline = time.monotonic() + 3
    while len(detached) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.host_port not in switch.ports and second.host_port not in switch.ports
    assert detached[first.host_port] - retired_at >= 0.3
    assert abs(detached[second.host_port] - detached[first.host_port]) < 0.05, "not retired together"
    assert first.host_port not in switch.links and second.host_port not in switch.links, "veths left"

    ports.unplug(third)
    ports.remove_unplugged(now=False)
    stopping = time.monotonic()
    ports.stop()
    assert third.host_port not in switch.ports and detached[third.host_port] - stopping < 0.2


def test_a_container_again_on_a_segment_within_the_linger_costs_no_watch__store_calls_counted(embedded_url):
    """The real agent on the embedded store, `RecordingDatapath` for OVS; the store's calls are counted.
    A segment stays watched `watch_linger` after its last endpoint here, so `docker run --rm` in a loop
    pays the watch (its node made: a logged ZooKeeper write; names and records read) once."""
    from acsnet.plugins.segments.agent import SegmentAgent
    from acsnet.plugins.segments.model import SegmentNetwork
    from acsnet.plugins.segments.recording import RecordingDatapath
    from acsnet.store import open_store

    import netaddr

    store = open_store(embedded_url, timeout=5.0)
    store.register_host("h1", "vlan", {"host_id": "h1"})
    agent = SegmentAgent(store, RecordingDatapath("vlan", RecordedSwitch(), vtep="192.0.2.1", host_mac="02:00:00:00:01:01"),
                         "h1", watch_linger=0.5, spare_pairs=0)
    agent.start()
    try:
        agent.add_network(SegmentNetwork("n" * 64, 217, netaddr.IPNetwork("198.51.100.0/24"), None, None, 1500))
        agent.add_endpoint(endpoint(1))
        agent.remove_endpoint(endpoint(1).endpoint_id)
        calls: list[str] = []
        for name in ("create", "get", "get_many", "children", "commit", "watch_children", "watch_value"):
            def counted(*args, _call=getattr(store, name), _name=name, **kwargs):
                if threading.current_thread() is not agent.worker._thread:  # the request's, not the worker's
                    calls.append(_name)
                return _call(*args, **kwargs)
            setattr(store, name, counted)
        agent.add_endpoint(endpoint(2))
        assert calls == ["commit"], "the endpoint's claim (one commit: the followed segment's names are its watch's) and nothing else"
        agent.remove_endpoint(endpoint(2).endpoint_id)
        deadline = time.monotonic() + 5
        while agent.remote.watched and time.monotonic() < deadline:
            time.sleep(0.02)
        assert agent.remote.watched == set(), "the watch outlived the linger"
    finally:
        agent.stop()
        store.close()


def test_a_vxlan_endpoint_change_finds_no_routers_on_the_host__routers_dump_counted_recording_bridge_for_ovs(monkeypatch):
    """The vxlan datapath's change for one endpoint (CreateEndpoint, DeleteEndpoint) takes the routers it
    knows; the dump of every link for routers (5-7 ms on a lab host) is the whole program's. Fakes the
    host's links (the dump is counted) and OVS (a recording bridge); the datapath is made without its
    constructor, which would open OVSDB and read the uplink."""
    import types

    import netaddr

    from acsnet.ovsctl import router
    from acsnet.plugins.segments.datapath import HostView, RemoteChange
    from acsnet.plugins.segments.model import SegmentNetwork
    from acsnet.plugins.segments.table_parts import TableInParts
    from acsnet.plugins.vxlan.agent import VXLAN_TABLE_PARTS, VxlanOvsDatapath

    dumps = []
    monkeypatch.setattr(router, "routers", lambda: dumps.append(1) or {})
    datapath = VxlanOvsDatapath.__new__(VxlanOvsDatapath)
    datapath.bridge = RecordingBridge("acsvx0", RecordedSwitch())
    datapath._table, datapath._routers, datapath.publications = TableInParts(VXLAN_TABLE_PARTS), {}, {}
    datapath._nat_applied = ((), ())  # as after the first whole program of a host with no router
    datapath.agent = types.SimpleNamespace(ports=types.SimpleNamespace(attached=set()), endpoints={})
    network = SegmentNetwork("n" * 64, 330, netaddr.IPNetwork("100.64.30.0/24"), None, None, 1450)
    datapath.program(HostView("h1", (network,), (), ((330, ()),)))
    assert len(dumps) == 1, "the whole program looks for routers on the host"
    here = endpoint(2)
    assert datapath.program_change(RemoteChange(), HostView("h1", (network,), (here,), ()))
    assert datapath.program_change(RemoteChange(), HostView("h1", (network,), (), ()))
    assert len(dumps) == 1, "an endpoint's change dumped the host's links for routers"
    assert datapath.bridge.switch.changes == 2


def test_a_vpc_endpoint_program_reads_no_bridge_addresses_and_the_worker_checks_them__links_counted(monkeypatch):
    """The vpc datapath programs its whole flow table for an endpoint; the gateway addresses on the
    bridge are read (a netlink dump, 2 ms on a lab host) only when they change, and every
    GATEWAY_CHECK_SECONDS by the worker, which puts back one removed behind our back. Fakes the host's
    links (addresses recorded in memory) and OVS (a recording bridge); the datapath is made without its
    constructor, which would open OVSDB and read the uplink."""
    import contextlib
    import types

    from acsnet.ovsctl import links
    from acsnet.plugins.segments.datapath import HostView
    from acsnet.plugins.vpc import agent as vpc_agent
    from acsnet.plugins.vpc.agent import VpcOvsDatapath
    from acsnet.plugins.vpc.model import HostSubnet

    on_bridge: set[tuple[str, int]] = set()
    reads = []
    monkeypatch.setattr(links, "addresses", lambda name, ipv6=False: reads.append(name) or sorted(on_bridge))
    monkeypatch.setattr(links, "add_address", lambda name, address, prefixlen: on_bridge.add((address, prefixlen)))
    monkeypatch.setattr(links, "delete_address", lambda name, address, prefixlen: on_bridge.discard((address, prefixlen)))
    datapath = VpcOvsDatapath.__new__(VpcOvsDatapath)
    datapath.bridge = RecordingBridge("ovsbr0", RecordedSwitch())
    datapath.uplink, datapath.host_mac = "uplink0", "02:00:00:00:01:01"
    datapath.routes = types.SimpleNamespace(on_link=True)
    datapath._read_for, datapath._known_ranges, datapath._vpc_ranges = frozenset(), set(), ()
    datapath._own = (HostSubnet("h1", "100.74.0.0/16", "100.74.3.0/24", "192.0.2.11"),)
    datapath._peers = datapath._swarm_own = datapath._swarm_peers = ()
    datapath._gateway_addresses_set, datapath._gateway_checked = None, 0.0
    datapath._read_membership = lambda view: None  # the store's part, not what is counted here
    datapath._membership_moved, datapath._membership_epoch, datapath._membership_read_at = True, -1, 0.0
    datapath._to_release = set()
    datapath.agent = types.SimpleNamespace(wake=lambda: None, lock=contextlib.nullcontext(), sync=lambda: None,
                                           view=lambda remote=False: HostView("h1", (), (), ()),
                                           remote=types.SimpleNamespace(liveness_epoch=0))
    monkeypatch.setattr(VpcOvsDatapath, "_apply_routes", lambda self: None)
    datapath.program(HostView("h1", (), (), ()))
    assert reads == ["ovsbr0"] and on_bridge == {("100.74.3.1", 24)}
    datapath.program(HostView("h1", (), (endpoint(5),), ()))
    datapath.program(HostView("h1", (), (), ()))
    assert reads == ["ovsbr0"], "an endpoint's program read the bridge's addresses"

    on_bridge.clear()  # removed behind our back
    monkeypatch.setattr(vpc_agent, "GATEWAY_CHECK_SECONDS", 0.0)
    datapath.background(HostView("h1", (), (), ()))
    assert len(reads) == 2 and on_bridge == {("100.74.3.1", 24)}, "the worker's check did not put it back"


def _vlan_agent(url: str, host: str = "h1", spare_pairs: int = 0, clear_journal: str | None = None):
    from acsnet.plugins.segments.agent import SegmentAgent
    from acsnet.plugins.segments.model import SegmentNetwork
    from acsnet.plugins.segments.recording import RecordingDatapath
    from acsnet.store import open_store

    import netaddr

    store = open_store(url, timeout=5.0)
    store.register_host(host, "vlan", {"host_id": host})
    switch = RecordedSwitch()
    agent = SegmentAgent(store, RecordingDatapath("vlan", switch, vtep="192.0.2.1", host_mac="02:00:00:00:01:01"), host,
                         spare_pairs=spare_pairs,  # none by default: whether one is ready would depend on timing
                         clear_journal=clear_journal)
    agent.start()
    agent.add_network(SegmentNetwork("n" * 64, 217, netaddr.IPNetwork("198.51.100.0/24"), None, None, 1500))
    return agent, store, switch


def test_a_create_endpoints_claim_goes_beside_its_port_being_made__slowed_store_commit_and_recording_bridge(embedded_url):
    """The claim's store round trips and the veth and port (kernel, ovs-vswitchd) each took 4-10 ms of a
    CreateEndpoint on a lab host, one after the other. Here each is slowed to 1 s (the store's commit,
    and the recording bridge standing in for OVS): the request takes about one of them, not both."""
    agent, store, switch = _vlan_agent(embedded_url)
    try:
        real_commit, real_plug = store.commit, agent.datapath.bridge.plug

        def slow_commit(operations):
            time.sleep(1.0)
            return real_commit(operations)

        def slow_plug(*args, **kwargs):
            time.sleep(1.0)
            return real_plug(*args, **kwargs)

        store.commit, agent.datapath.bridge.plug = slow_commit, slow_plug
        started = time.monotonic()
        agent.add_endpoint(endpoint(7))
        took = time.monotonic() - started
        assert took < 1.6, f"the claim and the port one after the other: {took:.2f}s"
        from acsnet.plugins.segments import state
        from acsnet.plugins.segments.model import LAYOUTS
        assert endpoint(7).endpoint_id in state.read_host_endpoints(store, LAYOUTS["vlan"], "h1")
        assert endpoint(7).host_port in switch.ports
    finally:
        agent.stop()
        store.close()


def test_a_port_that_cannot_be_made_leaves_no_claim_behind__failing_recording_bridge(embedded_url):
    """The claim committed beside a port that failed: its records go again, and the request fails."""
    from acsnet.errors import DatapathError
    from acsnet.plugins.segments import state
    from acsnet.plugins.segments.model import LAYOUTS

    agent, store, switch = _vlan_agent(embedded_url)
    try:
        def failing_plug(*args, **kwargs):
            raise DatapathError("ovs-vswitchd said no")

        agent.datapath.bridge.plug = failing_plug
        try:
            agent.add_endpoint(endpoint(8))
            raise AssertionError("CreateEndpoint succeeded without its port")
        except DatapathError:
            pass
        assert state.read_host_endpoints(store, LAYOUTS["vlan"], "h1") == {}
        assert state.read_segment_records(store, LAYOUTS["vlan"], 217) == {}
        assert endpoint(8).endpoint_id not in agent.endpoints and endpoint(8).host_port not in switch.ports
    finally:
        agent.stop()
        store.close()


def test_a_release_reads_its_record_and_retention_in_one_batch__store_calls_counted(store_url):
    """ReleaseAddress read the address's record, then its retention, then committed: three round trips
    where two do (a batch of both reads, the commit). The real IPAM on both stores, its calls counted;
    a retained address is still kept for its application."""
    import netaddr

    from acsnet.ipam.driver import AcsnetIpam
    from acsnet.ipam.model import RETAINED, Retention
    from acsnet.ipam.state import AddressRecords, Retentions
    from acsnet.plugins.protocol import AddressRelease, AddressRequest, PoolRequest
    from acsnet.store import open_store

    store = open_store(store_url)
    store.register_host("h1", "ipam", {})
    try:
        ipam = AcsnetIpam(store, "h1")
        pool = ipam.request_pool(PoolRequest.from_json({"AddressSpace": "acsnet-local", "Pool": "10.77.0.0/24", "Options": {}}))
        mac = {"com.docker.network.endpoint.macaddress": "02:42:0a:4d:00:02"}
        grant = ipam.request_address(AddressRequest.from_json({"PoolID": pool.pool_id, "Address": "", "Options": mac}))
        address = str(grant.address)
        calls: list[str] = []
        inside: list[str] = []  # a call made by another (the embedded store's batch is its gets)
        for name in ("get", "get_many", "children", "commit", "compare_and_set", "create", "delete"):
            def counted(*args, _call=getattr(store, name), _name=name, **kwargs):
                if not inside:
                    calls.append(_name)
                inside.append(_name)
                try:
                    return _call(*args, **kwargs)
                finally:
                    inside.pop()
            setattr(store, name, counted)
        ipam.release_address(AddressRelease.from_json({"PoolID": pool.pool_id, "Address": address}))
        assert calls == ["get_many", "commit"]
        assert AddressRecords.read(store, pool.pool_id, address) is None

        kept = ipam.request_address(AddressRequest.from_json({"PoolID": pool.pool_id, "Address": address, "Options": mac}))
        network = netaddr.IPNetwork("10.77.0.0/24")
        Retentions.prepare(store, network)
        assert store.commit(Retentions.write_operations(store, network, address, Retention("web", 60)))
        ipam.release_address(AddressRelease.from_json({"PoolID": pool.pool_id, "Address": str(kept.address)}))
        assert AddressRecords.read(store, pool.pool_id, address).kind == RETAINED
    finally:
        store.close()


def test_a_delete_endpoint_answers_before_its_flows_change_and_its_port_leaves_after_it__slowed_flows_change_and_recording_bridge(embedded_url, tmp_path):
    """With its records' removal committed after the answer, the flows' change (ovs-ofctl, 4-6 ms on a
    lab host) was the whole of a DeleteEndpoint. Here the change is slowed to 1 s (the recording bridge
    standing in for OVS): the request answers at once, the worker makes the change, and the port leaves
    only after it: no flow may name a port that is gone (OVS may give its number to the next one)."""
    from acsnet.plugins.segments import state
    from acsnet.plugins.segments.model import LAYOUTS

    agent, store, switch = _vlan_agent(embedded_url, clear_journal=str(tmp_path / "vlan-clears.journal"))
    try:
        agent.add_endpoint(endpoint(4))
        bridge = agent.datapath.bridge
        changing = threading.Event()

        def slowly(call):
            def slowed(*args, **kwargs):
                changing.set()
                time.sleep(1.0)
                return call(*args, **kwargs)
            return slowed

        bridge.install_flows, bridge.change_flows = slowly(bridge.install_flows), slowly(bridge.change_flows)
        started = time.monotonic()
        agent.remove_endpoint(endpoint(4).endpoint_id)
        took = time.monotonic() - started
        assert took < 0.5, f"DeleteEndpoint waited for its flows' change: {took:.2f}s"
        assert changing.wait(1.0), "the worker did not start the flows' change"
        time.sleep(0.5)  # past the retire delay, the change still under way
        assert any("ip=198.51.100.4" in f for f in switch.flows) and endpoint(4).host_port in switch.ports, \
            "the port left while a flow named it"
        assert until(lambda: not any("ip=198.51.100.4" in f for f in switch.flows), timeout=5), "its flows stayed"
        assert until(lambda: endpoint(4).host_port not in switch.ports, timeout=5), "its port stayed"
        assert until(lambda: agent.clears_pending == 0, timeout=5)
        assert state.read_host_endpoints(store, LAYOUTS["vlan"], "h1") == {}
    finally:
        agent.stop()
        store.close()


def test_a_create_endpoint_undone_just_after_a_delete_takes_no_port_a_flow_still_names__failing_store_commit(embedded_url, tmp_path):
    """A CreateEndpoint whose claim fails removes the ports of forgotten endpoints: a DeleteEndpoint's just
    before, whose flows the worker had not changed yet, goes only after them."""
    import netaddr

    from acsnet.errors import StoreUnavailable
    from acsnet.plugins.segments.model import SegmentNetwork

    agent, store, switch = _vlan_agent(embedded_url, clear_journal=str(tmp_path / "vlan-clears.journal"))
    try:
        agent.add_network(SegmentNetwork("m" * 64, 218, netaddr.IPNetwork("203.0.113.0/24"), None, None, 1500))
        agent.add_endpoint(endpoint(4))
        agent.worker.stop()  # its pass would change the flows at once: here the create comes first
        assert until(lambda: not agent.worker._thread.is_alive(), timeout=5)  # (stop wakes it for a last pass)
        agent.remove_endpoint(endpoint(4).endpoint_id)
        assert any("ip=198.51.100.4" in f for f in switch.flows)

        def unavailable(*args, **kwargs):
            raise StoreUnavailable("the store did not answer")

        store.commit = unavailable
        other = SegmentEndpoint("77" + "e" * 62, "m" * 64, 218, "203.0.113.7", 24, "02:42:cb:00:71:07", time.time())
        try:
            agent.add_endpoint(other)  # a segment not followed here: its claim is waited for before any flow
            raise AssertionError("CreateEndpoint succeeded without its claim")
        except StoreUnavailable:
            pass
        named = any("ip=198.51.100.4" in f for f in switch.flows)
        assert not named or endpoint(4).host_port in switch.ports, "a flow names a port that is gone"
        assert not named, "the undo left the deleted endpoint's flows"
    finally:
        agent.stop()
        store.close()


def test_a_delete_endpoint_whose_commit_fails_keeps_the_endpoint_its_flows_and_port__failing_store_commit(embedded_url):
    from acsnet.errors import StoreUnavailable

    agent, store, switch = _vlan_agent(embedded_url)
    try:
        agent.add_endpoint(endpoint(6))

        def unavailable(*args, **kwargs):
            raise StoreUnavailable("the store did not answer")

        store.commit = store.delete = unavailable
        try:
            agent.remove_endpoint(endpoint(6).endpoint_id)
            raise AssertionError("DeleteEndpoint succeeded without its records cleared")
        except StoreUnavailable:
            pass
        assert endpoint(6).endpoint_id in agent.endpoints, "a retried DeleteEndpoint would find nothing"
        assert any("ip=198.51.100.6" in f for f in switch.flows) and endpoint(6).host_port in switch.ports
        time.sleep(0.3)  # past the retire delay: the port stays
        assert endpoint(6).host_port in switch.ports
    finally:
        agent.stop()
        store.close()


def test_the_bridges_tso_state_is_read_once_per_ovs_vswitchd_start_and_by_the_worker__links_counted_pid_file_faked(monkeypatch, tmp_path):
    """The TSO read is an ioctl served under the kernel's rtnl lock, which kept a CreateEndpoint after an
    overlay container waiting 6-9 ms while dockerd started the next one. A request reads ovs-vswitchd's
    pid file only, and reads the bridge's port again when the pid changed (a restart: TSO may have gone
    on or off); the worker's `read_offloads` reads it whenever it asks. The links layer is counted and
    answers as told; the pid file is a file the test writes, beside a made-up OVSDB socket."""
    from acsnet.ovsctl import links
    from acsnet.ovsctl.ovsdb import Ovsdb
    from acsnet.plugins.segments.bridge import OvsBridge

    reads, tso = [], {"ovsbr0": True}
    monkeypatch.setattr(links, "segmentation_offload", lambda name: reads.append(name) or tso[name])
    pid_file = tmp_path / "ovs-vswitchd.pid"
    pid_file.write_text("100\n")
    bridge = OvsBridge(Ovsdb(f"unix:{tmp_path}/db.sock"), "ovsbr0", "0xac5", userspace_datapath=True)

    assert [bridge.veth_offloads for _ in range(3)] == [True, True, True] and len(reads) == 1
    tso["ovsbr0"] = False  # host-setup --no-userspace-tso: the port's off before the restart
    assert bridge.veth_offloads is True and len(reads) == 1, "read again on a request"
    assert bridge.read_offloads() is False and bridge.veth_offloads is False and len(reads) == 2
    tso["ovsbr0"] = True
    pid_file.write_text("200\n")  # restarted with TSO
    assert bridge.veth_offloads is True and bridge.veth_offloads is True and len(reads) == 3
    pid_file.unlink()  # not known: read every time, as before
    assert bridge.veth_offloads is True and bridge.veth_offloads is True and len(reads) == 5
