"""The vxlan driver end to end in the lab: real dockerd, OVS (userspace datapath, userspace VXLAN
tunnels), ZooKeeper. Two networks share the subnet 100.64.1.0/24 on VNIs 110 and 120."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import sys
import time
import uuid

from acsnet.lab.dockerd import IMAGE
from acsnet.lab.layout import ZOOKEEPER_ADDRESSES
from acsnet.lab.topology import OUTSIDE_ADDRESS as OUTSIDE
from acsnet.lab.topology import Lab
from tests.conftest import LAB_OPTIONS
from tests.test_vlan import QUICK, pings, remove, transfer

SUBNET = "100.64.1.0/24"
VTEPS = {"h1": "192.0.2.11", "h2": "192.0.2.12", "h3": "192.0.2.13"}


def create_vxlan(lab: Lab, name: str, vni: int, hosts=("h1", "h2"), *extra: str) -> None:
    # Local scope: each host creates the network. The IPAM shares a local pool between networks of
    # the same subnet and options, so networks that overlap on purpose tell it apart with an ipam-opt.
    for host in hosts:
        lab.docker(host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", SUBNET,
                   "--ipam-opt", f"vni={vni}", "-o", f"VxlanId={vni}", *extra, name)


def serve(lab: Lab, host: str, name: str, network: str, ip: str) -> None:
    """A container whose web page is its own name, so a reply says who answered."""
    script = f"mkdir /www && echo {name} > /www/index.html && exec httpd -f -p 80 -h /www"
    lab.docker(host, "run", "-d", *QUICK, "--net", network, "--ip", ip, "--name", name, IMAGE, "sh", "-c", script)


def fetch(lab: Lab, host: str, container: str, address: str) -> str:
    result = lab.docker(host, "exec", container, "timeout", "5", "wget", "-q", "-O", "-", f"http://{address}/", check=False)
    return result.stdout.strip()


def tunnel_flows(lab: Lab, host: str) -> list[str]:
    out = lab.node(host).run(["ovs-ofctl", "--no-stats", "--names", "dump-flows", "acsvx0"]).stdout
    return [line.strip() for line in out.splitlines() if "cookie=0xac6" in line]


def points_at(flow: str, host: str) -> bool:
    """The flow sends to the host's VTEP (ovs-ofctl prints set_field:IP->tun_dst as a load of its hex)."""
    vtep = VTEPS[host]
    return f"{vtep}->tun_dst" in flow or f"load:{int(ipaddress.IPv4Address(vtep)):#x}->NXM_NX_TUN_IPV4_DST[]" in flow


def mtu(lab: Lab, host: str, container: str) -> int:
    return int(lab.docker(host, "exec", container, "cat", "/sys/class/net/eth0/mtu").stdout)


def test_overlapping_networks_across_hosts_are_isolated(lab):
    tag = uuid.uuid4().hex[:4]
    a, b = f"vx110-{tag}", f"vx120-{tag}"
    names = {"h1": [f"n11-{tag}", f"n22-{tag}"], "h2": [f"n12-{tag}", f"n21-{tag}", f"n13-{tag}"]}
    try:
        create_vxlan(lab, a, 110)
        create_vxlan(lab, b, 120)
        serve(lab, "h1", f"n11-{tag}", a, "100.64.1.10")
        serve(lab, "h2", f"n12-{tag}", a, "100.64.1.11")
        serve(lab, "h2", f"n13-{tag}", a, "100.64.1.12")
        serve(lab, "h2", f"n21-{tag}", b, "100.64.1.10")  # same address, other network: allowed
        serve(lab, "h1", f"n22-{tag}", b, "100.64.1.11")

        # Across hosts, each network reaches its own container of an address both networks use.
        assert pings(lab, "h1", f"n11-{tag}", "100.64.1.11")
        assert fetch(lab, "h1", f"n11-{tag}", "100.64.1.11") == f"n12-{tag}"
        assert fetch(lab, "h2", f"n12-{tag}", "100.64.1.10") == f"n11-{tag}"
        assert fetch(lab, "h2", f"n21-{tag}", "100.64.1.11") == f"n22-{tag}"
        assert fetch(lab, "h1", f"n22-{tag}", "100.64.1.10") == f"n21-{tag}"
        # Same host, same network; and nothing of network a is reachable from network b.
        assert fetch(lab, "h2", f"n12-{tag}", "100.64.1.12") == f"n13-{tag}"
        assert not pings(lab, "h2", f"n21-{tag}", "100.64.1.12", wait=2)
        assert not pings(lab, "h1", f"n22-{tag}", "100.64.1.12", wait=2)

        # The inner MTU leaves room for the 50 bytes of VXLAN encapsulation on the 1500-byte underlay.
        assert mtu(lab, "h1", f"n11-{tag}") == 1450
        # Segmented in the container (OVS 3.1 drops a TSO packet at a tunnel port), intact across hosts.
        sent, received, mean_packet = transfer(lab, ("h1", f"n11-{tag}", "100.64.1.10"), ("h2", f"n12-{tag}"))
        assert received == sent and mean_packet <= 1464, (sent, received, mean_packet)
        # One tunnel port; each remote MAC is sent to its VTEP by a flow; nothing is flooded.
        ports = lab.node("h1").run(["ovs-vsctl", "list-ports", "acsvx0"]).stdout.split()
        assert [p for p in ports if not p.startswith(("vh", "vg"))] == ["acsvtep"]  # vg: the routers
        flows = tunnel_flows(lab, "h1")
        to_h2 = [f for f in flows if points_at(f, "h2")]
        assert len(to_h2) == 3 and all("dl_dst=02:42:" in f for f in to_h2), to_h2
        assert not any("FLOOD" in f or "ALL" in f or "NORMAL" in f for f in flows)
    finally:
        remove(lab, names, [a, b])
    for host in ("h1", "h2"):
        assert [f for f in tunnel_flows(lab, host) if "TUN_IPV4_DST" in f or "tun_dst" in f or "output:vh" in f] == []


def test_mtu_option_and_bad_options_are_refused_clearly(lab):
    tag = uuid.uuid4().hex[:4]
    network = f"vxm-{tag}"
    try:
        lab.docker("h1", "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", "100.64.2.0/24",
                   "-o", "VxlanId=130", "-o", "com.docker.network.driver.mtu=1400", network)
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "--name", f"m-{tag}", IMAGE, "sleep", "600")
        assert mtu(lab, "h1", f"m-{tag}") == 1400
        for option, message in (("VxlanId=0", "VxlanId must be an integer from 1 to 16777215"),
                                ("VxlanId=16777216", "VxlanId must be an integer from 1 to 16777215"),
                                ("VxlanId=abc", "VxlanId must be an integer"),
                                ("VxlanId=12000000", "range acsnet generates VNIs from")):
            result = lab.docker("h1", "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet",
                                "--subnet", "100.64.3.0/24", "-o", option, f"bad-{tag}", check=False)
            assert result.returncode != 0 and message in result.stderr, (option, result.stderr)
        # Refused on the subnet of a network in use: dockerd undoes its pool and gateway requests,
        # and the network keeps its own (the next container got the gateway's address before).
        result = lab.docker("h1", "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet",
                            "--subnet", "100.64.2.0/24", "-o", "VxlanId=0", f"bad-{tag}", check=False)
        assert result.returncode != 0 and "VxlanId must be an integer" in result.stderr, result.stderr
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "--name", f"n-{tag}", IMAGE, "sleep", "600")
        address = lab.docker("h1", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', f"n-{tag}").stdout.strip()
        assert address not in ("", "100.64.2.1"), address
        assert pings(lab, "h1", f"n-{tag}", "100.64.2.1")
    finally:
        remove(lab, {"h1": [f"m-{tag}", f"n-{tag}"]}, [network])


def test_generated_vni_is_the_same_on_every_host(lab):
    tag = uuid.uuid4().hex[:4]
    network = f"vxg-{tag}"
    try:
        for host in ("h1", "h2"):
            lab.docker(host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", "100.64.4.0/24", network)
        lab.docker("h1", "run", "-d", *QUICK, "--net", network, "--name", f"g1-{tag}", IMAGE, "sleep", "600")
        lab.docker("h2", "run", "-d", *QUICK, "--net", network, "--name", f"g2-{tag}", IMAGE, "sleep", "600")
        address = json.loads(lab.docker("h2", "inspect", f"g2-{tag}").stdout)[0]["NetworkSettings"]["Networks"][network]["IPAddress"]
        assert pings(lab, "h1", f"g1-{tag}", address)
        vnis = {int(m, 0) for f in tunnel_flows(lab, "h1") if "in_port=acsvtep" in f
                for m in re.findall(r"tun_id=(0x[0-9a-f]+|\d+)", f)}
        assert any(v >= 10_000_000 for v in vnis), vnis
    finally:
        remove(lab, {"h1": [f"g1-{tag}"], "h2": [f"g2-{tag}"]}, [network])


def test_dead_host_routes_are_withdrawn_and_its_ip_comes_back_elsewhere(tmp_path):
    lab = Lab(str(tmp_path / "lab"), f"acsnet-v{uuid.uuid4().hex[:4]}")
    try:
        lab.up(hosts=3, **LAB_OPTIONS)
        create_vxlan(lab, "vx", 140, hosts=("h1", "h2", "h3"))
        serve(lab, "h1", "app", "vx", "100.64.1.20")
        serve(lab, "h3", "client", "vx", "100.64.1.30")
        assert fetch(lab, "h3", "client", "100.64.1.20") == "app"
        assert any(points_at(f, "h1") for f in tunnel_flows(lab, "h3"))

        lab.power_off("h1")
        # Once h1's ZooKeeper session expires, every host drops its routes to h1 and h2 may take the address.
        deadline = time.monotonic() + 40
        while any(points_at(f, "h1") for h in ("h2", "h3") for f in tunnel_flows(lab, h)):
            assert time.monotonic() < deadline, "routes to the dead host's VTEP were kept"
            time.sleep(0.5)
        while lab.docker("h2", "run", "-d", *QUICK, "--net", "vx", "--ip", "100.64.1.20", "--name", "app", IMAGE,
                         "sh", "-c", "mkdir /www && echo moved > /www/index.html && exec httpd -f -p 80 -h /www",
                         check=False).returncode != 0:
            lab.docker("h2", "rm", "-f", "app", check=False)
            assert time.monotonic() < deadline, "h2 never got the address of the dead host"
            time.sleep(1)
        started = time.monotonic()
        while fetch(lab, "h3", "client", "100.64.1.20") != "moved":
            assert time.monotonic() - started < 5, "the moved container was not reachable within 5 s"
        assert [f for f in tunnel_flows(lab, "h3") if points_at(f, "h1")] == []
    finally:
        lab.down()
    assert lab.leftovers() == []


def test_on_a_jumbo_frame_underlay_vxlan_networks_take_8950_and_carry_whole_frames(tmp_path):
    """A data center's VXLAN fabric runs on jumbo frames so that its overlays need not be cut to 1450:
    with the lab network's cables at 9000, host-setup gives the host bridge the uplink's 9000 and a vxlan
    network made without an MTU option has 8950 (the uplink's, less VXLAN's 50)."""
    lab = Lab(str(tmp_path / "lab"), f"acsnet-j{uuid.uuid4().hex[:4]}")
    try:
        lab.up(hosts=2, underlay_mtu=9000, **LAB_OPTIONS)
        assert all(lab.node(h).run(["cat", "/sys/class/net/ovsbr0/mtu"]).stdout.strip() == "9000" for h in ("h1", "h2"))
        create_vxlan(lab, "vxj", 150)
        serve(lab, "h1", "j1", "vxj", "100.64.1.21")
        serve(lab, "h2", "j2", "vxj", "100.64.1.22")
        assert (mtu(lab, "h1", "j1"), mtu(lab, "h2", "j2")) == (8950, 8950)
        # A whole 8950-byte packet, not to be fragmented, crosses from h1's container to h2's and back.
        pid = lab.docker("h1", "inspect", "-f", "{{.State.Pid}}", "j1").stdout.strip()
        deadline = time.monotonic() + 10
        while True:
            ping = lab.node("h1").run(["nsenter", "-t", pid, "-n", "--", "ping", "-c", "1", "-W", "1", "-M", "do",
                                       "-s", str(8950 - 28), "100.64.1.22"], check=False)
            if ping.returncode == 0 or time.monotonic() > deadline:
                break
        assert ping.returncode == 0, ping.stdout + ping.stderr
        sent, received, mean_packet = transfer(lab, ("h1", "j1", "100.64.1.21"), ("h2", "j2"))
        assert sent == received
        assert mean_packet > 1514, mean_packet  # jumbo frames (or whole TCP segments on OVS 3.5), not 1450s
    finally:
        lab.down()
    assert lab.leftovers() == []


def outside_get(lab: Lab, url: str) -> str | None:
    """GET from the lab's outside host (a load balancer, say); None if nothing answers."""
    script = ("import sys, urllib.request\ntry:\n    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())\n"
              "except OSError:\n    sys.exit(1)")
    result = lab.node("out").run([sys.executable, "-c", script, url], check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def test_published_ports_and_snat_work_for_overlapping_subnets(lab, tmp_path):
    tag = uuid.uuid4().hex[:4]
    a, b = f"vxp1-{tag}", f"vxp2-{tag}"
    names = {"h1": [f"web1-{tag}", f"web2-{tag}"]}
    www = tmp_path / "www"
    www.mkdir()
    (www / "marker").write_text("outside\n")
    server = lab.node("out").popen([sys.executable, "-m", "http.server", "8000", "--directory", str(www)],
                                   str(tmp_path / "http.log"))
    try:
        for name, vni in ((a, 150), (b, 151)):
            lab.docker("h1", "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", "100.64.5.0/24",
                       "--ipam-opt", f"vni={vni}", "-o", f"VxlanId={vni}", name)
        for name, network, port in ((f"web1-{tag}", a, 8080), (f"web2-{tag}", b, 8081)):
            script = f"mkdir /www && echo {name} > /www/index.html && exec httpd -f -p 80 -h /www"
            lab.docker("h1", "run", "-d", *QUICK, "--net", network, "--ip", "100.64.5.10", "-p", f"{port}:80",
                       "--name", name, IMAGE, "sh", "-c", script)

        # DNAT: each published port reaches its own container, although both have the same address.
        assert outside_get(lab, f"http://{VTEPS['h1']}:8080/") == f"web1-{tag}"
        assert outside_get(lab, f"http://{VTEPS['h1']}:8081/") == f"web2-{tag}"
        report = json.loads(lab.node("h1").run([sys.executable, "-m", "acsnet.cli", "inspect", "network", a, "--json",
                                                "--store", lab.zookeeper_url, "--host-id", "h1"]).stdout)
        assert [(e["container"], e["published"]) for e in report["endpoints"]] == [(f"web1-{tag}", "8080->80")]
        # SNAT: a container reaches what the host reaches, seen from outside as the host's address.
        for container in names["h1"]:
            assert lab.docker("h1", "exec", container, "timeout", "5", "wget", "-q", "-O", "-",
                              f"http://{OUTSIDE}:8000/marker").stdout.strip() == "outside"
        assert (tmp_path / "http.log").read_text().count(f"{VTEPS['h1']} - -") >= 2

        lab.docker("h1", "rm", "-f", f"web1-{tag}")
        assert outside_get(lab, f"http://{VTEPS['h1']}:8080/") is None, "the port stays published after docker rm"
        assert outside_get(lab, f"http://{VTEPS['h1']}:8081/") == f"web2-{tag}"
    finally:
        server.kill()
        server.wait()
        remove(lab, names, [a, b])
    assert lab.node("h1").run(["ip", "netns", "list"]).stdout.count("acsvx-15") == 0, "routers outlive their networks"


def routes(lab: Lab, host: str, container: str) -> str:
    return lab.docker(host, "exec", container, "ip", "route").stdout


def test_internal_network_reaches_its_members_only(lab, tmp_path):
    """--internal: containers on two hosts reach each other, and nothing else; published ports are
    refused. A network that is not internal, beside it, reaches the outside host (the test can fail)."""
    tag = uuid.uuid4().hex[:4]
    internal, routed = f"vxi-{tag}", f"vxo-{tag}"
    names = {"h1": [f"i1-{tag}", f"o1-{tag}", f"i3-{tag}", f"ip-{tag}"], "h2": [f"i2-{tag}"]}
    www = tmp_path / "www"
    www.mkdir()
    (www / "marker").write_text("outside\n")
    server = lab.node("out").popen([sys.executable, "-m", "http.server", "8000", "--directory", str(www)],
                                   str(tmp_path / "http.log"))
    outside, gateway = f"http://{OUTSIDE}:8000/marker", "100.64.6.1"
    try:
        for host in ("h1", "h2"):
            lab.docker(host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--internal",
                       "--subnet", "100.64.6.0/24", "--gateway", gateway, "-o", "VxlanId=160", internal)
        lab.docker("h1", "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", "100.64.8.0/24",
                   "-o", "VxlanId=161", routed)
        assert json.loads(lab.docker("h1", "network", "inspect", internal).stdout)[0]["Internal"] is True
        serve(lab, "h1", f"i1-{tag}", internal, "100.64.6.10")
        serve(lab, "h2", f"i2-{tag}", internal, "100.64.6.11")
        lab.docker("h1", "run", "-d", *QUICK, "--net", routed, "--name", f"o1-{tag}", IMAGE, "sleep", "600")

        # Members reach each other across hosts.
        assert fetch(lab, "h1", f"i1-{tag}", "100.64.6.11") == f"i2-{tag}"
        assert fetch(lab, "h2", f"i2-{tag}", "100.64.6.10") == f"i1-{tag}"
        # The network beside it reaches the outside host; the internal one has no route off its subnet...
        assert lab.docker("h1", "exec", f"o1-{tag}", "timeout", "5", "wget", "-q", "-O", "-", outside).stdout.strip() == "outside"
        assert "default" not in routes(lab, "h1", f"i1-{tag}"), routes(lab, "h1", f"i1-{tag}")
        assert lab.docker("h1", "exec", f"i1-{tag}", "timeout", "5", "wget", "-q", "-O", "-", outside, check=False).returncode != 0
        # ...nor a way off it when a container makes one itself: no router answers for the gateway.
        lab.docker("h1", "run", "-d", *QUICK, "--cap-add", "NET_ADMIN", "--net", internal, "--name", f"i3-{tag}",
                   IMAGE, "sleep", "600")
        lab.docker("h1", "exec", f"i3-{tag}", "ip", "route", "add", "default", "via", gateway)
        assert not pings(lab, "h1", f"i3-{tag}", OUTSIDE, wait=2)
        assert lab.docker("h1", "exec", f"i3-{tag}", "timeout", "5", "wget", "-q", "-O", "-", outside, check=False).returncode != 0
        assert "acsvx-160" not in lab.node("h1").run(["ip", "netns", "list"]).stdout, "an internal network got a router"
        assert not any("docker_gwbridge" in line for line in lab.docker("h1", "network", "ls").stdout.splitlines())
        # Nothing outside reaches in: a published port is refused, naming the reason.
        published = lab.docker("h1", "run", "-d", *QUICK, "--net", internal, "-p", "8090:80", "--name", f"ip-{tag}",
                               IMAGE, "sleep", "600", check=False)
        assert published.returncode != 0 and "is internal (--internal)" in published.stderr, published.stderr
        assert "8090:80" in published.stderr

        # The network stays internal across a plugin restart (its options are in the store).
        lab.kill_plugin("h1", "vxlan")
        lab.start_plugin("h1", "vxlan")
        lab.docker("h1", "rm", "-f", f"i3-{tag}")
        lab.docker("h1", "run", "-d", *QUICK, "--net", internal, "--name", f"i3-{tag}", IMAGE, "sleep", "600")
        assert "default" not in routes(lab, "h1", f"i3-{tag}")
        assert fetch(lab, "h1", f"i3-{tag}", "100.64.6.11") == f"i2-{tag}"
        assert "acsvx-160" not in lab.node("h1").run(["ip", "netns", "list"]).stdout
        report = json.loads(lab.node("h1").run([sys.executable, "-m", "acsnet.cli", "inspect", "network", internal, "--json",
                                                "--store", lab.zookeeper_url, "--host-id", "h1"]).stdout)
        assert report["internal"] is True
        assert (tmp_path / "http.log").read_text().count("GET /marker") == 1, "only the routed network's container got out"
    finally:
        server.kill()
        server.wait()
        remove(lab, names, [internal, routed])


def test_a_recreated_container_is_reached_at_once_on_its_peers_host_and_on_another(lab):
    """A container removed and made again with its address (a new MAC) on the host of a peer that
    talked to it, then back on another host: the peer's neighbour entry follows at once, instead of
    keeping the old MAC (whose frames match no flow) until it expires (~25 s)."""
    tag = uuid.uuid4().hex[:4]
    network = f"vxm-{tag}"
    names = {"h1": [f"c1-{tag}", f"c1c-{tag}"], "h2": [f"c2-{tag}", f"c1b-{tag}"]}
    try:
        create_vxlan(lab, network, 170)
        serve(lab, "h1", f"c1-{tag}", network, "100.64.1.10")
        serve(lab, "h2", f"c2-{tag}", network, "100.64.1.11")
        macs = set()
        for old, (host, new) in ((f"c1-{tag}", ("h2", f"c1b-{tag}")), (f"c1b-{tag}", ("h1", f"c1c-{tag}"))):
            old_host = "h1" if old in names["h1"] else "h2"
            assert fetch(lab, "h2", f"c2-{tag}", "100.64.1.10") == old  # c2's neighbour entry: the old MAC
            macs.add(json.loads(lab.docker(old_host, "inspect", old).stdout)[0]["NetworkSettings"]["Networks"][network]["MacAddress"])
            lab.docker(old_host, "rm", "-f", old)
            serve(lab, host, new, network, "100.64.1.10")
            started = time.monotonic()
            while fetch(lab, "h2", f"c2-{tag}", "100.64.1.10") != new:
                assert time.monotonic() - started < 8, f"c2 did not reach the container recreated on {host} within 8 s"
            print(f"recreated on {host}: reached after {time.monotonic() - started:.1f}s")
            macs.add(json.loads(lab.docker(host, "inspect", new).stdout)[0]["NetworkSettings"]["Networks"][network]["MacAddress"])
        assert len(macs) == 3, f"the recreated containers kept one MAC, so this test shows nothing: {macs}"
    finally:
        remove(lab, names, [network])


def test_vxlan_hosts_following_their_segments_through_a_store_relay_reach_each_other_and_go_on_without_it(lab):
    """`acsnet relay` on the services node and the vxlan plugins of h1 and h2 started with `--relay`: the
    relay follows the network's segment, the plugins say they follow through it, and containers on the
    two hosts reach each other; the relay killed, a container made after is still reached (the
    plugins follow the segment on their own sessions)."""
    tag = uuid.uuid4().hex[:4]
    network, vni = f"vxr-{tag}", 185
    names = {"h1": [f"r1-{tag}", f"r3-{tag}"], "h2": [f"r2-{tag}"]}
    svc = lab.node("svc")
    address = f"{ZOOKEEPER_ADDRESSES[0]}:7405"  # the services node, which every host reaches
    relay_log = os.path.join(svc.workdir, f"relay-{tag}.log")
    relay = svc.popen([sys.executable, "-m", "acsnet.cli", "relay", "--store", lab.zookeeper_url, "--listen", address,
                       "--insecure"], relay_log)
    try:
        wait_for_text(relay_log, "relay: serving", 30)
        for host in ("h1", "h2"):
            lab.kill_plugin(host, "vxlan", signal.SIGTERM)
            lab.start_plugin(host, "vxlan", "--relay", address)
        create_vxlan(lab, network, vni)
        serve(lab, "h1", f"r1-{tag}", network, "100.64.1.20")
        serve(lab, "h2", f"r2-{tag}", network, "100.64.1.21")
        assert fetch(lab, "h2", f"r2-{tag}", "100.64.1.20") == f"r1-{tag}"
        assert fetch(lab, "h1", f"r1-{tag}", "100.64.1.21") == f"r2-{tag}"
        wait_for_text(relay_log, f"relay: following /acsnet/vxlan/segments/{vni}", 10)
        for host in ("h1", "h2"):
            assert f"store relay {address} connected" in lab.log_tail(host, 100_000), f"{host}'s vxlan plugin"
        assert relay_shown(lab, "h2") == (address, address)  # in /healthz, and as a column of `acsnet status`

        relay.kill()
        relay.wait(10)
        serve(lab, "h1", f"r3-{tag}", network, "100.64.1.22")
        started = time.monotonic()
        while fetch(lab, "h2", f"r2-{tag}", "100.64.1.22") != f"r3-{tag}":
            assert time.monotonic() - started < 15, "h2 did not reach a container made after its relay died"
        assert f"store relay {address} gone" in lab.log_tail("h2", 100_000)
        assert relay_shown(lab, "h2") == ("away (watches direct)",) * 2  # and still healthy
        assert "Traceback" not in lab.log_tail("h2", 100_000)[-20_000:]
    finally:
        if relay.poll() is None:
            relay.kill()
        remove(lab, names, [network])
        for host in ("h1", "h2"):  # as the session's other tests expect them: no relay
            lab.kill_plugin(host, "vxlan", signal.SIGTERM)
            lab.start_plugin(host, "vxlan")


def relay_shown(lab, host: str) -> tuple[str, str]:
    """What `acsnet status` on `host` says of its vxlan plugin's relay: in its JSON (the plugin's /healthz,
    which must be healthy) and at the end of the plugin's row of its table."""
    status = [sys.executable, "-m", "acsnet.cli", "status", "--store", lab.zookeeper_url, "--host-id", host]
    vxlan = json.loads(lab.node(host).run(status + ["--json"], check=False).stdout)["plugins"]["vxlan"]
    assert vxlan["healthy"], vxlan
    row = next(r for r in lab.node(host).run(status, check=False).stdout.splitlines() if r.startswith("vxlan "))
    return vxlan["relay"], row.split(None, 3)[3].strip()  # columns: plugin, up, healthy, relay


def wait_for_text(path: str, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with open(path, errors="replace") as f:
            if text in f.read():
                return
        assert time.monotonic() < deadline, f"{text!r} not in {path} within {timeout:g}s"
        time.sleep(0.1)
