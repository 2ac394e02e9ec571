"""IPv6 dual-stack end to end in the lab (real dockerd, OVS with its userspace VXLAN tunnels over the
IPv4 underlay, ZooKeeper): vxlan networks carry one IPv4 and one IPv6 subnet, containers on two hosts
reach each other by their `--ip6`, neighbour solicitations are answered by flows from the records,
overlapping IPv6 subnets stay isolated by VNI; and what is refused, is refused clearly with nothing
stored. The addresses are 2001:db8::/32 (documentation)."""

from __future__ import annotations

import dataclasses
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
from tests.test_vlan import QUICK, host_mac, remove
from tests.test_vxlan import tunnel_flows

SUBNET, SUBNET6 = "100.64.6.0/24", "2001:db8:6::/64"
GATEWAY6 = "2001:db8:6::1"


def create_dual_stack(lab: Lab, name: str, vni: int, hosts=("h1", "h2"), *extra: str) -> None:
    for host in hosts:
        lab.docker(host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--ipv6",
                   "--subnet", SUBNET, "--subnet", SUBNET6, "--ipam-opt", f"vni={vni}", "-o", f"VxlanId={vni}",
                   *extra, name)


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


def test_publishing_on_an_ipv6_host_address_is_refused_clearly_and_the_router_holds_the_ipv6_gateway(lab):
    """The router namespace of a dual-stack network holds its IPv6 gateway; ports are published on the
    host's IPv4 address, so `-p` on an IPv6 host address is refused, naming what the host lacks, where it
    was silently published on the IPv4 address before. The lab's hosts have no global IPv6 address."""
    tag = uuid.uuid4().hex[:4]
    network = f"v6r-{tag}"
    names = {"h1": [f"r1-{tag}", f"r2-{tag}", f"r3-{tag}", f"r4-{tag}"]}
    try:
        create_dual_stack(lab, network, 210, ("h1",))
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "--name", f"r1-{tag}", IMAGE, "sleep", "600")
        inside = lab.node("h1").run(["ip", "netns", "exec", "acsvx-210", "ip", "-6", "addr", "show", "gw0"]).stdout
        assert f"{GATEWAY6}/64" in inside, inside
        for mapping, message in ((["-p", "[::]:8086:80"], "-p [::]:8086:80: host h1 has no global IPv6 address to publish on; "
                                                          "publish on its IPv4 address instead (-p 8086:80)"),
                                 (["-p", "[2001:db8:99::5]:8087:80"], "-p [2001:db8:99::5]:8087:80: host h1 has no IPv6 address 2001:db8:99::5")):
            name = f"r2-{tag}" if "8086:80" in mapping[1] else f"r3-{tag}"
            result = lab.docker("h1", "run", "-d", *QUICK, "--net", network, *mapping, "--name", name, IMAGE, "sleep", "600",
                                check=False)
            assert result.returncode != 0 and message in result.stderr, result.stderr
        # IPv4 publishing is as it was.
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "-p", "8088:80", "--name", f"r4-{tag}", IMAGE, "sleep", "600")
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
        for host in ("h1", "h2"):
            lab.docker(host, "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--ipv6",
                       "--subnet", "198.51.100.0/24", "--gateway", "198.51.100.1",
                       "--subnet", "2001:db8:217::/64", "--gateway", "2001:db8:217::1", "-o", "VlanId=217", network)
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
        fdb = sw.run(["ovs-appctl", "-t", "/run/openvswitch/ovs-vswitchd.ctl", "fdb/show", SWITCH_BRIDGE]).stdout
        vlan_macs = {line.split()[2] for line in fdb.splitlines()[1:] if line.split()[1] == "217"}
        assert vlan_macs and vlan_macs <= known, f"the switch learned other MACs on VLAN 217: {vlan_macs - known}"
        stats = sw.run(["ovs-ofctl", "dump-flows", SWITCH_BRIDGE, "cookie=0x7e56/-1"]).stdout
        (catch_all,) = [line for line in stats.splitlines() if "priority=40" in line]
        assert "n_packets=0," in catch_all, f"the switch saw neighbour solicitations from containers: {catch_all}"
        assert any("n_packets=0," not in line for line in stats.splitlines() if "priority=50" in line), \
            "the counters saw no solicitation at all: the check would prove nothing"
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
        (["--ipv6", *v4, "--subnet", "fd00:84::/64", "--subnet", "fd00:85::/64"],
         "takes one IPv6 subnet per network, got 2: fd00:84::/64, fd00:85::/64"),
        (["--ipv6", "--internal", *v4, "--subnet", "fd00:84::/64"], "internal networks (--internal) are IPv4 only for now"),
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
