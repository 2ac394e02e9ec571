"""IPv6 dual-stack end to end in the lab (real dockerd, OVS with its userspace VXLAN tunnels over the
IPv4 underlay, ZooKeeper): vxlan networks carry one IPv4 and one IPv6 subnet, containers on two hosts
reach each other by their `--ip6`, neighbour solicitations are answered by flows from the records,
overlapping IPv6 subnets stay isolated by VNI; and what is refused, is refused clearly with nothing
stored. The addresses are 2001:db8::/32 (documentation)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import sys
import time
import uuid

import netaddr
import pytest

from acsnet.errors import InvalidRequest
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.topology import SWITCH_BRIDGE, UPLINK, Lab
from acsnet.plugins.protocol import NetworkCreate
from acsnet.plugins.segments.driver import network_subnets
from acsnet.plugins.segments.model import SegmentEndpoint, SegmentNetwork, SegmentRecord
from acsnet.plugins.vpc.options import parse_vpc_options
from tests.test_vlan import QUICK, assert_switch_saw_only_hosts, host_mac, remove
from tests.test_vxlan import VTEPS, outside_get, tunnel_flows

SUBNET, SUBNET6 = "100.64.6.0/24", "2001:db8:6::/64"
GATEWAY6 = "2001:db8:6::1"


def create_dual_stack(lab: Lab, name: str, vni: int, hosts=("h1", "h2"), *extra: str) -> None:
    for host in hosts:
        lab.docker(host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--ipv6",
                   "--subnet", SUBNET, "--subnet", SUBNET6, "--ipam-opt", f"vni={vni}", "-o", f"VxlanId={vni}",
                   *extra, name)


def create_vlan217_dual_stack(lab: Lab, name: str, hosts=("h1", "h2")) -> None:
    """VLAN 217 dual-stack, its router (the lab's gw) at .1 and ::1 of each subnet."""
    for host in hosts:
        lab.docker(host, "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--ipv6",
                   "--subnet", "198.51.100.0/24", "--gateway", "198.51.100.1",
                   "--subnet", "2001:db8:217::/64", "--gateway", "2001:db8:217::1", "-o", "VlanId=217", name)


def serve(lab: Lab, host: str, name: str, network: str, ip: str, ip6: str) -> None:
    """A container whose web page is its own name, so a reply says who answered."""
    script = f"mkdir /www && echo {name} > /www/index.html && exec httpd -f -p 80 -h /www"
    lab.docker(host, "run", "-d", *QUICK, "--net", network, "--ip", ip, "--ip6", ip6, "--name", name, IMAGE,
               "sh", "-c", script)


def pings6(lab: Lab, host: str, container: str, address: str, wait: float = 10.0) -> bool:
    deadline = time.monotonic() + wait
    while True:
        if lab.docker(host, "exec", container, "ping", "-6", "-c", "1", "-W", "1", address, check=False).returncode == 0:
            return True
        if time.monotonic() > deadline:
            return False


def fetch6(lab: Lab, host: str, container: str, address: str) -> str:
    result = lab.docker(host, "exec", container, "timeout", "5", "wget", "-q", "-O", "-", f"http://[{address}]/", check=False)
    return result.stdout.strip()


def neighbour(lab: Lab, host: str, container: str, address: str) -> str:
    return lab.docker(host, "exec", container, "ip", "-6", "neigh", "show", address).stdout.strip()


def mac_of(lab: Lab, host: str, container: str) -> str:
    return lab.docker(host, "exec", container, "cat", "/sys/class/net/eth0/address").stdout.strip()


def packets_on(lab: Lab, host: str, bridge: str, match: str) -> int:
    """The packets the bridge's flows of `match` counted, summed."""
    out = lab.node(host).run(["ovs-ofctl", "dump-flows", bridge, match]).stdout
    return sum(int(n) for n in re.findall(r"n_packets=(\d+)", out))


def packets(lab: Lab, host: str, match: str) -> int:
    """The packets the vxlan bridge's flows of `match` (e.g. "table=40") counted, summed."""
    return packets_on(lab, host, "acsvx0", f"cookie=0xac6/-1,{match}")


def test_dual_stack_containers_reach_each_other_by_ipv6_across_hosts_and_networks_stay_isolated(lab):
    tag = uuid.uuid4().hex[:4]
    a, b = f"v6a-{tag}", f"v6b-{tag}"
    names = {"h1": [f"a1-{tag}", f"b2-{tag}"], "h2": [f"a2-{tag}", f"a3-{tag}", f"b1-{tag}"]}
    try:
        create_dual_stack(lab, a, 160)
        create_dual_stack(lab, b, 170)  # the same subnets on another VNI: allowed, isolated
        serve(lab, "h1", f"a1-{tag}", a, "100.64.6.10", "2001:db8:6::10")
        serve(lab, "h2", f"a2-{tag}", a, "100.64.6.11", "2001:db8:6::11")
        serve(lab, "h2", f"a3-{tag}", a, "100.64.6.12", "2001:db8:6::12")
        serve(lab, "h2", f"b1-{tag}", b, "100.64.6.10", "2001:db8:6::10")
        serve(lab, "h1", f"b2-{tag}", b, "100.64.6.11", "2001:db8:6::11")
        inspected = json.loads(lab.docker("h1", "inspect", f"a1-{tag}").stdout)[0]["NetworkSettings"]["Networks"][a]
        assert inspected["GlobalIPv6Address"] == "2001:db8:6::10" and inspected["IPv6Gateway"] == GATEWAY6, inspected

        # Across hosts by IPv6, each network reaching its own container of an address both use.
        assert pings6(lab, "h1", f"a1-{tag}", "2001:db8:6::11")
        assert fetch6(lab, "h1", f"a1-{tag}", "2001:db8:6::11") == f"a2-{tag}"
        assert fetch6(lab, "h2", f"a2-{tag}", "2001:db8:6::10") == f"a1-{tag}"
        assert fetch6(lab, "h2", f"b1-{tag}", "2001:db8:6::11") == f"b2-{tag}"
        assert fetch6(lab, "h1", f"b2-{tag}", "2001:db8:6::10") == f"b1-{tag}"
        assert fetch6(lab, "h2", f"a2-{tag}", "2001:db8:6::12") == f"a3-{tag}"  # same host
        assert not pings6(lab, "h1", f"b2-{tag}", "2001:db8:6::12", wait=2)  # network a's only
        # IPv4 still works beside it.
        assert lab.docker("h1", "exec", f"a1-{tag}", "ping", "-c", "1", "-W", "2", "100.64.6.11", check=False).returncode == 0
        # The gateway (the network's router on this host) answers IPv6, and is known as a router.
        assert pings6(lab, "h1", f"a1-{tag}", GATEWAY6)
        assert "router" in neighbour(lab, "h1", f"a1-{tag}", GATEWAY6)

        # The neighbour entries hold the MACs the records name, and the flows gave them: the
        # solicitations went to the responder (table 40) and answers were finished (table 45).
        assert f"lladdr {mac_of(lab, 'h2', f'a2-{tag}')}" in neighbour(lab, "h1", f"a1-{tag}", "2001:db8:6::11")
        assert f"lladdr {mac_of(lab, 'h1', f'b2-{tag}')}" in neighbour(lab, "h2", f"b1-{tag}", "2001:db8:6::11")
        assert packets(lab, "h1", "table=40,icmp6,icmp_type=135,nd_target=2001:db8:6::11") > 0
        assert packets(lab, "h1", "table=45") > 0
        # None flooded: no flow outputs to more than one port, and a solicitation for an address no
        # record names is dropped unanswered.
        flows = tunnel_flows(lab, "h1")
        assert not any("FLOOD" in f or "ALL" in f or "NORMAL" in f for f in flows)
        answered = [f for f in flows if "table=40" in f and "nd_target=" in f]
        assert len(answered) == (3 + 1) + (2 + 1), answered  # per VNI: its containers and the gateway
        assert not pings6(lab, "h1", f"a1-{tag}", "2001:db8:6::99", wait=1)
        assert "lladdr" not in neighbour(lab, "h1", f"a1-{tag}", "2001:db8:6::99")
    finally:
        remove(lab, names, [a, b])
    for host in ("h1", "h2"):
        assert [f for f in tunnel_flows(lab, host) if "nd_target=" in f] == []


def test_an_ip6_pin_held_on_another_host_is_refused_and_free_again_after(lab):
    """--ip6 pins an address as --ip does: one holder in the cluster; free again once its container is gone."""
    tag = uuid.uuid4().hex[:4]
    network = f"v6p-{tag}"
    names = {"h1": [f"p1-{tag}"], "h2": [f"p2-{tag}", f"p3-{tag}"]}
    try:
        create_dual_stack(lab, network, 180)
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "--ip6", "2001:db8:6::20", "--name", f"p1-{tag}",
                   IMAGE, "sleep", "600")
        taken = lab.docker("h2", "run", "-d", *QUICK, "--net", network, "--ip6", "2001:db8:6::20", "--name",
                           f"p2-{tag}", IMAGE, "sleep", "600", check=False)
        assert taken.returncode != 0 and "2001:db8:6::20 is in use by an endpoint on host" in taken.stderr, taken.stderr
        lab.docker("h2", "rm", "-f", f"p2-{tag}", check=False)
        lab.docker("h1", "rm", "-f", f"p1-{tag}")
        lab.docker("h2", "run", "-d", *QUICK, "--net", network, "--ip6", "2001:db8:6::20", "--name", f"p3-{tag}",
                   IMAGE, "sleep", "600")
        assert "2001:db8:6::20" in lab.docker("h2", "exec", f"p3-{tag}", "ip", "-6", "addr", "show", "eth0").stdout
    finally:
        remove(lab, names, [network])


def test_a_recreated_container_is_reached_by_its_ip6_at_once_on_its_peers_host_and_on_another(lab):
    """As tests/test_vxlan.py's IPv4 twin: a container made again with its addresses (a new MAC) is
    announced to its peers by an unsolicited neighbour advertisement, so their IPv6 neighbour entry
    follows at once rather than keeping the old MAC (whose frames match no flow) until it expires."""
    tag = uuid.uuid4().hex[:4]
    network = f"v6m-{tag}"
    names = {"h1": [f"c1-{tag}", f"c1c-{tag}"], "h2": [f"c2-{tag}", f"c1b-{tag}"]}
    try:
        create_dual_stack(lab, network, 200)
        serve(lab, "h1", f"c1-{tag}", network, "100.64.6.30", "2001:db8:6::30")
        serve(lab, "h2", f"c2-{tag}", network, "100.64.6.31", "2001:db8:6::31")
        macs, took = set(), []
        for old, (host, new) in ((f"c1-{tag}", ("h2", f"c1b-{tag}")), (f"c1b-{tag}", ("h1", f"c1c-{tag}"))):
            old_host = "h1" if old in names["h1"] else "h2"
            assert fetch6(lab, "h2", f"c2-{tag}", "2001:db8:6::30") == old  # c2's neighbour entry: the old MAC
            macs.add(mac_of(lab, old_host, old))
            lab.docker(old_host, "rm", "-f", old)
            serve(lab, host, new, network, "100.64.6.30", "2001:db8:6::30")
            started = time.monotonic()
            while fetch6(lab, "h2", f"c2-{tag}", "2001:db8:6::30") != new:
                assert time.monotonic() - started < 8, f"c2 did not reach the container recreated on {host} within 8 s"
            took.append(time.monotonic() - started)
            macs.add(mac_of(lab, host, new))
        assert len(macs) == 3, f"the recreated containers kept one MAC, so this test shows nothing: {macs}"
        # Without the advertisement the old entry stays REACHABLE, then STALE, DELAY and PROBE: about 5 s at best.
        assert max(took) < 2, f"reached after {took} s"
    finally:
        remove(lab, names, [network])


def test_a_global_dual_stack_network_is_made_once_and_keeps_its_ipv6_across_a_plugin_restart(tmp_path):
    """Global scope (dockerd 20.10 with a cluster store): the network is created on h1 only; h2 takes it
    from the store with its IPv6 subnet and gateway, and a restarted plugin reads them back."""
    lab = Lab(str(tmp_path / "lab"), f"acsnet-6{uuid.uuid4().hex[:4]}")
    try:
        lab.up(hosts=2, scope="global")  # 20.10: Docker 23.0 and later have no cluster store
        lab.docker("h1", "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--ipv6", "--subnet", SUBNET,
                   "--subnet", SUBNET6, "-o", "VxlanId=220", "g6")
        serve(lab, "h1", "g1", "g6", "100.64.6.40", "2001:db8:6::40")
        serve(lab, "h2", "g2", "g6", "100.64.6.41", "2001:db8:6::41")
        assert fetch6(lab, "h1", "g1", "2001:db8:6::41") == "g2" and fetch6(lab, "h2", "g2", "2001:db8:6::40") == "g1"
        assert pings6(lab, "h2", "g2", GATEWAY6)  # h2's router, made from the network h1 stored
        lab.kill_plugin("h1", "vxlan")
        lab.start_plugin("h1", "vxlan")
        serve(lab, "h1", "g3", "g6", "100.64.6.42", "2001:db8:6::42")  # a new endpoint: the network as stored
        assert fetch6(lab, "h2", "g2", "2001:db8:6::42") == "g3"
        assert pings6(lab, "h1", "g3", GATEWAY6)
    finally:
        lab.down()
    assert lab.leftovers() == []


def test_vlan_dual_stack_answers_neighbours_by_flows_and_the_switch_sees_host_macs_only(lab):
    """A dual-stack VLAN: containers on two hosts reach each other and the VLAN's router by IPv6;
    solicitations from containers are answered by flows and never reach the switch; the switch learns
    only the hosts' and the router's MACs; and the router's neighbour entries for containers hold their
    hosts' MACs (the advertisements leave with the host's MAC in their option). The lab's router gets
    the VLAN's IPv6 gateway address for the test."""
    tag = uuid.uuid4().hex[:4]
    network = f"v217-{tag}"
    names = {"h1": [f"w1-{tag}", f"w3-{tag}"], "h2": [f"w2-{tag}"]}
    gw, sw = lab.node("gw"), lab.node("sw")
    router_mac = gw.run(["cat", "/sys/class/net/gw-v217/address"]).stdout.strip()
    host_macs = {h: lab.node(h).run(["cat", f"/sys/class/net/{UPLINK}/address"]).stdout.strip() for h in ("h1", "h2")}
    known = set(host_macs.values()) | {router_mac}
    counter = "cookie=0x7e56,priority=40,icmp6,icmp_type=135,actions=NORMAL"
    sw.run(["ovs-ofctl", "add-flows", SWITCH_BRIDGE, "-"], input=counter + "\n" + "\n".join(
        f"cookie=0x7e56,priority=50,icmp6,icmp_type=135,dl_src={mac},actions=NORMAL" for mac in known) + "\n")
    gw.run(["ip", "-6", "addr", "add", "2001:db8:217::1/64", "dev", "gw-v217", "nodad"])
    try:
        create_vlan217_dual_stack(lab, network)
        for host, name, ip, ip6 in (("h1", f"w1-{tag}", "198.51.100.110", "2001:db8:217::110"),
                                    ("h2", f"w2-{tag}", "198.51.100.111", "2001:db8:217::111"),
                                    ("h1", f"w3-{tag}", "198.51.100.112", "2001:db8:217::112")):
            serve(lab, host, name, network, ip, ip6)
        assert fetch6(lab, "h1", f"w1-{tag}", "2001:db8:217::111") == f"w2-{tag}"
        assert fetch6(lab, "h2", f"w2-{tag}", "2001:db8:217::110") == f"w1-{tag}"
        assert fetch6(lab, "h1", f"w1-{tag}", "2001:db8:217::112") == f"w3-{tag}"  # same host
        assert pings6(lab, "h1", f"w1-{tag}", "2001:db8:217::1") and pings6(lab, "h2", f"w2-{tag}", "2001:db8:217::1")
        assert f"lladdr {router_mac} router" in neighbour(lab, "h1", f"w1-{tag}", "2001:db8:217::1")
        # MAC NAT for IPv6: a container on the other host is at that host's MAC; the router has the
        # hosts' MACs for the containers (from the advertisements' option, not just their source).
        assert f"lladdr {host_macs['h2']}" in neighbour(lab, "h1", f"w1-{tag}", "2001:db8:217::111")
        assert gw.run(["ping", "-6", "-c", "1", "-W", "2", "2001:db8:217::112"], check=False).returncode == 0
        router_neighbours = gw.run(["ip", "-6", "neigh", "show", "dev", "gw-v217"]).stdout
        for ip6, host in (("2001:db8:217::110", "h1"), ("2001:db8:217::111", "h2"), ("2001:db8:217::112", "h1")):
            entry = [line for line in router_neighbours.splitlines() if line.startswith(ip6 + " ")]
            assert entry and host_macs[host] in entry[0], (ip6, router_neighbours)
        assert_switch_saw_only_hosts(sw, known, "0x7e56", "neighbour solicitations")
        assert packets_on(lab, "h1", "ovsbr0", "cookie=0xac5/-1,table=35,icmp6,icmp_type=135,nd_target=2001:db8:217::111") > 0
    finally:
        gw.run(["ip", "-6", "addr", "del", "2001:db8:217::1/64", "dev", "gw-v217"], check=False)
        sw.run(["ovs-ofctl", "del-flows", SWITCH_BRIDGE, "cookie=0x7e56/-1"], check=False)
        remove(lab, names, [network])


# What the store holds that a refused `docker network create` could have left: h1's vpc and vxlan
# networks, and the IPAM's pools.
STORED = ("import sys, json; from acsnet.store import open_store; from acsnet.plugins.segments import state; "
          "from acsnet.plugins.segments.model import LAYOUTS; from acsnet.ipam.state import PoolRecords; "
          "s = open_store(sys.argv[1]); print(json.dumps([[state.host_network_ids(s, LAYOUTS[d], 'h1') "
          "for d in ('vpc', 'vxlan')], sorted(PoolRecords.ids(s))])); s.close()")


def test_what_is_refused_is_refused_clearly_and_nothing_is_stored(lab):
    tag = uuid.uuid4().hex[:4]

    def stored() -> list:
        return json.loads(lab.node("svc").run([sys.executable, "-c", STORED, lab.zookeeper_url]).stdout)

    before = stored()
    cases = [
        (["-d", "vxlan", "--ipv6", "--subnet", "100.64.7.0/24", "--subnet", "2001:db8:7::/64", "--subnet", "2001:db8:8::/64",
          "-o", "VxlanId=190"], "takes one IPv6 subnet per network, got 2: 2001:db8:7::/64, 2001:db8:8::/64"),
        (["-d", "vxlan", "--ipv6", "--subnet", "100.64.7.0/24", "--subnet", "fe80::/64", "-o", "VxlanId=190"],
         "IPv6 subnet fe80::/64 is link-local or multicast"),
    ]
    try:
        for argv, message in cases:
            result = lab.docker("h1", "network", "create", "--ipam-driver", "acsnet", *argv, f"bad-{tag}", check=False)
            assert result.returncode != 0 and message in result.stderr, (argv, result.stderr)
            assert lab.docker("h1", "network", "ls", "-q", "--filter", f"name=bad-{tag}").stdout.strip() == ""
        assert stored() == before
    finally:
        lab.docker("h1", "network", "rm", f"bad-{tag}", check=False)


# -- the driver's validation and the records, as pure functions (no lab) --------------------------

def network_create(ipv4: list[dict], ipv6: list[dict]) -> NetworkCreate:
    return NetworkCreate.from_json({"NetworkID": "n" * 64, "Options": {}, "IPv4Data": ipv4, "IPv6Data": ipv6})


V4 = {"AddressSpace": "acsnet-local", "Pool": "100.64.6.0/24", "Gateway": "100.64.6.1/24"}


def test_a_dual_stack_network_gives_both_pools_and_gateways():
    subnets = network_subnets("vxlan", network_create([V4], [{"Pool": "2001:db8:6::/64", "Gateway": "2001:db8:6::1/64"}]),
                              dual_stack=True)
    assert (subnets.gateway, str(subnets.subnet6), subnets.gateway6) == ("100.64.6.1", "2001:db8:6::/64", "2001:db8:6::1")
    ipv4_only = network_subnets("vxlan", network_create([V4], []), dual_stack=True)
    assert (ipv4_only.subnet6, ipv4_only.gateway6) == (None, None)


def test_bad_ipv6_subnets_are_refused_naming_the_problem():
    cases = [
        ([V4], [{"Pool": "2001:db8:6::/64", "Gateway": "2001:db8:7::1/64"}], True,
         "IPv6 gateway 2001:db8:7::1 is outside its subnet 2001:db8:6::/64"),
        ([V4], [{"Pool": "2001:db8:6::/64"}, {"Pool": "2001:db8:7::/64"}], True,
         "takes one IPv6 subnet per network, got 2: 2001:db8:6::/64, 2001:db8:7::/64"),
        ([V4], [{"Pool": "2001:db8:6::/127"}], True, "IPv6 subnet 2001:db8:6::/127 is too small: its prefix may be at most /126"),
        ([V4], [{"Pool": "ff05::/64"}], True, "IPv6 subnet ff05::/64 is link-local or multicast"),
        ([V4], [{"Pool": "100.64.7.0/24"}], True, "IPv6 subnet 100.64.7.0/24 is not an IPv6 network"),
        ([], [{"Pool": "2001:db8:6::/64"}], True, "needs exactly one IPv4 subnet (--subnet), got 0 (IPv6-only networks are not supported"),
    ]
    for ipv4, ipv6, dual_stack, message in cases:
        with pytest.raises(InvalidRequest) as refused:
            network_subnets("vxlan" if dual_stack else "vpc", network_create(ipv4, ipv6), dual_stack=dual_stack)
        assert message in refused.value.message, (ipv6, refused.value.message)


def test_records_carry_ip6_only_when_set_so_older_plugins_still_read_ipv4_only_ones():
    record = SegmentRecord("h1", "02:00:00:00:00:11", "192.0.2.11", "100.64.6.10", "02:42:64:40:06:0a", "e" * 64)
    assert "ip6" not in record.to_json() and SegmentRecord.from_json(record.to_json()) == record
    dual = dataclasses.replace(record, ip6="2001:db8:6::10")
    assert SegmentRecord.from_json(dual.to_json()) == dual
    endpoint = SegmentEndpoint("e" * 64, "n" * 64, 160, "100.64.6.10", 24, "02:42:64:40:06:0a", 1.0)
    assert "ip6" not in endpoint.to_json()
    assert SegmentEndpoint.from_json(dataclasses.replace(endpoint, ip6="2001:db8:6::10").to_json()).ip6 == "2001:db8:6::10"
    network = SegmentNetwork("n" * 64, 160, netaddr.IPNetwork("100.64.6.0/24"), "100.64.6.1", None, 1450)
    assert "subnet6" not in network.to_json() and SegmentNetwork.from_json(network.to_json()) == network
    dual_network = dataclasses.replace(network, subnet6=netaddr.IPNetwork("2001:db8:6::/64"), gateway6="2001:db8:6::1")
    assert SegmentNetwork.from_json(dual_network.to_json()) == dual_network


def vpc_options(generic: dict, subnet6: str | None):
    request = NetworkCreate.from_json({"NetworkID": "n" * 64, "Options": {"com.docker.network.generic": generic},
                                       "IPv4Data": [V4]})
    return parse_vpc_options(request, netaddr.IPNetwork("100.64.0.0/16"), netaddr.IPNetwork(subnet6) if subnet6 else None)


def test_a_vpc_hosts_ipv6_slice_is_a_80_of_a_64_by_default_or_the_next_boundary_with_room_for_the_route_limit():
    assert vpc_options({}, "2001:db8:6::/64").host_subnet_size_v6 == 80
    assert vpc_options({}, "2001:db8:6::/80").host_subnet_size_v6 == 96
    assert vpc_options({}, "2001:db8:6::/112").host_subnet_size_v6 == 120
    assert vpc_options({"max_routes": "300"}, "2001:db8:6::/90").host_subnet_size_v6 == 112  # /96 holds 64 hosts only
    assert vpc_options({"host_subnet_size_v6": "72", "max_routes": "256"}, "2001:db8:6::/64").host_subnet_size_v6 == 72
    assert vpc_options({}, None).host_subnet_size_v6 is None  # IPv4 only, as before


def test_bad_vpc_ipv6_slices_are_refused_naming_the_problem():
    cases = [
        ({"host_subnet_size_v6": "64"}, "2001:db8:6::/64", "host_subnet_size_v6 /64 must be smaller than the network's /64"),
        ({"host_subnet_size_v6": "56"}, "2001:db8:6::/64", "host_subnet_size_v6 /56 must be smaller than the network's /64"),
        ({"host_subnet_size_v6": "127"}, "2001:db8:6::/64", "host_subnet_size_v6 must be an integer from 1 to 126, got 127"),
        ({"host_subnet_size_v6": "/80"}, "2001:db8:6::/64", "host_subnet_size_v6 must be an integer from 1 to 126, got '/80'"),
        ({"host_subnet_size_v6": "68"}, "2001:db8:6::/64",
         "host_subnet_size_v6 /68 leaves room for 16 hosts in 2001:db8:6::/64, fewer than max_routes=50 (the route limit counts hosts"),
        ({"max_routes": "1000"}, "2001:db8:6::/118", "IPv6 subnet 2001:db8:6::/118 has no room for max_routes=1000 host slices"),
        ({"host_subnet_size_v6": "80"}, None, "host_subnet_size_v6 is for dual-stack networks (--ipv6 with an IPv6 --subnet); "
                                              "network 100.64.0.0/16 has no IPv6 subnet"),
    ]
    for generic, subnet6, message in cases:
        with pytest.raises(InvalidRequest) as refused:
            vpc_options(generic, subnet6)
        assert message in refused.value.message, (generic, refused.value.message)


# An IPv6 link between h1 and the lab's outside host, made by the tests that need the host to have a
# global IPv6 address (on its bridge's own port, where host-setup put its IPv4 address).
HOST6, OUTSIDE6 = "2001:db8:c0::11", "2001:db8:c0::200"


def test_ipv6_snat_and_published_ports_go_through_the_hosts_ipv6_address_and_what_it_lacks_is_refused(lab, tmp_path):
    """A dual-stack network's router holds its IPv6 gateway and routes IPv6 to the host: containers
    reach an IPv6 host outside, seen there as the host's IPv6 address; `-p [::]:...`, `-p
    [HOST_IPV6]:...` and `-p PORT` (both families) reach the container from outside by IPv6. Where the
    host has no such address, or the network no IPv6 subnet, `-p` is refused naming what is missing.
    And an IPv4 host address is honoured: `-p 127.0.0.1:...` is reached from the host only."""
    tag = uuid.uuid4().hex[:4]
    network, ipv4_only = f"v6n-{tag}", f"v4n-{tag}"
    names = {"h1": [f"n{i}-{tag}" for i in range(1, 8)]}
    h1, out = lab.node("h1"), lab.node("out")
    www = tmp_path / "www"
    www.mkdir()
    (www / "marker").write_text("outside\n")
    server = out.popen([sys.executable, "-m", "http.server", "8000", "--bind", "::", "--directory", str(www)],
                       str(tmp_path / "http.log"))

    def refused(name: str, net: str, mapping: str, message: str) -> None:
        result = lab.docker("h1", "run", "-d", *QUICK, "--net", net, "-p", mapping, "--name", name, IMAGE, "sleep", "600",
                            check=False)
        assert result.returncode != 0 and message in result.stderr, (mapping, result.stderr)

    try:
        create_dual_stack(lab, network, 210, ("h1",))
        lab.docker("h1", "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", "100.64.9.0/24",
                   "-o", "VxlanId=211", ipv4_only)
        serve(lab, "h1", f"n1-{tag}", network, "100.64.6.50", "2001:db8:6::50")
        inside = h1.run(["ip", "netns", "exec", "acsvx-210", "ip", "-6", "addr", "show", "gw0"]).stdout
        assert f"{GATEWAY6}/64" in inside, inside
        # The host has no global IPv6 address yet: refused, saying so, and nothing published elsewhere.
        refused(f"n2-{tag}", network, "[::]:8086:80", "-p [::]:8086:80: host h1 has no global IPv6 address to publish on; "
                                                      "publish on its IPv4 address instead (-p 8086:80)")
        refused(f"n3-{tag}", network, f"[{HOST6}]:8087:80", f"-p [{HOST6}]:8087:80: host h1 has no IPv6 address {HOST6}")
        refused(f"n4-{tag}", network, "10.9.9.9:8088:80", "-p 10.9.9.9:8088:80: host h1 has no IPv4 address 10.9.9.9")
        assert not pings6(lab, "h1", f"n1-{tag}", OUTSIDE6, wait=1)

        h1.run(["ip", "-6", "addr", "add", f"{HOST6}/64", "dev", "ovsbr0", "nodad"])
        out.run(["ip", "-6", "addr", "add", f"{OUTSIDE6}/64", "dev", "out0", "nodad"])
        refused(f"n5-{tag}", ipv4_only, f"[{HOST6}]:8089:80", "has no IPv6 subnet, so its container has no IPv6 address to publish")
        # SNAT, with no port published yet: the container reaches the outside host by IPv6, which
        # sees the host's IPv6 address.
        assert pings6(lab, "h1", f"n1-{tag}", OUTSIDE6)
        assert lab.docker("h1", "exec", f"n1-{tag}", "timeout", "5", "wget", "-q", "-O", "-",
                          f"http://[{OUTSIDE6}]:8000/marker").stdout.strip() == "outside"
        assert f"{HOST6} - -" in (tmp_path / "http.log").read_text(), (tmp_path / "http.log").read_text()
        lab.docker("h1", "rm", "-f", f"n2-{tag}", f"n3-{tag}", f"n4-{tag}", f"n5-{tag}", check=False)
        script = "mkdir /www && echo {0} > /www/index.html && exec httpd -f -p 80 -h /www"
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "-p", "[::]:8080:80", "-p", f"[{HOST6}]:8081:80",
                   "--name", f"n2-{tag}", IMAGE, "sh", "-c", script.format(f"n2-{tag}"))
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "-p", "8082:80", "-p", "127.0.0.1:8084:80",
                   "--name", f"n3-{tag}", IMAGE, "sh", "-c", script.format(f"n3-{tag}"))

        report = json.loads(h1.run([sys.executable, "-m", "acsnet.cli", "inspect", "network", network, "--json",
                                    "--store", lab.zookeeper_url, "--host-id", "h1"]).stdout)
        published = {e["container"]: set(e["published"].split(", ")) for e in report["endpoints"]}
        assert published[f"n2-{tag}"] == {"[::]:8080->80", f"[{HOST6}]:8081->80"}, published
        assert published[f"n3-{tag}"] == {"8082->80", "127.0.0.1:8084->80"}, published
        # DNAT: from outside by IPv6 on each binding; -p PORT on both families; 127.0.0.1 only from the host.
        for port, name in ((8080, f"n2-{tag}"), (8081, f"n2-{tag}"), (8082, f"n3-{tag}")):
            assert outside_get(lab, f"http://[{HOST6}]:{port}/") == name, port
        assert outside_get(lab, f"http://{VTEPS['h1']}:8082/") == f"n3-{tag}"
        assert outside_get(lab, f"http://{VTEPS['h1']}:8084/") is None, "-p 127.0.0.1:8084:80 was published on the VTEP"
        assert h1.run(["timeout", "5", "wget", "-q", "-O", "-", "http://127.0.0.1:8084/"]).stdout.strip() == f"n3-{tag}"
        assert outside_get(lab, f"http://[{HOST6}]:8084/") is None
        # One port on both families as two bindings (as newer dockerds may send -p PORT) is one
        # publication; the same port again, on an address it covers, is another container's.
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "-p", "0.0.0.0:8085:80", "-p", "[::]:8085:80",
                   "--name", f"n5-{tag}", IMAGE, "sh", "-c", script.format(f"n5-{tag}"))
        assert outside_get(lab, f"http://[{HOST6}]:8085/") == f"n5-{tag}"
        assert outside_get(lab, f"http://{VTEPS['h1']}:8085/") == f"n5-{tag}"
        refused(f"n6-{tag}", network, f"[{HOST6}]:8082:80", "host port 8082/tcp is already published by another container")

        # A restarted plugin finds the router dual-stack and the ports as published.
        lab.kill_plugin("h1", "vxlan")
        lab.start_plugin("h1", "vxlan")
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "-p", "[::]:8083:80", "--name", f"n4-{tag}", IMAGE, "sh", "-c",
                   script.format(f"n4-{tag}"))
        assert outside_get(lab, f"http://[{HOST6}]:8083/") == f"n4-{tag}"
        assert outside_get(lab, f"http://[{HOST6}]:8080/") == f"n2-{tag}"
        lab.docker("h1", "rm", "-f", f"n2-{tag}")
        assert outside_get(lab, f"http://[{HOST6}]:8080/") is None, "the port stays published after docker rm"
    finally:
        server.kill()
        server.wait()
        h1.run(["ip", "-6", "addr", "del", f"{HOST6}/64", "dev", "ovsbr0"], check=False)
        out.run(["ip", "-6", "addr", "del", f"{OUTSIDE6}/64", "dev", "out0"], check=False)
        remove(lab, names, [network, ipv4_only])


def test_an_ip6_pin_of_a_dead_host_is_taken_over_on_another_and_reached_within_a_second(tmp_path):
    """As `--ip` does (tests/test_vxlan.py, tests/test_vlan.py): once a powered-off host's ZooKeeper
    session ends, another host may run a container with its `--ip6`; on vxlan a container on a third
    host reaches it within a second (the unsolicited advertisement to local containers), on vlan the
    VLAN's router does (the one sent on the uplink with the new host's MAC)."""
    from tests.conftest import LAB_OPTIONS
    from tests.test_vxlan import points_at

    lab = Lab(str(tmp_path / "lab"), f"acsnet-6{uuid.uuid4().hex[:4]}")
    pinned6, vlan_pinned6 = "2001:db8:6::60", "2001:db8:217::160"
    gw = None
    try:
        lab.up(hosts=3, **LAB_OPTIONS)
        gw = lab.node("gw")
        gw.run(["ip", "-6", "addr", "add", "2001:db8:217::1/64", "dev", "gw-v217", "nodad"])
        create_dual_stack(lab, "vx6", 230, ("h1", "h2", "h3"))
        create_vlan217_dual_stack(lab, "vl6")
        serve(lab, "h1", "app", "vx6", "100.64.6.60", pinned6)
        serve(lab, "h3", "client", "vx6", "100.64.6.61", "2001:db8:6::61")
        serve(lab, "h1", "vapp", "vl6", "198.51.100.160", vlan_pinned6)
        assert fetch6(lab, "h3", "client", pinned6) == "app"  # the client's neighbour entry: h1's container's MAC
        assert gw.run(["ping", "-6", "-c", "1", "-W", "2", vlan_pinned6], check=False).returncode == 0
        host_macs = {h: lab.node(h).run(["cat", f"/sys/class/net/{UPLINK}/address"]).stdout.strip() for h in ("h1", "h2")}
        assert host_macs["h1"] in gw.run(["ip", "-6", "neigh", "show", vlan_pinned6]).stdout

        lab.power_off("h1")
        deadline = time.monotonic() + 40
        for name, network, ip, ip6 in (("app", "vx6", "100.64.6.60", pinned6), ("vapp", "vl6", "198.51.100.160", vlan_pinned6)):
            while True:
                script = f"mkdir /www && echo moved-{name} > /www/index.html && exec httpd -f -p 80 -h /www"
                if lab.docker("h2", "run", "-d", *QUICK, "--net", network, "--ip", ip, "--ip6", ip6, "--name", name, IMAGE,
                              "sh", "-c", script, check=False).returncode == 0:
                    break
                lab.docker("h2", "rm", "-f", name, check=False)
                assert time.monotonic() < deadline, f"h2 never got {ip6} of the dead host"
                time.sleep(1)
            started = time.monotonic()
            if network == "vx6":
                while fetch6(lab, "h3", "client", pinned6) != "moved-app":
                    assert time.monotonic() - started < 1, "the container that took the --ip6 over was not reached within 1 s"
            else:
                while gw.run(["ping", "-6", "-c", "1", "-W", "1", vlan_pinned6], check=False).returncode != 0:
                    assert time.monotonic() - started < 1, "the VLAN's router did not reach the moved --ip6 within 1 s"
                assert host_macs["h2"] in gw.run(["ip", "-6", "neigh", "show", vlan_pinned6]).stdout
        assert [f for f in tunnel_flows(lab, "h3") if points_at(f, "h1")] == []
    finally:
        lab.down()
    assert lab.leftovers() == []


# A router advertisement from the lab's router (gw), as radvd would send it: the router's MAC in its
# option, its link-local address the next hop, and the prefix on-link only (no SLAAC address).
ROUTER_ADVERT = """import sys
from scapy.all import Ether, IPv6, ICMPv6ND_RA, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptPrefixInfo, sendp
iface, mac, ll, prefix = sys.argv[1:5]
sendp(Ether(src=mac, dst="33:33:00:00:00:01") / IPv6(src=ll, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=1800)
      / ICMPv6NDOptSrcLLAddr(lladdr=mac) / ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=64, L=1, A=0), iface=iface, verbose=False)
"""


def test_vlan_router_advertisements_reach_containers_only_where_the_network_accepts_them(lab):
    """`-o ipv6_ra=accept` (VLAN 217): the VLAN router's advertisement reaches the container, which
    takes its route via the router's link-local address and reaches it (a solicitation for it answered
    by a flow with the router's MAC). Without it (VLAN 218), the same advertisement is dropped and the
    container's only IPv6 router is Docker's static gateway. Bad values are refused."""
    tag = uuid.uuid4().hex[:4]
    accepting, dropping = f"ra-{tag}", f"nora-{tag}"
    names = {"h1": [f"ra1-{tag}", f"ra2-{tag}"]}
    gw, h1 = lab.node("gw"), lab.node("h1")
    routers = {}
    for vlan, device in ((217, "gw-v217"), (218, "gw-v218")):
        mac = gw.run(["cat", f"/sys/class/net/{device}/address"]).stdout.strip()
        link_local = gw.run(["ip", "-6", "-o", "addr", "show", "dev", device, "scope", "link"]).stdout.split()[3].split("/")[0]
        routers[vlan] = (device, mac, link_local)
        gw.run(["ip", "-6", "addr", "add", f"2001:db8:{vlan}::1/64", "dev", device, "nodad"])
    try:
        for bad, message in ((["-o", "ipv6_ra=maybe"], "ipv6_ra must be accept or drop, got 'maybe'"),):
            result = lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--ipv6", "--subnet",
                                "198.51.100.0/24", "--subnet", "2001:db8:217::/64", "-o", "VlanId=217", *bad, f"bad-{tag}", check=False)
            assert result.returncode != 0 and message in result.stderr, result.stderr
        result = lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "198.51.100.0/24",
                            "-o", "VlanId=217", "-o", "ipv6_ra=accept", f"bad-{tag}", check=False)
        assert result.returncode != 0 and "ipv6_ra=accept is for dual-stack networks" in result.stderr, result.stderr
        for network, vlan, v4, extra in ((accepting, 217, "198.51.100", ["-o", "ipv6_ra=accept"]), (dropping, 218, "203.0.113", [])):
            lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--ipv6", "--subnet", f"{v4}.0/24",
                       "--gateway", f"{v4}.1", "--subnet", f"2001:db8:{vlan}::/64", "--gateway", f"2001:db8:{vlan}::1",
                       "-o", f"VlanId={vlan}", *extra, network)
        for name, network, ip, ip6 in ((f"ra1-{tag}", accepting, "198.51.100.130", "2001:db8:217::130"),
                                       (f"ra2-{tag}", dropping, "203.0.113.130", "2001:db8:218::130")):
            lab.docker("h1", "run", "-d", *QUICK, "--cap-add", "NET_ADMIN", "--net", network, "--ip", ip, "--ip6", ip6,
                       "--name", name, IMAGE, "sleep", "600")
        deadline = time.monotonic() + 20  # the accepting flow waits for the router's MAC, learned by ARP
        while f"dl_src={routers[217][1]}" not in h1.run(["ovs-ofctl", "dump-flows", "ovsbr0", "table=20,icmp6,icmp_type=134"]).stdout:
            assert time.monotonic() < deadline, "no flow lets VLAN 217's advertisements in"
            time.sleep(0.2)
        for vlan in (217, 218):
            device, mac, link_local = routers[vlan]
            gw.run([sys.executable, "-c", ROUTER_ADVERT, device, mac, link_local, f"2001:db8:{vlan}::"])

        def ipv6_routes(name: str) -> str:
            return lab.docker("h1", "exec", name, "ip", "-6", "route").stdout

        deadline = time.monotonic() + 5
        while f"default via {routers[217][2]}" not in ipv6_routes(f"ra1-{tag}"):
            assert time.monotonic() < deadline, f"the advertisement did not reach the accepting network: {ipv6_routes(f'ra1-{tag}')}"
            time.sleep(0.2)
        assert "default via 2001:db8:217::1" in ipv6_routes(f"ra1-{tag}")  # Docker's static one stays
        # The router's link-local address is reached; a solicitation for it is answered by a flow.
        lab.docker("h1", "exec", f"ra1-{tag}", "ip", "-6", "neigh", "flush", "dev", "eth0")
        assert lab.docker("h1", "exec", f"ra1-{tag}", "ping", "-6", "-c", "1", "-W", "2", "-I", "2001:db8:217::130",
                          f"{routers[217][2]}%eth0", check=False).returncode == 0
        assert f"lladdr {routers[217][1]} router" in neighbour(lab, "h1", f"ra1-{tag}", routers[217][2])
        assert packets_on(lab, "h1", "ovsbr0", "cookie=0xac5/-1,table=35,icmp6,icmp_type=135,nd_target=fe80::/10") > 0
        # Dropped where not asked for: Docker's static gateway is the only router.
        time.sleep(1)
        routes = ipv6_routes(f"ra2-{tag}")
        assert "fe80::" not in "".join(line for line in routes.splitlines() if line.startswith("default")), routes
        assert "default via 2001:db8:218::1" in routes, routes
        assert pings6(lab, "h1", f"ra2-{tag}", "2001:db8:218::1")
    finally:
        for vlan, (device, _, _) in routers.items():
            gw.run(["ip", "-6", "addr", "del", f"2001:db8:{vlan}::1/64", "dev", device], check=False)
        remove(lab, names, [accepting, dropping, f"bad-{tag}"])


def test_vlan_neighbour_advertisements_seen_at_the_switch_carry_only_host_macs(lab):
    """MAC NAT for IPv6 from the switch's side: every neighbour advertisement on VLAN 217 (the hosts'
    unsolicited ones for joined containers, their answers to the router's solicitations) has a host's
    MAC as its source and in its target link-layer option, or is the router's own; and the switch's MAC
    table for the VLAN holds one MAC per host and the router's, however many containers there are."""
    tag = uuid.uuid4().hex[:4]
    network = f"na-{tag}"
    names = {"h1": [f"na1-{tag}", f"na3-{tag}"], "h2": [f"na2-{tag}", f"na4-{tag}"]}
    gw, sw = lab.node("gw"), lab.node("sw")
    router_mac = gw.run(["cat", "/sys/class/net/gw-v217/address"]).stdout.strip()
    host_macs = {h: lab.node(h).run(["cat", f"/sys/class/net/{UPLINK}/address"]).stdout.strip() for h in ("h1", "h2")}
    counters = ["cookie=0x7e57,priority=40,icmp6,icmp_type=136,actions=NORMAL"]
    counters += [f"cookie=0x7e57,priority=50,icmp6,icmp_type=136,dl_src={m},nd_tll={m},actions=NORMAL"
                 for m in [*host_macs.values(), router_mac]]
    counters.append(f"cookie=0x7e57,priority=50,icmp6,icmp_type=136,dl_src={router_mac},nd_tll=00:00:00:00:00:00,actions=NORMAL")
    sw.run(["ovs-ofctl", "add-flows", SWITCH_BRIDGE, "-"], input="\n".join(counters) + "\n")
    gw.run(["ip", "-6", "addr", "add", "2001:db8:217::1/64", "dev", "gw-v217", "nodad"])
    try:
        create_vlan217_dual_stack(lab, network)
        addresses = {}
        for i, (host, name) in enumerate([(h, n) for h, ns in names.items() for n in ns]):
            addresses[name] = f"2001:db8:217::{0x170 + i:x}"
            serve(lab, host, name, network, f"198.51.100.{170 + i}", addresses[name])
        gw.run(["ip", "-6", "neigh", "flush", "dev", "gw-v217"])  # so that the router asks for each
        for name, address in addresses.items():
            assert gw.run(["ping", "-6", "-c", "1", "-W", "2", address], check=False).returncode == 0, name
        assert pings6(lab, "h1", f"na1-{tag}", "2001:db8:217::1") and pings6(lab, "h2", f"na2-{tag}", "2001:db8:217::1")

        assert_switch_saw_only_hosts(sw, set(host_macs.values()) | {router_mac}, "0x7e57",
                                     "neighbour advertisements naming a MAC of no host")
        stats = sw.run(["ovs-ofctl", "dump-flows", SWITCH_BRIDGE, "cookie=0x7e57/-1"]).stdout
        for host, mac in host_macs.items():  # each host's, not only one's
            (seen,) = [line for line in stats.splitlines() if f"dl_src={mac}" in line]
            assert "n_packets=0," not in seen, f"the switch saw no advertisement from {host}: the check would prove nothing"
    finally:
        gw.run(["ip", "-6", "addr", "del", "2001:db8:217::1/64", "dev", "gw-v217"], check=False)
        sw.run(["ovs-ofctl", "del-flows", SWITCH_BRIDGE, "cookie=0x7e57/-1"], check=False)
        remove(lab, names, [network])


# -- the vpc driver, dual-stack: an IPv6 slice per host, routed as its IPv4 subnet -----------------

VPC_SUBNET, VPC_SUBNET6 = "100.83.0.0/16", "fd00:83::/64"

# Each host's record of a vpc network, and what a refused `docker network create` could have left:
# vpc networks' settings, h1's vpc networks and the IPAM's pools.
VPC_RECORDS = ("import sys, json, netaddr; from acsnet.store import open_store; "
               "from acsnet.plugins.vpc.state import HostSubnetRecord; s = open_store(sys.argv[1]); "
               "print(json.dumps({h: r.to_json() for h, r in HostSubnetRecord.read_all(s, netaddr.IPNetwork(sys.argv[2])).items()})); "
               "s.close()")
VPC_STORED = ("import sys, json; from acsnet.store import open_store; from acsnet.plugins.segments import state; "
              "from acsnet.plugins.segments.model import LAYOUTS; from acsnet.ipam.state import PoolRecords; "
              "from acsnet.plugins.vpc.state import VpcNetworkSettings; s = open_store(sys.argv[1]); "
              "print(json.dumps([sorted(map(str, VpcNetworkSettings.read_all(s))), state.host_network_ids(s, LAYOUTS['vpc'], 'h1'), "
              "sorted(PoolRecords.ids(s))])); s.close()")


def create_vpc_dual_stack(lab: Lab, name: str, *extra: str, host: str = "h1", check: bool = True):
    return lab.docker(host, "network", "create", "-d", "vpc", "--ipam-driver", "acsnet", "--ipv6", "--subnet", VPC_SUBNET,
                      "--subnet", VPC_SUBNET6, "-o", "host_subnet_size=24", *extra, name, check=check)


def vpc_records(lab: Lab, network: str) -> dict:
    return json.loads(lab.node("svc").run([sys.executable, "-c", VPC_RECORDS, lab.zookeeper_url, network]).stdout)


def counted(lab: Lab, host: str, match: str, wait: float = 5.0) -> bool:
    """Whether `ovsbr0`'s flows of `match` counted a packet, within `wait`: OVS adds its datapath flows'
    counts to them every half second or so, not at once."""
    deadline = time.monotonic() + wait
    while packets_on(lab, host, "ovsbr0", match) == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def endpoint_of(lab: Lab, host: str, container: str, network: str) -> dict:
    return json.loads(lab.docker(host, "inspect", container).stdout)[0]["NetworkSettings"]["Networks"][network]


def test_vpc_dual_stack_routes_each_hosts_ipv6_slice_and_containers_reach_each_other_across_hosts(lab):
    tag = uuid.uuid4().hex[:4]
    network = f"vpc6-{tag}"
    names = {"h1": [f"c1-{tag}", f"c3-{tag}", f"out-{tag}"], "h2": [f"c2-{tag}"]}
    try:
        create_vpc_dual_stack(lab, network, host="h1")
        create_vpc_dual_stack(lab, network, host="h2")
        records = vpc_records(lab, VPC_SUBNET)
        slices = {h: netaddr.IPNetwork(records[h]["subnet6"]) for h in ("h1", "h2")}
        # A /80 of the /64 each (the default), different, beside the hosts' IPv4 subnets.
        assert {records[h]["network6"] for h in slices} == {VPC_SUBNET6}, records
        assert slices["h1"] != slices["h2"] and all(s.prefixlen == 80 and s in netaddr.IPNetwork(VPC_SUBNET6)
                                                   for s in slices.values()), slices
        gateway6 = {h: str(s.network + 1) for h, s in slices.items()}

        for host, name in (("h1", f"c1-{tag}"), ("h2", f"c2-{tag}")):
            lab.docker(host, "run", "-d", *QUICK, "--net", network, "--name", name, IMAGE, "sleep", "600")
        # Pinned inside h1's slice: taken; pinned in h2's slice on h1: refused, naming h1's slice.
        pinned = str(slices["h1"].network + 0x77)
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "--ip6", pinned, "--name", f"c3-{tag}", IMAGE, "sleep", "600")
        outside = str(slices["h2"].network + 0x77)
        refused = lab.docker("h1", "run", "-d", *QUICK, "--net", network, "--ip6", outside, "--name", f"out-{tag}", IMAGE,
                             "sleep", "600", check=False)
        assert refused.returncode != 0 and (f"address {outside} is not one of host h1's addresses in network {VPC_SUBNET6}: "
                                            f"its containers take addresses of {slices['h1']}") in refused.stderr, refused.stderr

        # Each container's IPv6 address is its host's slice's, with the slice's prefix, and its IPv6
        # gateway is its host's address there.
        ip6, ip4 = {}, {}
        for host, name in (("h1", f"c1-{tag}"), ("h2", f"c2-{tag}"), ("h1", f"c3-{tag}")):
            endpoint = endpoint_of(lab, host, name, network)
            ip6[name], ip4[name] = endpoint["GlobalIPv6Address"], endpoint["IPAddress"]
            assert netaddr.IPAddress(ip6[name]) in slices[host], (name, endpoint)
            assert endpoint["GlobalIPv6PrefixLen"] == 80 and endpoint["IPv6Gateway"] == gateway6[host], endpoint
            assert netaddr.IPAddress(ip4[name]) in netaddr.IPNetwork(records[host]["subnet"]), (name, endpoint)
        assert ip6[f"c3-{tag}"] == pinned

        c1, c2, c3 = f"c1-{tag}", f"c2-{tag}", f"c3-{tag}"
        # By IPv6 across hosts, both ways, on one host, and to the host's gateway; by IPv4 too.
        assert pings6(lab, "h1", c1, ip6[c2]) and pings6(lab, "h2", c2, ip6[c1])
        assert pings6(lab, "h1", c1, ip6[c3]) and pings6(lab, "h2", c2, ip6[c3])
        assert pings6(lab, "h1", c1, gateway6["h1"])
        for host, name, peer in (("h1", c1, c2), ("h2", c2, c1)):
            assert lab.docker(host, "exec", name, "ping", "-c", "1", "-W", "2", ip4[peer], check=False).returncode == 0

        # The hosts' flows carried it: h1's container traffic for h2's slice went out rewritten to h2's
        # MAC, not through the kernel, and the gateway's solicitations were answered by flows, with the
        # host's MAC as a router's.
        for host, peer in (("h1", "h2"), ("h2", "h1")):
            assert counted(lab, host, f"cookie=0xac7/-1,table=40,ipv6,ipv6_dst={slices[peer]}")
        assert counted(lab, "h1", f"cookie=0xac7/-1,table=65,icmp6,icmp_type=135,nd_target={gateway6['h1']}")
        entry = neighbour(lab, "h1", c1, gateway6["h1"])
        assert f"lladdr {host_mac(lab, 'h1')}" in entry and "router" in entry, entry
        # The hosts route each other's slice too (hostroutes), so a host reaches the other's containers.
        routes = lab.node("h1").run(["ip", "-6", "-j", "route", "show", "proto", "172"]).stdout
        assert {(netaddr.IPNetwork(r["dst"]), r.get("gateway")) for r in json.loads(routes)} >= {(slices["h2"], gateway6["h2"])}, routes
        assert lab.node("h1").run(["ping", "-6", "-c", "1", "-W", "2", ip6[c2]], check=False).returncode == 0
        assert lab.node("h2").run(["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).stdout.strip() == "1"

        # A restarted plugin installs its whole table again from the store's records, slices included.
        # (Its first pass installs the flows of its own slice; the peers' follow once it has read them, and
        # until then their traffic takes the kernel's routes.)
        lab.kill_plugin("h1", "vpc")
        lab.start_plugin("h1", "vpc")
        to_peer = f"cookie=0xac7/-1,table=40,ipv6,ipv6_dst={slices['h2']}"
        deadline = time.monotonic() + 20
        while "n_packets=0," not in lab.node("h1").run(["ovs-ofctl", "dump-flows", "ovsbr0", to_peer]).stdout:
            assert time.monotonic() < deadline, "h1's restarted plugin installed no flow to h2's slice"
            time.sleep(0.2)
        assert pings6(lab, "h1", c1, ip6[c2]) and pings6(lab, "h2", c2, ip6[c3])
        assert counted(lab, "h1", to_peer)
    finally:
        remove(lab, names, [network])
    # Gone with the network: the gateways and the IPv6 flows at once, the routes moments later (the
    # worker withdraws them, as IPv4's).
    prefix = VPC_SUBNET6.split("::")[0]
    for host in ("h1", "h2"):
        assert prefix not in lab.node(host).run(["ip", "-6", "addr", "show", "dev", "ovsbr0"]).stdout
        assert prefix not in lab.node(host).run(["ovs-ofctl", "dump-flows", "ovsbr0", "cookie=0xac7/-1"]).stdout
        deadline = time.monotonic() + 20
        while prefix in lab.node(host).run(["ip", "-6", "route", "show", "proto", "172"]).stdout:
            assert time.monotonic() < deadline, f"{host} still routes a slice of {VPC_SUBNET6}"
            time.sleep(0.2)


def test_vpc_dual_stack_refusals_are_clear_and_nothing_is_stored(lab):
    tag = uuid.uuid4().hex[:4]

    def stored() -> list:
        return json.loads(lab.node("svc").run([sys.executable, "-c", VPC_STORED, lab.zookeeper_url]).stdout)

    before = stored()
    v4 = ["--subnet", "100.84.0.0/16"]
    cases = [
        (["--ipv6", *v4, "--subnet", "fd00:84::/64", "-o", "host_subnet_size_v6=64"],
         "host_subnet_size_v6 /64 must be smaller than the network's /64"),
        (["--ipv6", *v4, "--subnet", "fd00:84::/64", "-o", "host_subnet_size_v6=68"],
         "host_subnet_size_v6 /68 leaves room for 16 hosts in fd00:84::/64, fewer than max_routes=50"),
        (["--ipv6", *v4, "--subnet", "fd00:84::/118", "-o", "max_routes=1000"],
         "IPv6 subnet fd00:84::/118 has no room for max_routes=1000 host slices"),
        (["--ipv6", *v4, "--subnet", "fe80::/64"], "IPv6 subnet fe80::/64 is link-local or multicast"),
        # --internal with --ipv6 is made (test_vpc_dual_stack_internal_network_...), and checked as any other.
        (["--ipv6", "--internal", *v4, "--subnet", "fd00:84::/64", "-o", "host_subnet_size_v6=64"],
         "host_subnet_size_v6 /64 must be smaller than the network's /64"),
        (["--ipv6", *v4, "--subnet", "fd00:84::/64", "--subnet", "fd00:85::/64"],
         "takes one IPv6 subnet per network, got 2: fd00:84::/64, fd00:85::/64"),
        ([*v4, "-o", "host_subnet_size_v6=80"], "host_subnet_size_v6 is for dual-stack networks"),
    ]
    try:
        for argv, message in cases:
            result = lab.docker("h1", "network", "create", "-d", "vpc", "--ipam-driver", "acsnet", *argv, f"bad6-{tag}", check=False)
            assert result.returncode != 0 and message in result.stderr, (argv, result.stderr)
            assert lab.docker("h1", "network", "ls", "-q", "--filter", f"name=bad6-{tag}").stdout.strip() == ""
        assert stored() == before
    finally:
        lab.docker("h1", "network", "rm", f"bad6-{tag}", check=False)


def test_a_global_dual_stack_vpc_network_gives_each_host_its_ipv6_slice(tmp_path):
    """Global scope (dockerd 20.10 with a cluster store): made once on h1; h2's IPAM is asked for both
    addresses of its first container before h2's vpc plugin has claimed its slices, waits for the claim
    (one commit for both families), and gives addresses of h2's slices; the gateways are each host's."""
    lab = Lab(str(tmp_path / "lab"), f"acsnet-7{uuid.uuid4().hex[:4]}")
    try:
        lab.up(hosts=2, scope="global")  # 20.10: Docker 23.0 and later have no cluster store
        create_vpc_dual_stack(lab, "g6", host="h1")
        for host, name in (("h1", "g1"), ("h2", "g2")):
            lab.docker(host, "run", "-d", *QUICK, "--net", "g6", "--name", name, IMAGE, "sleep", "600")
        records = vpc_records(lab, VPC_SUBNET)
        endpoints = {h: endpoint_of(lab, h, c, "g6") for h, c in (("h1", "g1"), ("h2", "g2"))}
        for host, endpoint in endpoints.items():
            slice6 = netaddr.IPNetwork(records[host]["subnet6"])
            assert netaddr.IPAddress(endpoint["GlobalIPv6Address"]) in slice6, (host, endpoint, records)
            assert endpoint["IPv6Gateway"] == str(slice6.network + 1), (host, endpoint)
        assert pings6(lab, "h1", "g1", endpoints["h2"]["GlobalIPv6Address"])
        assert pings6(lab, "h2", "g2", endpoints["h1"]["GlobalIPv6Address"])
        assert pings6(lab, "h2", "g2", endpoints["h2"]["IPv6Gateway"])
    finally:
        lab.down()
    assert lab.leftovers() == []


def test_the_vpc_driver_takes_a_dual_stack_networks_pools_and_a_driver_without_ipv6_still_refuses_them():
    from acsnet.plugins.vpc.driver import VpcDriver

    request = network_create([V4], [{"Pool": "fd00:83::/64", "Gateway": "fd00:83::1/64"}])
    subnets = network_subnets("vpc", request, dual_stack=VpcDriver.dual_stack)
    assert (str(subnets.ipv4.pool), str(subnets.subnet6)) == ("100.64.6.0/24", "fd00:83::/64")
    with pytest.raises(InvalidRequest) as refused:
        network_subnets("example", request, dual_stack=False)
    assert "the example driver does not support IPv6 networks yet" in refused.value.message


# The lab's router (gw) as one that advertises only when solicited (radvd's `UnicastOnly`): each router
# solicitation on its VLAN interface is printed (when, Ethernet source, IPv6 source, the MAC its option
# names) and answered unicast to its source address at the option's MAC, as RFC 7772 asks of routers.
SOLICITED_ROUTER = """import json, sys, time
from scapy.all import Ether, IPv6, ICMPv6ND_RA, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptPrefixInfo, sendp, sniff
iface, mac, ll, prefix = sys.argv[1:5]

def answer(frame):
    option = frame[ICMPv6NDOptSrcLLAddr].lladdr if ICMPv6NDOptSrcLLAddr in frame else None
    if option:
        sendp(Ether(src=mac, dst=option) / IPv6(src=ll, dst=frame[IPv6].src, hlim=255) / ICMPv6ND_RA(routerlifetime=1800)
              / ICMPv6NDOptSrcLLAddr(lladdr=mac) / ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=64, L=1, A=0),
              iface=iface, verbose=False)
    print(json.dumps({"at": time.time(), "src": frame.src, "ip6": frame[IPv6].src, "option": option}), flush=True)

print("ready", flush=True)
sniff(iface=iface, filter="icmp6 and ip6[40] == 133", lfilter=lambda f: f.src != mac, prn=answer, store=False)
"""
# A router solicitation as `tcpdump -e -vv` prints it on a trunk port: its checksum checked, its option shown.
SOLICITATION_SEEN = re.compile(r"(?P<src>[0-9a-f:]{17}) > [0-9a-f:]{17}, ethertype 802\.1Q \(0x8100\), length \d+: "
                               r"vlan (?P<vlan>\d+), .*? (?P<ip6>[0-9a-f:]+) > ff02::2: \[(?P<checksum>[^\]]+)\] ICMP6, "
                               r"router solicitation, length \d+\s+source link-address option \(1\), length 8 \(1\): "
                               r"(?P<option>[0-9a-f:]{17})")


def wait_for_line(path, text: str, wait: float = 60.0) -> str:
    deadline = time.monotonic() + wait
    while not (found := [line for line in (path.read_text() if path.exists() else "").splitlines() if text in line]):
        assert time.monotonic() < deadline, f"no {text!r} in {path}: {path.read_text() if path.exists() else ''}"
        time.sleep(0.2)
    return found[0]


def test_vlan_router_solicitations_leave_with_the_host_mac_and_are_answered_at_once_where_the_network_accepts_them(lab, tmp_path):
    """`-o ipv6_ra=accept` (VLAN 217): for a container that starts, the host solicits the router from
    the container's address with the host's MAC as Ethernet source and in the source link-layer
    option (seen so at the switch, checksum right); the router, which sends no periodic advertisement
    at all, answers unicast at that MAC within 2 s of the container's start and the container takes
    the route. The containers' own solicitations (their MAC in the option) are dropped by the host's
    flows and never reach the switch. On a network without it (VLAN 218), none leaves the host."""
    tag = uuid.uuid4().hex[:4]
    accepting, dropping = f"rs-{tag}", f"nors-{tag}"
    first, second, other = f"rs1-{tag}", f"rs2-{tag}", f"rs3-{tag}"
    addresses = {first: "2001:db8:217::140", second: "2001:db8:217::141", other: "2001:db8:218::140"}
    gw, sw, h1 = lab.node("gw"), lab.node("sw"), lab.node("h1")
    mac = host_mac(lab, "h1")
    router_mac = gw.run(["cat", "/sys/class/net/gw-v217/address"]).stdout.strip()
    link_local = gw.run(["ip", "-6", "-o", "addr", "show", "dev", "gw-v217", "scope", "link"]).stdout.split()[3].split("/")[0]
    gw.run(["ip", "-6", "addr", "add", "2001:db8:217::1/64", "dev", "gw-v217", "nodad"])
    switch_log, router_log = tmp_path / "switch.txt", tmp_path / "router.txt"
    capture = sw.popen(["tcpdump", "-l", "-n", "-e", "-vv", "-Q", "in", "-i", "h1-up", "vlan and icmp6 and ip6[40] == 133"],
                       str(switch_log))
    router = gw.popen([sys.executable, "-c", SOLICITED_ROUTER, "gw-v217", router_mac, link_local, "2001:db8:217::"], str(router_log))

    def ipv6_routes(name: str) -> str:
        return lab.docker("h1", "exec", name, "ip", "-6", "route").stdout

    def run(name: str, network: str, v4: str) -> None:
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "--ip", v4, "--ip6", addresses[name], "--name", name,
                   IMAGE, "sleep", "600")

    try:
        wait_for_line(switch_log, "listening on")
        wait_for_line(router_log, "ready")
        for network, vlan, v4, extra in ((accepting, 217, "198.51.100", ["-o", "ipv6_ra=accept"]), (dropping, 218, "203.0.113", [])):
            lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--ipv6", "--subnet", f"{v4}.0/24",
                       "--gateway", f"{v4}.1", "--subnet", f"2001:db8:{vlan}::/64", "--gateway", f"2001:db8:{vlan}::1",
                       "-o", f"VlanId={vlan}", *extra, network)
        run(first, accepting, "198.51.100.140")
        run(other, dropping, "203.0.113.140")
        deadline = time.monotonic() + 30  # the answer's flow waits for the router's MAC, learned by ARP
        while f"dl_src={router_mac}" not in h1.run(["ovs-ofctl", "dump-flows", "ovsbr0", "table=20,icmp6,icmp_type=134"]).stdout:
            assert time.monotonic() < deadline, "no flow lets VLAN 217's advertisements in"
            time.sleep(0.2)
        run(second, accepting, "198.51.100.141")
        started = lab.docker("h1", "inspect", "-f", "{{.State.StartedAt}}", second).stdout.strip()
        answered = json.loads(wait_for_line(router_log, f'"ip6": "{addresses[second]}"'))
        since_start = answered["at"] - datetime.datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
        assert since_start < 2.0, f"the router was solicited {since_start:.1f} s after the container started"
        assert answered["src"] == answered["option"] == mac, answered
        for name in (first, second):  # the first was solicited for once the router's MAC was known
            deadline = time.monotonic() + 30
            while f"default via {link_local}" not in ipv6_routes(name):
                assert time.monotonic() < deadline, f"{name} took no route from the solicited advertisement: {ipv6_routes(name)}"
                time.sleep(0.2)
        routes = ipv6_routes(other)
        assert "fe80::" not in "".join(line for line in routes.splitlines() if line.startswith("default")), routes
        assert packets_on(lab, "h1", "ovsbr0", "cookie=0xac5/-1,table=10,icmp6,icmp_type=133") > 0  # the containers' own

        capture.terminate()
        capture.wait(timeout=10)
        seen = [m.groupdict() for m in SOLICITATION_SEEN.finditer(switch_log.read_text())]
        assert {(s["vlan"], s["ip6"]) for s in seen} == {("217", addresses[first]), ("217", addresses[second])}, seen
        for s in seen:
            assert s["src"] == s["option"] == mac and s["checksum"] == "icmp6 sum ok", s
    finally:
        for process in (capture, router):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        gw.run(["ip", "-6", "addr", "del", "2001:db8:217::1/64", "dev", "gw-v217"], check=False)
        remove(lab, {"h1": [first, second, other]}, [accepting, dropping])


def test_vpc_dual_stack_internal_network_reaches_its_members_only_by_ipv6_too(lab):
    """--internal --ipv6 on vpc: the network's containers reach each other by IPv6 (and IPv4) across the
    hosts, through their route to the network's prefix (no default route), and nothing else by IPv6,
    not even with a default route the container made itself: not the host's gateway address, not a
    dual-stack network's container beside it, not the outside host's IPv6 address; and neither that
    container, the outside host nor either host reaches them. The outside host routes both networks'
    prefixes to h1, so that only the flows stand between; the routed network, reached and reaching out
    the same way, shows that the test can fail."""
    tag = uuid.uuid4().hex[:4]
    internal, routed = f"vpi6-{tag}", f"vpo6-{tag}"
    internal4, internal6, routed4, routed6 = "100.91.0.0/16", "fd00:91::/64", "100.92.0.0/16", "fd00:92::/64"
    i1, i2, o1 = f"i1-{tag}", f"i2-{tag}", f"o1-{tag}"
    names = {"h1": [i1, o1], "h2": [i2]}
    h1, h2, out = lab.node("h1"), lab.node("h2"), lab.node("out")

    def network_create(host: str, name: str, subnet: str, subnet6: str, *extra: str) -> None:
        lab.docker(host, "network", "create", "-d", "vpc", "--ipam-driver", "acsnet", "--ipv6", "--subnet", subnet,
                   "--subnet", subnet6, "-o", "host_subnet_size=24", *extra, name)

    try:
        for host in ("h1", "h2"):
            network_create(host, internal, internal4, internal6, "--internal")
        network_create("h1", routed, routed4, routed6)
        h1.run(["ip", "-6", "addr", "add", f"{HOST6}/64", "dev", "ovsbr0", "nodad"])
        out.run(["ip", "-6", "addr", "add", f"{OUTSIDE6}/64", "dev", "out0", "nodad"])
        for prefix in (internal6, routed6):
            out.run(["ip", "-6", "route", "replace", prefix, "via", HOST6])
        for host, name, network, extra in (("h1", i1, internal, ("--cap-add", "NET_ADMIN")), ("h2", i2, internal, ()),
                                           ("h1", o1, routed, ())):
            lab.docker(host, "run", "-d", *QUICK, "--net", network, "--name", name, *extra, IMAGE, "sleep", "600")
        endpoints = {name: endpoint_of(lab, host, name, network)
                     for host, name, network in (("h1", i1, internal), ("h2", i2, internal), ("h1", o1, routed))}
        ip6 = {name: e["GlobalIPv6Address"] for name, e in endpoints.items()}
        ip4 = {name: e["IPAddress"] for name, e in endpoints.items()}
        assert all(netaddr.IPAddress(ip6[n]) in netaddr.IPNetwork(internal6) for n in (i1, i2)), ip6
        # No gateway: a route to the network's prefix through the host's address in its slice, no default.
        assert endpoints[i1]["IPv6Gateway"] == "", endpoints[i1]
        routes = lab.docker("h1", "exec", i1, "ip", "-6", "route").stdout
        gateway6 = str(netaddr.IPNetwork(f"{ip6[i1]}/80").network + 1)
        assert "default" not in routes and f"{internal6} via {gateway6} " in routes, routes

        # Members reach each other across the hosts, by IPv6 and by IPv4.
        assert pings6(lab, "h1", i1, ip6[i2]) and pings6(lab, "h2", i2, ip6[i1])
        assert lab.docker("h1", "exec", i1, "ping", "-c", "1", "-W", "2", ip4[i2], check=False).returncode == 0
        # The routed network reaches the outside host by IPv6 and is reached from it.
        assert pings6(lab, "h1", o1, OUTSIDE6)
        assert out.run(["ping", "-6", "-c", "1", "-W", "2", ip6[o1]], check=False).returncode == 0
        # The internal one neither, even with a default route.
        lab.docker("h1", "exec", i1, "ip", "-6", "route", "add", "default", "via", gateway6)
        assert not pings6(lab, "h1", i1, OUTSIDE6, wait=2)
        assert not pings6(lab, "h1", i1, HOST6, wait=1), "the host's address off the network"
        assert not pings6(lab, "h1", i1, gateway6, wait=1), "the host is not a member"
        assert out.run(["ping", "-6", "-c", "1", "-W", "2", ip6[i1]], check=False).returncode != 0
        for host, member in ((h1, i1), (h2, i1), (h1, i2)):  # neither host, to its own or the other's container
            assert host.run(["ping", "-6", "-c", "1", "-W", "1", ip6[member]], check=False).returncode != 0, (host, member)
        # Nor the other network's container on the same host, either way.
        assert not pings6(lab, "h1", i1, ip6[o1], wait=1)
        assert not pings6(lab, "h1", o1, ip6[i1], wait=1)
        # Still members: the fence cut nothing between them.
        assert pings6(lab, "h2", i2, ip6[i1])
    finally:
        for prefix in (internal6, routed6):
            out.run(["ip", "-6", "route", "del", prefix], check=False)
        h1.run(["ip", "-6", "addr", "del", f"{HOST6}/64", "dev", "ovsbr0"], check=False)
        out.run(["ip", "-6", "addr", "del", f"{OUTSIDE6}/64", "dev", "out0"], check=False)
        remove(lab, names, [internal, routed])
