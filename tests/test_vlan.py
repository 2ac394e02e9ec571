"""The vlan driver end to end in the lab: real dockerd, OVS (userspace datapath), ZooKeeper, switch and
gateway router. VLAN 217 is 198.51.100.0/24 and VLAN 218 203.0.113.0/24, gateways .1 on the router."""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
import uuid

from acsnet.lab.dockerd import IMAGE
from acsnet.lab.topology import SWITCH_BRIDGE, UPLINK, Lab

V217 = ("198.51.100.0/24", "198.51.100.1", 217)
V218 = ("203.0.113.0/24", "203.0.113.1", 218)
QUICK = ("--stop-timeout", "1")


def create_network(lab: Lab, name: str, spec, hosts=("h1", "h2")) -> None:
    subnet, gateway, vlan = spec
    for host in hosts:
        lab.docker(host, "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", subnet,
                   "--gateway", gateway, "-o", f"VlanId={vlan}", name)


def run(lab: Lab, host: str, name: str, network: str, *extra: str) -> str:
    lab.docker(host, "run", "-d", *QUICK, "--net", network, "--name", name, *extra, IMAGE, "sleep", "3600")
    info = json.loads(lab.docker(host, "inspect", name).stdout)[0]
    return info["NetworkSettings"]["Networks"][network]["IPAddress"]


def pings(lab: Lab, host: str, container: str, address: str, wait: float = 10.0) -> bool:
    """True once one ping gets through within `wait` seconds (a gateway's MAC may still be learned)."""
    deadline = time.monotonic() + wait
    while True:
        if lab.docker(host, "exec", container, "ping", "-c", "1", "-W", "1", address, check=False).returncode == 0:
            return True
        if time.monotonic() > deadline:
            return False


class BackgroundPing:
    """`ping -c COUNT` from a container, running while the test breaks something."""

    def __init__(self, lab: Lab, host: str, container: str, address: str, *, count: int, interval: float):
        self.output = ""
        argv = ("exec", container, "ping", "-c", str(count), "-i", str(interval), "-W", "1", address)
        self._thread = threading.Thread(target=lambda: setattr(self, "output", lab.docker(host, *argv, check=False).stdout))
        self._thread.start()

    def received(self) -> int:
        self._thread.join()
        return int(self.output.split(" packets received")[0].rsplit(",", 1)[1])


def port_of(lab: Lab, host: str, address: str) -> str:
    """The OVS port of the endpoint with this address on the host."""
    return lab.node(host).run(["ovs-vsctl", "--bare", "--columns=name", "find", "interface",
                               f"external_ids:acsnet-ip={address}"]).stdout.split()[0]


def transfer(lab: Lab, sender: tuple[str, str, str], receiver: tuple[str, str]) -> tuple[str, str, float]:
    """8 MiB of random bytes over HTTP (busybox httpd, then wget) from a container `sender` = (host,
    name, address) to `receiver` = (host, name). Returns the md5sums sent and received, and the mean
    size of the packets OVS took from the sender's port meanwhile (over 1514 bytes: whole TCP segments)."""
    host, name, address = sender
    node = lab.node(host)
    port = port_of(lab, host, address)
    bridge = node.run(["ovs-vsctl", "port-to-br", port]).stdout.strip()

    def received_by_ovs() -> tuple[int, int]:
        out = node.run(["ovs-ofctl", "dump-ports", bridge, port]).stdout
        return tuple(int(n) for n in re.search(r"rx pkts=(\d+), bytes=(\d+)", out).groups())

    sent = lab.docker(host, "exec", name, "sh", "-c", "mkdir -p /blob && dd if=/dev/urandom of=/blob/8m bs=1M count=8 2>/dev/null"
                      " && httpd -p 8080 -h /blob && md5sum /blob/8m").stdout.split()[0]
    packets, octets = received_by_ovs()
    got = lab.docker(receiver[0], "exec", receiver[1], "sh", "-c",
                     f"timeout 30 wget -q -O /tmp/8m http://{address}:8080/8m; md5sum /tmp/8m", check=False).stdout.split()
    after = received_by_ovs()
    return sent, got[0] if got else "", (after[1] - octets) / max(after[0] - packets, 1)


def remove(lab: Lab, containers: dict[str, list[str]], networks: list[str]) -> None:
    for host, names in containers.items():
        if names:
            lab.docker(host, "rm", "-f", *names, check=False)
    for host in containers:
        for network in networks:
            lab.docker(host, "network", "rm", network, check=False)


def host_mac(lab: Lab, host: str) -> str:
    return lab.node(host).run(["cat", f"/sys/class/net/{UPLINK}/address"]).stdout.strip()


def flows(lab: Lab, host: str) -> list[str]:
    out = lab.node(host).run(["ovs-ofctl", "--no-stats", "--names", "dump-flows", "ovsbr0"]).stdout
    return sorted(line.strip() for line in out.splitlines() if "cookie=0xac5" in line)


def acsnet_ports(lab: Lab, host: str) -> list[str]:
    """The host's endpoint ports (not the spares made ahead: no endpoint's yet)."""
    return endpoint_ports_of(lab, host)


def endpoint_ports_of(lab: Lab, host: str, driver: str | None = None) -> list[str]:
    out = lab.node(host).run(["ovs-vsctl", "--format=json", "--columns=name,external_ids", "list", "interface"]).stdout
    return sorted(name for name, ids in json.loads(out)["data"] if "acsnet-endpoint" in dict(ids[1])
                  and driver in (None, dict(ids[1]).get("acsnet-driver")))


def spare_ports(lab: Lab, host: str) -> dict[str, dict[str, str]]:
    """The spare pairs' ports made ahead on the host (name -> external_ids)."""
    out = lab.node(host).run(["ovs-vsctl", "--format=json", "--columns=name,external_ids", "list", "interface"]).stdout
    return {name: dict(ids[1]) for name, ids in json.loads(out)["data"] if "acsnet-spare" in dict(ids[1])}


def assert_nothing_left(lab: Lab) -> None:
    for host in ("h1", "h2"):
        # DeleteEndpoint answers before its flows and port go: the plugin's worker takes the flows out
        # as it answers, and the port and veth leave right after, on the plugin's retirer thread.
        deadline = time.monotonic() + 5
        while acsnet_ports(lab, host) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert acsnet_ports(lab, host) == [], f"{host} keeps acsnet ports"
        assert not [f for f in flows(lab, host) if "in_port=vh" in f], f"{host} keeps endpoint flows"
    script = ("import sys; from acsnet.store import open_store; from acsnet.plugins.segments import state; "
              "from acsnet.plugins.segments.model import LAYOUTS; s, v = open_store(sys.argv[1]), LAYOUTS['vlan']; "
              "print(sum(len(state.read_segment_records(s, v, n)) for n in state.segment_numbers(s, v)),"
              " sum(len(state.read_host_endpoints(s, v, h)) for h in state.hosts(s, v))); s.close()")
    counts = lab.node("svc").run([sys.executable, "-c", script, lab.zookeeper_url]).stdout.split()
    assert counts == ["0", "0"], f"store keeps endpoint records: {counts}"
    assert ipam_addresses(lab) == {}, "the IPAM keeps allocations"


def test_same_vlan_across_hosts_gateway_and_isolation(lab):
    tag = uuid.uuid4().hex[:4]
    n217, n218 = f"v217-{tag}", f"v218-{tag}"
    containers = {"h1": [f"a-{tag}", f"d-{tag}"], "h2": [f"b-{tag}"]}
    try:
        create_network(lab, n217, V217)
        create_network(lab, n218, V218)
        a = run(lab, "h1", f"a-{tag}", n217)
        b = run(lab, "h2", f"b-{tag}", n217)
        # The endpoint exists once docker run returned; h1 learns of it through its ZooKeeper watch and
        # programs its ARP proxy within a fraction of a second.
        created = time.monotonic()
        while not any(f"arp_tpa={b}" in f for f in flows(lab, "h1")):
            assert time.monotonic() - created < 1.0, "h1's flows did not follow h2's new endpoint within 1 s"
        print(f"h2's new endpoint in h1's flows {time.monotonic() - created:.2f}s after docker run returned")
        run(lab, "h1", f"d-{tag}", n218, "--cap-add", "NET_ADMIN")

        assert pings(lab, "h1", f"a-{tag}", b) and pings(lab, "h2", f"b-{tag}", a), "same VLAN across hosts"
        assert pings(lab, "h1", f"a-{tag}", V217[1]) and pings(lab, "h2", f"b-{tag}", V217[1]), "gateway of VLAN 217"
        assert pings(lab, "h1", f"d-{tag}", V218[1]), "gateway of VLAN 218"
        # VLAN 218 reaches nothing of VLAN 217: not routed, and not at layer 2 either.
        assert not pings(lab, "h1", f"d-{tag}", b, wait=2)
        lab.docker("h1", "exec", f"d-{tag}", "ip", "route", "add", V217[0], "dev", "eth0")
        assert not pings(lab, "h1", f"d-{tag}", b, wait=2) and not pings(lab, "h1", f"d-{tag}", a, wait=2)

        # TCP across hosts through the userspace datapath.
        lab.docker("h2", "exec", "-d", f"b-{tag}", "nc", "-l", "-p", "5001", "-e", "cat")
        time.sleep(0.3)
        echoed = lab.docker("h1", "exec", f"a-{tag}", "sh", "-c", f"echo across-hosts | timeout 5 nc {b} 5001").stdout
        assert echoed.strip() == "across-hosts"

        # h1's ARP proxy answers for b (on h2) with h2's MAC: the flow is in h1's real table.
        assert any(f"arp_tpa={b}" in f and host_mac(lab, "h2") in f for f in flows(lab, "h1"))
    finally:
        remove(lab, containers, [n217, n218])
    assert_nothing_left(lab)


def test_containers_take_veth_pairs_made_ahead_with_their_own_mac_mtu_and_labels_and_no_tag_change(lab):
    """CreateEndpoint hands a container a veth pair already on the bridge (no port for ovs-vswitchd to
    open on the request path) and another is made after it; what the container gets is what a pair made
    for it would have: dockerd's MAC for it, its network's MTU and VLAN tag, its owner's labels."""
    tag = uuid.uuid4().hex[:4]
    h1 = lab.node("h1")

    def vlan_spares() -> dict[str, dict[str, str]]:
        return {name: ids for name, ids in spare_ports(lab, "h1").items() if ids.get("acsnet-driver") == "vlan"}

    def until(condition, what: str) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.1)

    until(lambda: len(vlan_spares()) == 2, "h1's vlan driver keeps two spare pairs")
    spares = vlan_spares()
    for name in spares:  # a tag no traffic has: the host's own NORMAL-switched frames never reach them
        assert h1.run(["ovs-vsctl", "get", "port", name, "tag"]).stdout.strip() == "4095"
    try:
        lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", V217[0],
                   "--gateway", V217[1], "-o", "VlanId=217", "-o", "com.docker.network.driver.mtu=1400", f"sp-{tag}")
        taken = []
        for n in (1, 2):
            address = run(lab, "h1", f"sp{n}-{tag}", f"sp-{tag}")
            (port,) = h1.run(["ovs-vsctl", "--bare", "--columns=name", "find", "interface",
                              f"external_ids:acsnet-ip={address}"]).stdout.split()
            taken.append(port)
            assert port in spares, (port, spares)
            labels = endpoint_labels(lab, "h1", port)
            assert "acsnet-spare" not in labels and labels["acsnet-driver"] == "vlan", labels
            # still the reserved VLAN: the network's is in its flows, so taking the spare changed no tag
            assert h1.run(["ovs-vsctl", "get", "port", port, "tag"]).stdout.strip() == "4095"
            inside = lab.docker("h1", "exec", f"sp{n}-{tag}", "ip", "link", "show", "eth0").stdout
            assert "mtu 1400" in inside and labels["attached-mac"] in inside, (inside, labels)
            assert h1.run(["cat", f"/sys/class/net/{port}/mtu"]).stdout.strip() == "1400"
            assert pings(lab, "h1", f"sp{n}-{tag}", V217[1])
            until(lambda: len(vlan_spares()) == 2, "a spare made again after one was taken")
            spares = {**spares, **vlan_spares()}
        lab.docker("h1", "rm", "-f", f"sp1-{tag}")
        until(lambda: port_gone(lab, "h1", taken[0]), "the removed container's port retired")
    finally:
        lab.docker("h1", "rm", "-f", f"sp1-{tag}", f"sp2-{tag}", check=False)
        lab.docker("h1", "network", "rm", f"sp-{tag}", check=False)
    assert len(vlan_spares()) == 2


def test_a_removed_containers_pair_is_a_spare_again_and_serves_the_next_container_clean(lab):
    """A container's veth pair comes back to the host when the container is gone (dockerd moves its end
    out of the container's namespace, under its own name), and becomes a spare again instead of leaving
    the bridge while a new pair is made: each was an ovs-vswitchd reconfiguration per container. A spare
    taken is made again only a second later (REFILL_DELAY_SECONDS), so `docker run --rm` (0.3-0.5 s
    here) returns its pair first: the spares, and their veths' indexes, are the same after each run.
    The containers on a pair used before get their own MAC and their own address only (the kernel
    drops what the container set as the end leaves its namespace), and reach the gateway through it."""
    tag = uuid.uuid4().hex[:4]
    h1 = lab.node("h1")

    def vlan_spares() -> dict[str, int]:
        """The vlan driver's spares on h1, each with its veth's index (a pair made again has another)."""
        names = [name for name, ids in spare_ports(lab, "h1").items() if ids.get("acsnet-driver") == "vlan"]
        return {name: int(h1.run(["cat", f"/sys/class/net/{name}/ifindex"]).stdout) for name in names}

    deadline = time.monotonic() + 10
    while len(vlan_spares()) != 2:
        assert time.monotonic() < deadline, "h1's vlan driver keeps two spare pairs"
        time.sleep(0.1)
    try:
        lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", V217[0],
                   "--gateway", V217[1], "-o", "VlanId=217", f"rc-{tag}")
        kept, macs = 0, set()
        for _ in range(3):
            before = vlan_spares()
            out = lab.docker("h1", "run", "--rm", *QUICK, "--net", f"rc-{tag}", IMAGE, "sh", "-c",
                             f"cat /sys/class/net/eth0/address; ip -o -4 addr show eth0; ping -c 1 -W 2 {V217[1]}").stdout
            mac, *lines = out.splitlines()
            assert len([line for line in lines if " inet " in line]) == 1, out  # its own address, nothing left over
            assert mac not in macs, f"a container got the MAC of one before it: {out}"
            macs.add(mac)
            time.sleep(0.5)  # its port's retirement (0.1 s after DeleteEndpoint), now its return as a spare
            kept += vlan_spares() == before
        # Each run counts on finishing within the refill delay; a machine slow enough to miss it once
        # makes a new pair that time (and retires the old), as before.
        assert kept >= 2, f"{kept} of 3 containers' pairs were spares again"
    finally:
        lab.docker("h1", "network", "rm", f"rc-{tag}", check=False)


def endpoint_labels(lab: Lab, host: str, port: str) -> dict[str, str]:
    out = lab.node(host).run(["ovs-vsctl", "--format=json", "--columns=external_ids", "list", "interface", port]).stdout
    return dict(json.loads(out)["data"][0][0][1])


def port_gone(lab: Lab, host: str, port: str) -> bool:
    """Whether neither the port nor its veth is left."""
    listed = lab.node(host).run(["ovs-vsctl", "list-ports", "ovsbr0"]).stdout.split()
    return port not in listed and lab.node(host).run(["ip", "link", "show", port], check=False).returncode != 0


def test_tcp_segments_cross_the_userspace_datapath_whole_and_intact(lab):
    """host-setup turned on OVS's userspace TSO and the container veths keep their offloads: a TCP
    segment of up to 64 KiB crosses OVS as one packet (the userspace datapath's bandwidth depends on it),
    and what arrives on the other host is what was sent."""
    tag = uuid.uuid4().hex[:4]
    network = f"tso-{tag}"
    containers = {"h1": [f"ts1-{tag}"], "h2": [f"ts2-{tag}"]}
    try:
        create_network(lab, network, V217)
        a = run(lab, "h1", f"ts1-{tag}", network)
        run(lab, "h2", f"ts2-{tag}", network)
        sent, received, mean_packet = transfer(lab, ("h1", f"ts1-{tag}", a), ("h2", f"ts2-{tag}"))
        assert received == sent, "the bytes arrived changed or cut short"
        assert mean_packet > 3000, f"OVS took {mean_packet:.0f}-byte packets from the container: segments were cut"
    finally:
        remove(lab, containers, [network])


def test_switch_sees_host_macs_only_and_no_container_arp(lab):
    tag = uuid.uuid4().hex[:4]
    network = f"v217-{tag}"
    names = {h: [f"{h}-{tag}-{i}" for i in range(10)] for h in ("h1", "h2")}
    sw = lab.node("sw")
    router_mac = lab.node("gw").run(["cat", "/sys/class/net/gw-v217/address"]).stdout.strip()
    known = {host_mac(lab, "h1"), host_mac(lab, "h2"), router_mac}
    # Count, on the switch, every ARP request whose sender is not a host or the router.
    counter = "cookie=0x7e57,priority=40,arp,arp_op=1,actions=NORMAL"
    sw.run(["ovs-ofctl", "add-flows", SWITCH_BRIDGE, "-"], input=counter + "\n" + "\n".join(
        f"cookie=0x7e57,priority=50,arp,arp_op=1,arp_sha={mac},actions=NORMAL" for mac in known | {
            sw.run(["cat", "/sys/class/net/sw-svc/address"]).stdout.strip()}) + "\n")
    try:
        create_network(lab, network, V217)
        addresses = {h: [run(lab, h, n, network) for n in names[h]] for h in ("h1", "h2")}
        for h, other in (("h1", "h2"), ("h2", "h1")):
            for name, peer in zip(names[h], addresses[other]):
                assert pings(lab, h, name, peer), f"{name} -> {peer}"
                assert pings(lab, h, name, V217[1]), f"{name} -> gateway"
        assert_switch_saw_only_hosts(sw, known, "0x7e57", "ARP requests")
    finally:
        sw.run(["ovs-ofctl", "del-flows", SWITCH_BRIDGE, "cookie=0x7e57/-1"], check=False)
        remove(lab, names, [network])
    assert_nothing_left(lab)


def assert_switch_saw_only_hosts(sw, known: set[str], cookie: str, counted: str) -> None:
    """The switch learned no MAC on VLAN 217 but `known` ones, and its catch-all counter (cookie,
    priority 40) saw none of the `counted` packets, while the per-known-MAC counters (priority 50) saw
    some, so the check cannot pass by seeing nothing."""
    fdb = sw.run(["ovs-appctl", "-t", "/run/openvswitch/ovs-vswitchd.ctl", "fdb/show", SWITCH_BRIDGE]).stdout
    vlan_macs = {line.split()[2] for line in fdb.splitlines()[1:] if line.split()[1] == "217"}
    assert vlan_macs and vlan_macs <= known, f"the switch learned other MACs on VLAN 217: {vlan_macs - known}"
    stats = sw.run(["ovs-ofctl", "dump-flows", SWITCH_BRIDGE, f"cookie={cookie}/-1"]).stdout
    (catch_all,) = [line for line in stats.splitlines() if "priority=40" in line]
    assert "n_packets=0," in catch_all, f"the switch saw {counted} from containers: {catch_all}"
    assert any("n_packets=0," not in line for line in stats.splitlines() if "priority=50" in line), \
        f"the counters saw no {counted} at all: the check would prove nothing"


def test_bad_options_are_refused_clearly(lab):
    cases = [(["-o", "VlanId=0"], "VlanId must be an integer from 1 to 4094, got 0"),
             (["-o", "VlanId=5000"], "VlanId must be an integer from 1 to 4094, got 5000"),
             (["-o", "vlan_id=abc"], "VlanId must be an integer from 1 to 4094, got 'abc'"),
             ([], "the vlan driver needs a VLAN: -o VlanId=N"),
             (["-o", "VlanId=217", "-o", "com.docker.network.driver.mtu=20"], "must be an integer from 68 to 65535"),
             # The VLAN's router and every system on it reach its containers: acsnet cannot keep --internal's promise.
             (["-o", "VlanId=217", "--internal"], "the vlan driver cannot make an internal network (--internal)")]
    for extra, message in cases:
        result = lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "192.0.2.0/28",
                            *extra, "bad", check=False)
        assert result.returncode != 0 and message in result.stderr, (extra, result.stderr)
    assert "bad" not in lab.network_names("h1")
    tag = uuid.uuid4().hex[:4]
    try:
        create_network(lab, f"ok-{tag}", V217, hosts=("h1",))
        clash = lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "192.0.2.0/28",
                           "-o", "vlanid=217", f"clash-{tag}", check=False)
        assert clash.returncode != 0 and "VLAN 217 is already used on host h1" in clash.stderr, clash.stderr
    finally:
        lab.docker("h1", "network", "rm", f"ok-{tag}", check=False)


def test_serve_vlan_refuses_a_host_that_is_not_set_up(tmp_path):
    from acsnet.lab.host import SimulatedHost
    from acsnet.lab.ovs import OpenVSwitch

    host = SimulatedHost("bare", f"acsnet-b{uuid.uuid4().hex[:4]}", str(tmp_path / "bare")).start()
    try:
        OpenVSwitch(host).start()
        result = host.run([sys.executable, "-m", "acsnet.cli", "serve", "vlan", "--plugin-dir", str(tmp_path)], check=False)
        assert result.returncode == 1
        assert "run 'acsnet host-setup --uplink IFACE --bridge ovsbr0' first" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        host.stop()


def test_host_setup_without_userspace_tso_and_when_ovs_needs_a_restart_for_it(tmp_path):
    """`--no-userspace-tso`: the bridge's port has no TSO (so the drivers keep checksums in the
    containers) and the uplink no TX checksum offload. Asked for TSO afterwards, host-setup turns it on
    and says that ovs-vswitchd, which opened the bridge without it, must restart."""
    from acsnet.lab.host import SimulatedHost
    from acsnet.lab.ovs import OpenVSwitch

    host = SimulatedHost("plain", f"acsnet-n{uuid.uuid4().hex[:4]}", str(tmp_path / "plain")).start()
    try:
        OpenVSwitch(host).start()
        host.run(["ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0-peer"])
        setup = [sys.executable, "-m", "acsnet.cli", "host-setup", "--uplink", "uplink0", "--datapath", "netdev"]
        first = host.run([*setup, "--no-userspace-tso"]).stdout
        assert "segmentation offload" not in first, first
        assert "tcp-segmentation-offload: off" in host.run(["ethtool", "-k", "ovsbr0"]).stdout
        assert "tx-checksumming: off" in host.run(["ethtool", "-k", "uplink0"]).stdout
        again = host.run(setup).stdout
        assert "userspace TCP segmentation offload on" in again and "restart ovs-vswitchd" in again, again
        assert host.run(["ovs-vsctl", "get", "Open_vSwitch", ".", "other_config:userspace-tso-enable"]).stdout.strip() == '"true"'
    finally:
        host.stop()


def offloads_on(lab: Lab, host: str, link: str, netns_of: str | None = None) -> bool:
    """Whether `link` (in container `netns_of`'s namespace, if given) has its TX checksum offload on."""
    enter = []
    if netns_of:
        pid = lab.docker(host, "inspect", "-f", "{{.State.Pid}}", netns_of).stdout.strip()
        enter = ["nsenter", "-t", pid, "-n"]
    return "tx-checksumming: on" in lab.node(host).run([*enter, "ethtool", "-k", link]).stdout


def test_userspace_tso_turned_off_and_on_again_with_restarts_of_ovs_vswitchd(fresh_lab):
    """An operator turns userspace TSO off on a host with containers and spare pairs (`host-setup
    --no-userspace-tso`, then a restart of ovs-vswitchd), and on again. The host's own TCP keeps working
    (its plugins reach ZooKeeper again), the next container takes a spare made before, with its veth's
    TX offloads turned off (the datapath no longer completes them), and its TCP across hosts is intact;
    with TSO back, the next takes a spare made without them, has them turned on, and whole TCP segments
    cross OVS. Each restart's flows are back within a pass of the plugin's worker. Before host-setup
    turned the bridge's port's offloads off, ovs-vswitchd restarted without TSO opened that port (a
    persistent tap) as it was: the host's SYNs left with their checksums undone, and the drivers, which
    read that port, kept veth offloads on."""
    from acsnet.plugins.segments.ports import SPARE_PAIRS
    from tests.test_reliability import healthy

    lab = fresh_lab
    h1, switch = lab.node("h1"), lab.node("sw")
    setup = [sys.executable, "-m", "acsnet.cli", "host-setup", "--uplink", UPLINK, "--datapath", "netdev"]
    # A lab cable is a veth: its switch end hands on checksums the switch's OVS (userspace TSO) left to do,
    # where a real wire carries them done by the NIC. A host whose OVS runs without TSO needs the NIC's
    # work done: that end's TX checksum offload off has its kernel do it.
    cable = "h1-up"

    def wait_for_plugins() -> None:
        deadline = time.monotonic() + 60
        while not all(healthy(lab, "h1", plugin) for plugin in ("vlan", "acsnet")):
            assert time.monotonic() < deadline, "h1's plugins did not reach ZooKeeper again"
            time.sleep(0.5)

    def restart_and_see_the_flows_back() -> None:
        """The restarted ovs-vswitchd has no flows; the plugin's worker installs them again at its next
        pass (every 5 s at most), well before its 30-s periodic check."""
        installed = flows(lab, "h1")
        lab.restart_switch("h1")
        restarted = time.monotonic()
        while h1.run(["ovs-ofctl", "show", "ovsbr0"], check=False).returncode != 0 or flows(lab, "h1") != installed:
            assert time.monotonic() - restarted < 15, "the restarted switch's flows were not back within 15 s"
            time.sleep(0.2)

    def vlan_spares() -> set[str]:
        return {name for name, labels in spare_ports(lab, "h1").items() if labels.get("acsnet-driver") == "vlan"}

    create_network(lab, "v217", V217)
    run(lab, "h1", "first", "v217")  # the vlan plugin makes spares once it has served a container
    run(lab, "h2", "receiver", "v217")
    deadline = time.monotonic() + 20
    while len(made_before := vlan_spares()) < SPARE_PAIRS:
        assert time.monotonic() < deadline, "h1's vlan spares not made"
        time.sleep(0.2)
    assert all(offloads_on(lab, "h1", spare) for spare in made_before)

    off = h1.run([*setup, "--no-userspace-tso"]).stdout
    assert "userspace TCP segmentation offload off" in off and "until it restarts" in off, off
    assert "ovsbr0's TX checksum and segmentation offloads off" in off, off
    switch.run(["ethtool", "-K", cable, "tx", "off"])
    restart_and_see_the_flows_back()
    assert "tcp-segmentation-offload: off" in h1.run(["ethtool", "-k", "ovsbr0"]).stdout
    wait_for_plugins()
    address = run(lab, "h1", "after", "v217")
    assert port_of(lab, "h1", address) in made_before, "the container did not take a spare made before"
    assert not offloads_on(lab, "h1", port_of(lab, "h1", address)) and not offloads_on(lab, "h1", "eth0", "after")
    sent, received, mean_packet = transfer(lab, ("h1", "after", address), ("h2", "receiver"))
    assert received == sent, "the bytes arrived changed or cut short"
    assert mean_packet <= 1514, f"{mean_packet:.0f}-byte packets from the container without TSO"

    more = run(lab, "h1", "after2", "v217")  # takes the other spare made before: those left were made without
    assert port_of(lab, "h1", more) in made_before and not offloads_on(lab, "h1", port_of(lab, "h1", more))
    deadline = time.monotonic() + 20
    while len(made_without := vlan_spares()) < SPARE_PAIRS:
        assert time.monotonic() < deadline, "h1's spares not made again"
        time.sleep(0.2)
    assert not made_without & made_before and not any(offloads_on(lab, "h1", spare) for spare in made_without)
    on = h1.run(setup).stdout
    assert "userspace TCP segmentation offload on" in on, on
    restart_and_see_the_flows_back()
    switch.run(["ethtool", "-K", cable, "tx", "on"])
    assert "tcp-segmentation-offload: on" in h1.run(["ethtool", "-k", "ovsbr0"]).stdout
    wait_for_plugins()
    lab.docker("h1", "rm", "-f", "first", "after", "after2")
    address = run(lab, "h1", "again", "v217")
    assert port_of(lab, "h1", address) in made_without, "the container did not take a spare made without offloads"
    assert offloads_on(lab, "h1", port_of(lab, "h1", address)) and offloads_on(lab, "h1", "eth0", "again")
    sent, received, mean_packet = transfer(lab, ("h1", "again", address), ("h2", "receiver"))
    assert received == sent, "the bytes arrived changed or cut short"
    assert mean_packet > 3000, f"OVS took {mean_packet:.0f}-byte packets from the container: segments were cut"


def test_plugin_sigkill_keeps_traffic_and_restart_rebuilds_nothing_twice(fresh_lab):
    lab = fresh_lab
    create_network(lab, "v217", V217)
    a = run(lab, "h1", "ca", "v217")
    b = run(lab, "h2", "cb", "v217")
    assert pings(lab, "h1", "ca", b)
    before = (flows(lab, "h1"), acsnet_ports(lab, "h1"))

    pinger = BackgroundPing(lab, "h1", "ca", b, count=60, interval=0.1)
    time.sleep(1)
    lab.kill_plugin("h1", "vlan", signal.SIGKILL)
    time.sleep(1)
    lab.start_plugin("h1", "vlan")
    assert pinger.received() >= 50, f"more than a second of packets lost: {pinger.output[-200:]}"

    after = (flows(lab, "h1"), acsnet_ports(lab, "h1"))
    assert after == before, "the restarted plugin rebuilt the same state, no more, no less"
    c = run(lab, "h1", "cc", "v217")  # and it serves new containers
    assert pings(lab, "h1", "cc", a) and pings(lab, "h2", "cb", c)


def test_pinned_ip_moves_to_another_host_and_the_gateway_follows(fresh_lab):
    lab = fresh_lab
    pinned = "198.51.100.110"
    create_network(lab, "v217", V217)
    run(lab, "h1", "app", "v217", "--ip", pinned)
    gw = lab.node("gw")
    gw.run(["ping", "-c", "1", "-W", "2", pinned])
    assert host_mac(lab, "h1") in gw.run(["ip", "neigh", "show", pinned]).stdout

    lab.power_off("h1")
    # The address is h1's until its ZooKeeper session expires; then h2 may take it over.
    deadline = time.monotonic() + 40
    while lab.docker("h2", "run", "-d", *QUICK, "--net", "v217", "--ip", pinned, "--name", "app", IMAGE, "sleep", "3600",
                     check=False).returncode != 0:
        lab.docker("h2", "rm", "-f", "app", check=False)
        assert time.monotonic() < deadline, "h2 never got the address of the dead host"
        time.sleep(1)
    started = time.monotonic()
    # The router still has h1's MAC for the address; the gratuitous ARP from h2 must fix that at once.
    while gw.run(["ping", "-c", "1", "-W", "1", pinned], check=False).returncode != 0:
        assert time.monotonic() - started < 2.0, "the gateway did not reach the moved address within 2 s"
    assert host_mac(lab, "h2") in gw.run(["ip", "neigh", "show", pinned]).stdout


def test_host_setup_is_idempotent_and_network_options_are_honoured(lab):
    h1 = lab.node("h1")
    again = h1.run([sys.executable, "-m", "acsnet.cli", "host-setup", "--uplink", UPLINK, "--datapath", "netdev"])
    assert "nothing to do, already set up" in again.stdout
    # The userspace datapath with TCP segmentation offload, in effect on the bridge's own port.
    assert h1.run(["ovs-vsctl", "get", "Open_vSwitch", ".", "other_config:userspace-tso-enable"]).stdout.strip() == '"true"'
    assert "tcp-segmentation-offload: on" in h1.run(["ethtool", "-k", "ovsbr0"]).stdout
    assert h1.run(["ip", "-4", "-o", "addr", "show", "ovsbr0"]).stdout.count("inet ") == 1
    h1.run(["ping", "-c", "1", "-W", "2", "192.0.2.12"])

    tag = uuid.uuid4().hex[:4]
    router_mac = lab.node("gw").run(["cat", "/sys/class/net/gw-v217/address"]).stdout.strip()
    try:
        lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", V217[0],
                   "--gateway", V217[1], "-o", "VlanId=217", "-o", "com.docker.network.driver.mtu=1400",
                   "-o", f"gateway_mac={router_mac}", f"opts-{tag}")
        # A given gateway MAC is used at once: the ARP proxy already answers for the gateway with it.
        assert any(f"arp_tpa={V217[1]}" in f and router_mac in f for f in flows(lab, "h1"))
        run(lab, "h1", f"opts-{tag}", f"opts-{tag}", "--mac-address", "02:42:aa:bb:cc:01")
        inside = lab.docker("h1", "exec", f"opts-{tag}", "ip", "link", "show", "eth0").stdout
        assert "mtu 1400" in inside and "02:42:aa:bb:cc:01" in inside
        assert pings(lab, "h1", f"opts-{tag}", V217[1])
    finally:
        lab.docker("h1", "rm", "-f", f"opts-{tag}", check=False)
        lab.docker("h1", "network", "rm", f"opts-{tag}", check=False)


def test_host_reboot_leaves_nothing_stale_and_containers_come_back(fresh_lab):
    lab = fresh_lab
    create_network(lab, "v217", V217)
    pinned = "198.51.100.120"
    run(lab, "h1", "app", "v217", "--ip", pinned)
    b = run(lab, "h2", "peer", "v217")
    assert pings(lab, "h2", "peer", pinned)
    old_port = [p for p in acsnet_ports(lab, "h1")]
    assert len(old_port) == 1

    lab.power_off("h1")
    lab.power_on("h1")
    # The endpoint of the container that died with the host is gone from OVS, the flows and the store.
    # The restarted plugin removes the dead veth's port on its retirer thread after its first sync, so
    # this waits for that rather than reading the bridge at the instant the plugin came up.
    def nothing_stale() -> bool:
        return acsnet_ports(lab, "h1") == [] and not [
            f for f in flows(lab, "h1") if "in_port=vh" in f or f"arp_tpa={pinned}" in f]
    deadline = time.monotonic() + 20
    while not nothing_stale():
        assert time.monotonic() < deadline, f"stale after reboot: {acsnet_ports(lab, 'h1')}"
        time.sleep(0.2)
    # dockerd kept the network (local scope, in its own store); the container starts again with its IP.
    lab.docker("h1", "start", "app")
    assert pings(lab, "h1", "app", b) and pings(lab, "h2", "peer", pinned)
    assert len(acsnet_ports(lab, "h1")) == 1
    # and no address is held twice or leaked: the gateway (one record, both hosts), app, peer.
    assert ipam_addresses(lab) == {V217[1]: ["h1", "h2"], pinned: ["h1"], b: ["h2"]}


def ipam_addresses(lab: Lab) -> dict[str, list[str]]:
    script = ("import json, sys; from acsnet.store import open_store; from acsnet.ipam.state import AddressRecords; "
              "s = open_store(sys.argv[1]); print(json.dumps({a: list(r.holders) for _, a, r in AddressRecords.read_all(s)})); "
              "s.close()")
    return json.loads(lab.node("svc").run([sys.executable, "-c", script, lab.zookeeper_url]).stdout)


def test_gateway_mac_is_learned_soon_after_the_gateway_comes_back(lab):
    tag = uuid.uuid4().hex[:4]
    gw = lab.node("gw")
    gw.run(["ip", "link", "set", "gw-v217", "down"])
    try:
        create_network(lab, f"late-{tag}", V217, hosts=("h1",))
        run(lab, "h1", f"late-{tag}", f"late-{tag}")
        time.sleep(2)  # the first probes go unanswered
        assert not any(f"arp_tpa={V217[1]}" in f for f in flows(lab, "h1"))
    finally:
        gw.run(["ip", "link", "set", "gw-v217", "up"])
    try:
        assert pings(lab, "h1", f"late-{tag}", V217[1], wait=8), "the gateway's MAC was not learned soon after it came back"
    finally:
        lab.docker("h1", "rm", "-f", f"late-{tag}", check=False)
        lab.docker("h1", "network", "rm", f"late-{tag}", check=False)


def test_a_global_scope_vlan_network_made_on_one_host_spans_both(tmp_path):
    """dockerd 20.10 with a cluster store (the lab's --scope global): `docker network create` on h1 only;
    h2 sees the network as global and runs containers on it, which reach h1's across the switch and the
    VLAN's gateway, with addresses from the one pool. Removed from h2, it leaves nothing on either host."""
    lab = Lab(str(tmp_path / "lab"), f"acsnet-l{uuid.uuid4().hex[:4]}")
    try:
        lab.up(hosts=2, scope="global")
        create_network(lab, "gv217", V217, hosts=("h1",))
        deadline = time.monotonic() + 10
        while "gv217" not in lab.network_names("h2"):
            assert time.monotonic() < deadline, "the network created on h1 never appeared on h2"
            time.sleep(0.2)
        for host in ("h1", "h2"):
            info = json.loads(lab.docker(host, "network", "inspect", "gv217").stdout)[0]
            assert (info["Scope"], info["Driver"], info["Options"]) == ("global", "vlan", {"VlanId": "217"}), info
        a = run(lab, "h1", "ga", "gv217")
        b = run(lab, "h2", "gb", "gv217")
        assert a != b and a.startswith("198.51.100.") and b.startswith("198.51.100."), (a, b)
        assert pings(lab, "h1", "ga", b) and pings(lab, "h2", "gb", a)
        assert pings(lab, "h2", "gb", V217[1]), "h2's container does not reach the VLAN's gateway"
        lab.docker("h1", "rm", "-f", "ga")
        lab.docker("h2", "rm", "-f", "gb")
        lab.docker("h2", "network", "rm", "gv217")
        for host in ("h1", "h2"):
            assert "gv217" not in lab.network_names(host)
        assert_nothing_left(lab)
    finally:
        lab.down()
    assert lab.leftovers() == []
