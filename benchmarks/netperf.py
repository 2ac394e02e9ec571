"""Datapath benchmark: TCP bandwidth and latency across two lab hosts, side by side in one run.

Paths measured (interleaved, so that machine drift cancels; median of repeats with min-max):
- native: host to host over their own underlay addresses (through both hosts' OVS bridges and the switch),
- acsnet vlan: container to container across the hosts on a VLAN network,
- acsnet vxlan: container to container across the hosts on a VXLAN network (OVS userspace tunnels),
- acsnet vpc: container to container across the hosts on a vpc network (host subnets, routed),
- docker macvlan and docker overlay: what a user would pick instead, Docker's own drivers on the same
  hosts (the peers of vlan and vxlan; how the lab hosts them is in benchmarks/peers.py), and beside
  them, the ratio of each acsnet driver's figures to its peer's,
- IPv6: native host to host (a documentation address beside each host's IPv4 one), and acsnet vlan,
  vxlan and vpc and the macvlan peer container to container on dual-stack networks, each ratio over
  native IPv6.
Then, in the same report, the control-plane figures of benchmarks/controlplane.py (docker run against
the bridge driver, handler p50/p99, IPAM allocations/s on 3 hosts, route propagation, flow programming).
qperf (tcp_bw, tcp_lat: the reference table's units) runs from each host inside the container's network
namespace (`nsenter -n`), so the busybox image needs no qperf; iperf3 cross-checks bandwidth.
`--host-os machine,debian13` measures a lab of each host OS in the same run, rounds interleaved across
them: this machine's OVS 3.1 beside Debian 13's OVS 3.5 (`acsnet lab up --host-os debian13`), each row
named after its switch and each ratio over its own lab's native. `--underlay-mtu 1500,9000` does the same
for the lab network's MTU (`acsnet lab up --underlay-mtu`): on 9000-byte cables every path takes what its
driver makes of the uplink's MTU (acsnet vlan, vpc and macvlan 9000; acsnet vxlan 8950), and the hand-made
kernel VXLAN 8950 too, and Docker's overlay the underlay's MTU as its option (it takes 50 off itself; without the
option it keeps 1450 whatever the underlay).

    python -m acsnet.benchmarks.netperf [--link-rate 1gbit] [--repeat 3] [--quick] [--skip-control-plane] [--host-os machine,debian13] [--underlay-mtu 1500,9000] [--out DIR] [--json FILE] [--chart PNG]
    acsnet bench ...   (the same)

The reference (ACS, gigabit hosts): native 117 MB/s, 24.5 us; vlan-1.1 117 MB/s, 28.6 us; vxlan 113 MB/s, 43 us.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import uuid

from acsnet.benchmarks import controlplane, peers
from acsnet.benchmarks.progress import Steps
from acsnet.lab.building import DEFAULT_UNDERLAY_MTU, MAX_UNDERLAY_MTU, MIN_UNDERLAY_MTU
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.host import DEFAULT_HOST_OS, HOST_OSES, LabError
from acsnet.lab.topology import Lab, host_address
from acsnet.plugins.vxlan.agent import VXLAN_OVERHEAD

REFERENCE = {"native": (117.0, 24.5), "acsnet vlan": (117.0, 28.6), "acsnet vxlan": (113.0, 43.0),
             "linux bridge": (97.0, 49.0)}  # the reference's vlan-1.0: Linux bridge and VLAN devices
QPERF_PORT = "19765"
NATIVE6_PREFIX = "2001:db8:ff::"  # each host's IPv6 address on its bridge port, for the native IPv6 row: ::11, ::12
FULL_CONTROL_PLANE = {"runs": 20, "seconds": 10.0, "propagation_runs": 50, "endpoints": [100, 1000, 5000]}
QUICK_CONTROL_PLANE = {"runs": 2, "seconds": 2.0, "propagation_runs": 3, "endpoints": [100], "ovsdb_port_counts": [0, 50],
                       "flow_change_samples": 4, "host_stall_samples": 3}


def _qperf_value(text: str, test: str) -> float:
    """qperf's figure for `test`, in MB/s for bandwidth and microseconds for latency."""
    block = text.split(test + ":", 1)[1]
    number, unit = re.search(r"=\s*([\d.]+)\s*(\S+)", block).groups()
    value = float(number)
    scale = {"GB/sec": 1000, "MB/sec": 1, "KB/sec": 0.001, "bytes/sec": 1e-6,
             "ms": 1000, "us": 1, "ns": 0.001, "sec": 1e6}
    return value * scale[unit]


class Path:
    """Where to run the client and server of one path: a host, optionally inside a container's network
    namespace (`container:NAME`) or a named one (`netns:NAME`)."""

    def __init__(self, name: str, lab: Lab, client_host: str, server_host: str, server_address: str,
                 client_place: str | None = None, server_place: str | None = None, native: str = "native"):
        self.name, self.lab, self.native = name, lab, native  # native: the row its ratios are over
        self.client_host, self.server_host, self.server_address = client_host, server_host, server_address
        self.client_place, self.server_place = client_place, server_place

    def _client(self, argv: list[str], seconds: int) -> str:
        """The client's output, tried again while the server it just started is not listening yet (on
        a loaded machine that takes more than a moment); another failure, or the same for 10 s, is the
        path's."""
        client = self.lab.node(self.client_host)
        command = [*self._prefix(self.client_host, self.client_place), *argv]
        deadline = time.monotonic() + 10
        while True:
            result = client.run(command, timeout=seconds * 4 + 30, check=False)
            said = result.stdout + result.stderr  # qperf: "failed to connect"; iperf3 -J: "unable to connect ..."
            if not ("failed to connect" in said or "unable to connect" in said) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        if result.returncode != 0 and not result.stdout.lstrip().startswith("{"):
            raise LabError(f"{' '.join(command)} failed ({result.returncode}): {(result.stderr or result.stdout).strip()}")
        return result.stdout

    def _prefix(self, host: str, place: str | None) -> list[str]:
        if place is None:
            return []
        kind, name = place.split(":", 1)
        if kind == "netns":
            return ["ip", "netns", "exec", name]
        pid = self.lab.docker(host, "inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
        return ["nsenter", "-t", pid, "-n", "--"]

    def measure(self, seconds: int) -> dict[str, float]:
        server = self.lab.node(self.server_host)
        server_prefix = self._prefix(self.server_host, self.server_place)
        daemon = server.popen([*server_prefix, "qperf", "--listen_port", QPERF_PORT], f"{server.workdir}/qperf-server.log")
        try:
            out = self._client(["qperf", "--listen_port", QPERF_PORT, "-t", str(seconds), self.server_address,
                                "tcp_bw", "tcp_lat"], seconds)
        finally:
            daemon.kill()
            daemon.wait()
        iperf = server.popen([*server_prefix, "iperf3", "-s", "-1"], f"{server.workdir}/iperf3-server.log")
        try:
            result = json.loads(self._client(["iperf3", "-J", "-t", str(seconds), "-c", self.server_address], seconds))
        finally:
            iperf.kill()
            iperf.wait()
        if "error" in result:
            raise LabError(f"iperf3 to {self.server_address} ({self.name}): {result['error']}")
        return {"bw": _qperf_value(out, "tcp_bw"), "lat": _qperf_value(out, "tcp_lat"),
                "iperf3": result["end"]["sum_received"]["bits_per_second"] / 8e6, "mtu": self.mtu()}

    def mtu(self) -> int:
        """The MTU of the client's device towards the server: what the row's packets were cut to."""
        client, prefix = self.lab.node(self.client_host), self._prefix(self.client_host, self.client_place)
        route = client.run([*prefix, "ip", "-o", "route", "get", self.server_address]).stdout
        device = re.search(r" dev (\S+)", route).group(1)
        link = client.run([*prefix, "ip", "-o", "link", "show", "dev", device]).stdout  # netlink: the namespace's own
        return int(re.search(r" mtu (\d+)", link).group(1))


def build_paths(lab: Lab, tag: str) -> list[Path]:
    for host in ("h1", "h2"):
        lab.docker(host, "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "198.51.100.0/24",
                   "--gateway", "198.51.100.1", "-o", "VlanId=217", f"bench-{tag}")
        lab.docker(host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", "100.64.9.0/24",
                   "-o", "VxlanId=300", f"benchvx-{tag}")
        lab.docker(host, "network", "create", "-d", "vpc", "--ipam-driver", "acsnet", "--subnet", "100.71.0.0/16",
                   f"benchvpc-{tag}")
    for host, n in (("h1", 201), ("h2", 202)):
        lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", f"bench-{tag}", "--ip", f"198.51.100.{n}",
                   "--name", f"bench-{tag}", IMAGE, "sleep", "7200")
        lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", f"benchvx-{tag}", "--ip", f"100.64.9.{n}",
                   "--name", f"benchvx-{tag}", IMAGE, "sleep", "7200")
        lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", f"benchvpc-{tag}", "--name", f"benchvpc-{tag}",
                   IMAGE, "sleep", "7200")
    peer = peer_paths(lab, tag)
    vpc_server = json.loads(lab.docker("h2", "inspect", f"benchvpc-{tag}").stdout)[0]["NetworkSettings"]["Networks"][
        f"benchvpc-{tag}"]["IPAddress"]
    return [
        Path("native", lab, "h1", "h2", host_address(2)),
        *reference_paths(lab),
        Path("acsnet vlan", lab, "h1", "h2", "198.51.100.202", f"container:bench-{tag}", f"container:bench-{tag}"),
        Path("acsnet vxlan", lab, "h1", "h2", "100.64.9.202", f"container:benchvx-{tag}", f"container:benchvx-{tag}"),
        Path("acsnet vpc", lab, "h1", "h2", vpc_server, f"container:benchvpc-{tag}", f"container:benchvpc-{tag}"),
        *[path for path in peer if path.native == "native"],
        *ipv6_paths(lab, tag),
        *[path for path in peer if path.native == "native IPv6"],
    ]


def ipv6_paths(lab: Lab, tag: str) -> list[Path]:
    """IPv6 TCP: host to host over the bridges' own ports, and container to container on dual-stack
    vlan (VLAN 218), vxlan and vpc networks made as tests/test_ipv6.py makes them (vpc: each container's
    IPv6 address from its host's slice, so the server's is read back)."""
    for index, host in ((1, "h1"), (2, "h2")):
        lab.node(host).run(["ip", "addr", "add", f"{NATIVE6_PREFIX}{10 + index}/64", "dev", "ovsbr0", "nodad"])
        lab.docker(host, "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--ipv6", "--subnet", "203.0.113.0/24",
                   "--gateway", "203.0.113.1", "--subnet", "2001:db8:218::/64", "--gateway", "2001:db8:218::1",
                   "-o", "VlanId=218", f"bench6-{tag}")
        lab.docker(host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--ipv6", "--subnet", "100.64.10.0/24",
                   "--subnet", "2001:db8:a::/64", "-o", "VxlanId=301", f"benchvx6-{tag}")
        lab.docker(host, "network", "create", "-d", "vpc", "--ipam-driver", "acsnet", "--ipv6", "--subnet", "100.76.0.0/16",
                   "--subnet", "fd00:76::/64", f"benchvpc6-{tag}")
    for host, n in (("h1", 201), ("h2", 202)):
        lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", f"bench6-{tag}", "--ip", f"203.0.113.{n}",
                   "--ip6", f"2001:db8:218::{n}", "--name", f"bench6-{tag}", IMAGE, "sleep", "7200")
        lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", f"benchvx6-{tag}", "--ip", f"100.64.10.{n}",
                   "--ip6", f"2001:db8:a::{n}", "--name", f"benchvx6-{tag}", IMAGE, "sleep", "7200")
        lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", f"benchvpc6-{tag}", "--name", f"benchvpc6-{tag}",
                   IMAGE, "sleep", "7200")
    vpc6_server = json.loads(lab.docker("h2", "inspect", f"benchvpc6-{tag}").stdout)[0]["NetworkSettings"]["Networks"][
        f"benchvpc6-{tag}"]["GlobalIPv6Address"]
    return [Path("native IPv6", lab, "h1", "h2", f"{NATIVE6_PREFIX}12", native="native IPv6"),
            Path("acsnet vlan IPv6", lab, "h1", "h2", "2001:db8:218::202", f"container:bench6-{tag}", f"container:bench6-{tag}",
                 native="native IPv6"),
            Path("acsnet vxlan IPv6", lab, "h1", "h2", "2001:db8:a::202", f"container:benchvx6-{tag}",
                 f"container:benchvx6-{tag}", native="native IPv6"),
            Path("acsnet vpc IPv6", lab, "h1", "h2", vpc6_server, f"container:benchvpc6-{tag}",
                 f"container:benchvpc6-{tag}", native="native IPv6")]


def peer_paths(lab: Lab, tag: str) -> list[Path]:
    """Docker's own macvlan and overlay, container to container from h1 to h2 (benchmarks/peers.py),
    and macvlan by IPv6 too: its network is dual-stack, in the hosts' native IPv6 prefix (a parent takes
    one macvlan network), so its IPv6 row is the peer of acsnet vlan's. Overlay has no IPv6 row: on
    Docker 20.10 a worker refuses its own container on a dual-stack attachable overlay network ("Invalid
    address fd00:77::3: It does not belong to any of this network's subnets"), and `--ip6` is not
    honoured there."""
    peers.ensure_swarm(lab)
    macvlan = peers.macvlan_options("192.0.2.224/28", f"{NATIVE6_PREFIX}/64")
    lab.docker("h1", "network", "create", *macvlan, f"benchmv-{tag}")
    lab.docker("h2", "network", "create", *macvlan, f"benchmv-{tag}")
    underlay = underlay_mtu(lab)
    # Docker's overlay reads its MTU option as the underlay's and takes VXLAN's 50 off itself.
    overlay_mtu = ["-o", f"com.docker.network.driver.mtu={underlay}"] if underlay != DEFAULT_UNDERLAY_MTU else []
    lab.docker("h1", "network", "create", *peers.overlay_options("100.77.0.0/24"), *overlay_mtu, f"benchov-{tag}")
    for host, n in (("h1", 231), ("h2", 232)):
        lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", f"benchmv-{tag}", "--ip", f"192.0.2.{n}",
                   "--ip6", f"{NATIVE6_PREFIX}{n}", "--name", f"benchmv-{tag}", IMAGE, "sleep", "7200")
        lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", f"benchov-{tag}", "--ip", f"100.77.0.{n}",
                   "--name", f"benchov-{tag}", IMAGE, "sleep", "7200")
        peers.overlay_checksums_in_kernel(lab, host, f"benchov-{tag}")
    return [Path("docker macvlan", lab, "h1", "h2", "192.0.2.232", f"container:benchmv-{tag}", f"container:benchmv-{tag}"),
            Path("docker overlay", lab, "h1", "h2", "100.77.0.232", f"container:benchov-{tag}", f"container:benchov-{tag}"),
            Path("docker macvlan IPv6", lab, "h1", "h2", f"{NATIVE6_PREFIX}232", f"container:benchmv-{tag}",
                 f"container:benchmv-{tag}", native="native IPv6")]


def reference_paths(lab: Lab) -> list[Path]:
    """Paths without acsnet, made by hand on both hosts, to place its figures: a namespace on a plain
    OVS port (switching only), one behind a Linux bridge hooked to OVS (the reference's vlan-1.0 kind
    of path), and one on the kernel's own VXLAN device (flannel's vxlan backend, port 8472 so that OVS's
    userspace tunnels on 4789 leave it alone)."""
    underlay = underlay_mtu(lab)
    for index, host in ((1, "h1"), (2, "h2")):
        node, peer = lab.node(host), host_address(3 - index)

        def sh(*argv: str) -> None:
            node.run(list(argv))

        # As the drivers do: veths keep their offloads when the host's OVS takes whole TCP segments.
        tso = "tcp-segmentation-offload: on" in node.run(["ethtool", "-k", "ovsbr0"]).stdout

        def plain_checksums(*veth_ends: str, ns: str | None = None) -> None:
            for end in veth_ends if not tso else ():
                sh(*(["ip", "netns", "exec", ns] if ns else []), "ethtool", "-K", end, "tx", "off")

        def namespace_end(ns: str, outside: str, inside: str, address: str, mtu: int = underlay) -> None:
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", outside, "mtu", str(mtu), "type", "veth", "peer", "name", inside, "mtu", str(mtu))
            sh("ip", "link", "set", inside, "netns", ns)
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", address, "dev", inside)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
            sh("ip", "link", "set", outside, "up")
            plain_checksums(outside)
            plain_checksums(inside, ns=ns)

        namespace_end("plainovs", "povs", "povsc", f"192.0.2.{100 + index}/24")
        sh("ovs-vsctl", "add-port", "ovsbr0", "povs")
        sh("ip", "link", "add", "lbr0", "type", "bridge")
        sh("ip", "link", "add", "lbrup", "mtu", str(underlay), "type", "veth", "peer", "name", "lbrovs", "mtu", str(underlay))
        for link in ("lbr0", "lbrup", "lbrovs"):
            sh("ip", "link", "set", link, "up")
        plain_checksums("lbrovs", "lbrup")
        sh("ip", "link", "set", "lbrup", "master", "lbr0")
        sh("ovs-vsctl", "add-port", "ovsbr0", "lbrovs")
        namespace_end("linuxbr", "lbrh", "lbrc", f"192.0.2.{110 + index}/24")
        sh("ip", "link", "set", "lbrh", "master", "lbr0")
        sh("ip", "link", "add", "kvx0", "type", "vxlan", "id", "42", "dstport", "8472", "local", host_address(index),
           "remote", peer)
        sh("ip", "netns", "add", "kernelvx")
        sh("ip", "link", "set", "kvx0", "netns", "kernelvx")
        sh("ip", "netns", "exec", "kernelvx", "ip", "link", "set", "kvx0", "mtu", str(underlay - VXLAN_OVERHEAD), "up")
        sh("ip", "netns", "exec", "kernelvx", "ip", "addr", "add", f"100.72.0.{index}/24", "dev", "kvx0")
        if tso:
            # OVS 3.1's userspace TSO reads a checksum left to do as the outer (UDP) one: the kernel's
            # VXLAN device must finish its inner TCP checksums itself (see the README's trade-offs).
            sh("ip", "netns", "exec", "kernelvx", "ethtool", "-K", "kvx0", "tx", "off")
    return [Path("plain OVS", lab, "h1", "h2", "192.0.2.102", "netns:plainovs", "netns:plainovs"),
            Path("linux bridge", lab, "h1", "h2", "192.0.2.112", "netns:linuxbr", "netns:linuxbr"),
            Path("kernel vxlan", lab, "h1", "h2", "100.72.0.2", "netns:kernelvx", "netns:kernelvx")]


def remove_paths(lab: Lab, tag: str) -> None:
    for host in ("h1", "h2"):
        lab.node(host).run(["ip", "addr", "del", f"{NATIVE6_PREFIX}{10 + int(host[1:])}/64", "dev", "ovsbr0"], check=False)
        for prefix in ("bench", "benchvx", "benchvpc", "benchmv", "benchov", "bench6", "benchvx6", "benchvpc6"):
            lab.docker(host, "rm", "-f", f"{prefix}-{tag}", check=False)
            lab.docker(host, "network", "rm", f"{prefix}-{tag}", check=False)  # overlay: h1's (the manager's) does


def summarise(samples: dict[str, list[dict[str, float]]], natives: dict[str, str] | None = None) -> dict[str, dict]:
    """Median, min and max per row; ratios over the row's native (`natives`: row to its native row,
    "native" when not given)."""
    table = {}
    for name, runs in samples.items():
        table[name] = {key: {"median": statistics.median(r[key] for r in runs), "min": min(r[key] for r in runs),
                             "max": max(r[key] for r in runs)} for key in ("bw", "lat", "iperf3")}
        table[name]["mtu"] = runs[-1].get("mtu")
    for name, row in table.items():
        native = table[(natives or {}).get(name, "native")]
        row["bw_ratio"] = row["bw"]["median"] / native["bw"]["median"]
        row["lat_ratio"] = row["lat"]["median"] / native["lat"]["median"]
    return table


PEERS = {"acsnet vlan": "docker macvlan", "acsnet vxlan": "docker overlay"}  # acsnet's row -> what a user would pick instead


def peer_comparison(table: dict[str, dict]) -> list[dict]:
    """Each acsnet row beside its peer's in the same lab: bandwidth acsnet / peer and latency peer /
    acsnet (above 1: acsnet ahead), by medians, and whether the two rows' min-max ranges overlap."""
    rows = []
    for name, row in table.items():
        base = name.split(" [")[0].removesuffix(" IPv6")  # "acsnet vlan IPv6 [OVS 3.5, ...]": "acsnet vlan"
        peer = PEERS.get(base, "") + name[len(base):]
        if base not in PEERS or peer not in table:
            continue
        other = table[peer]

        def overlap(key: str) -> bool:
            return row[key]["min"] <= other[key]["max"] and other[key]["min"] <= row[key]["max"]

        bw = row["bw"]["median"] / other["bw"]["median"]
        lat = other["lat"]["median"] / row["lat"]["median"]
        rows.append({"acsnet": name, "peer": peer, "bw_over_peer": bw, "peer_lat_over_acsnet": lat,
                     "bw_ahead": "acsnet" if bw > 1 else "peer" if bw < 1 else "even", "bw_ranges_overlap": overlap("bw"),
                     "lat_ahead": "acsnet" if lat > 1 else "peer" if lat < 1 else "even", "lat_ranges_overlap": overlap("lat")})
    return rows


def peers_markdown(comparison: list[dict]) -> str:
    lines = ["acsnet against Docker's own drivers, same lab and run (above 1: acsnet ahead; by medians, and "
             "whether the min-max ranges overlap):", "",
             "| acsnet | peer | BW acsnet / peer | ahead in BW | lat peer / acsnet | ahead in latency |", "|---|---|---|---|---|---|"]
    for row in comparison:
        lines.append(f"| {row['acsnet']} | {row['peer']} | {row['bw_over_peer']:.2f} | {row['bw_ahead']}"
                     f"{' (ranges overlap)' if row['bw_ranges_overlap'] else ''} | {row['peer_lat_over_acsnet']:.2f} | "
                     f"{row['lat_ahead']}{' (ranges overlap)' if row['lat_ranges_overlap'] else ''} |")
    return "\n".join(lines)


def markdown(table: dict[str, dict], link_rate: str | None, repeat: int, switches: list[str] | None = None) -> str:
    labs = (f" on each of {len(switches)} labs ({', '.join(switches)}), rounds interleaved across them, each "
            "ratio over its own lab's native" if switches and len(switches) > 1 else "")
    lines = [f"Two lab hosts{labs}, link rate {link_rate or 'unshaped'}, {repeat} interleaved repeats, median (min-max); "
             "the IPv6 rows' ratios are over native IPv6.", "",
             "| path | MTU | TCP BW (MB/s) | BW / native | TCP lat (us) | lat / native | iperf3 (MB/s) | reference BW | reference lat |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in table.items():
        ref_bw, ref_lat = REFERENCE.get(name.split(" [")[0], ("-", "-"))
        bw, lat = row["bw"], row["lat"]
        lines.append(f"| {name} | {row.get('mtu') or '-'} | {bw['median']:.1f} ({bw['min']:.1f}-{bw['max']:.1f}) | {row['bw_ratio']:.2f} "
                     f"| {lat['median']:.1f} ({lat['min']:.1f}-{lat['max']:.1f}) | {row['lat_ratio']:.2f} "
                     f"| {row['iperf3']['median']:.1f} | {ref_bw} | {ref_lat} |")
    return "\n".join(lines)


def chart(table: dict[str, dict], path: str, title: str) -> None:
    """Bandwidth and latency per path, medians with min-max bars, beside the reference's figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    figure, axes = plt.subplots(1, 2, figsize=(12 if len(names) < 10 else 18, 4.5 if len(names) < 10 else 6))
    for axis, key, label, ref_index in ((axes[0], "bw", "TCP bandwidth (MB/s)", 0), (axes[1], "lat", "TCP latency (us)", 1)):
        medians = [table[n][key]["median"] for n in names]
        spread = [[m - table[n][key]["min"] for n, m in zip(names, medians)], [table[n][key]["max"] - m for n, m in zip(names, medians)]]
        positions = range(len(names))
        axis.bar([p - 0.2 for p in positions], medians, 0.4, yerr=spread, capsize=3, label="this machine")
        axis.bar([p + 0.2 for p in positions], [REFERENCE.get(n.split(" [")[0], (0, 0))[ref_index] for n in names], 0.4,
                 label="reference (ACS)")
        axis.set_xticks(list(positions), names, rotation=30, ha="right")
        axis.set_title(label)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--link-rate", default=None, help="shape host uplinks, e.g. 1gbit (default: unshaped)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="duration of each measurement")
    parser.add_argument("--quick", action="store_true", help="1 repeat of 1 s: checks the harness, not the datapath")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--chart", help="also draw them here (PNG)")
    parser.add_argument("--out", help="write netperf.md, netperf.json and netperf.png into this directory")
    parser.add_argument("--skip-control-plane", action="store_true",
                        help="only the datapath table (the control-plane figures take about 5 minutes more)")
    parser.add_argument("--host-os", default=DEFAULT_HOST_OS,
                        help="the hosts' OS, or several comma-separated to measure a lab of each in one run: "
                        f"{', '.join(HOST_OSES)} (debian13: OVS 3.5, Docker 26) (default {DEFAULT_HOST_OS})")
    parser.add_argument("--underlay-mtu", default=str(DEFAULT_UNDERLAY_MTU),
                        help=f"the lab network's MTU ({MIN_UNDERLAY_MTU}-{MAX_UNDERLAY_MTU}), or several comma-separated "
                        f"to measure a lab of each in one run, e.g. 1500,9000 (jumbo frames) (default {DEFAULT_UNDERLAY_MTU})")
    parser.add_argument("--workdir", default="/var/lib/acsnet/bench-lab")
    parser.add_argument("--prefix", default="acsnet-b", help="the lab's name prefix (4 random hex digits follow)")
    args = parser.parse_args(argv)
    host_oses = [name.strip() for name in args.host_os.split(",") if name.strip()]
    unknown = [name for name in host_oses if name not in HOST_OSES]
    if unknown or not host_oses or len(set(host_oses)) != len(host_oses):
        parser.error(f"--host-os: one or more of {', '.join(HOST_OSES)}, each once (got {args.host_os!r})")
    try:
        mtus = [int(mtu) for mtu in args.underlay_mtu.split(",") if mtu.strip()]
    except ValueError:
        mtus = []
    if not mtus or len(set(mtus)) != len(mtus) or not all(MIN_UNDERLAY_MTU <= mtu <= MAX_UNDERLAY_MTU for mtu in mtus):
        parser.error(f"--underlay-mtu: one or more MTUs from {MIN_UNDERLAY_MTU} to {MAX_UNDERLAY_MTU}, each once "
                     f"(got {args.underlay_mtu!r})")
    if args.quick:
        args.repeat, args.seconds = 1, 1
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        args.json = args.json or os.path.join(args.out, "netperf.json")
        args.chart = args.chart or os.path.join(args.out, "netperf.png")
    # One lab per host OS and underlay MTU; the first runs 3 hosts (h3 joins the control plane's IPAM race only).
    kinds = [(name, mtu) for name in host_oses for mtu in mtus]
    labs = {kind: Lab(args.workdir if len(kinds) == 1 else os.path.join(args.workdir, lab_name(kind, mtus)),
                      f"{args.prefix}{uuid.uuid4().hex[:4]}") for kind in kinds}
    tag = uuid.uuid4().hex[:6]
    steps = Steps()
    switches: dict[tuple[str, int], str] = {}
    try:
        paths: list[Path] = []
        for index, ((name, mtu), lab) in enumerate(labs.items()):
            hosts = 3 if index == 0 else 2
            engine = HOST_OSES[name].engines[0]
            steps(f"building a {hosts}-host lab ({name}, Docker {engine}) in {lab.workdir} (link rate "
                  f"{args.link_rate or 'unshaped'}, underlay MTU {mtu}" + ("; h3 joins the IPAM race only)" if hosts == 3 else ")"))
            lab.up(hosts=hosts, link_rate=args.link_rate, progress=steps, engine=engine, host_os=name, underlay_mtu=mtu)
            switches[name, mtu] = (f"OVS {ovs_version(lab)}" + (f", {name}" if len(host_oses) > 1 else "")
                                   + (f", MTU {mtu}" if len(mtus) > 1 else ""))
            steps(f"datapath ({name}): vlan, vxlan and vpc networks and a container of each on h1 and h2; the reference "
                  "paths; Docker's macvlan and overlay (h1 and h2 in a swarm); dual-stack vlan, vxlan and vpc for IPv6")
            paths += label_paths(build_paths(lab, tag), switches[name, mtu] if len(kinds) > 1 else None)
        samples: dict[str, list] = {p.name: [] for p in paths}
        for round_ in range(args.repeat):
            for path in paths:
                # qperf's tcp_bw and tcp_lat, then iperf3: `seconds` each, and a server started for each.
                steps(f"datapath round {round_ + 1}/{args.repeat}: {path.name}", estimate=3 * args.seconds + 2)
                samples[path.name].append(path.measure(args.seconds))
        steps("datapath: removing its networks and paths")
        for lab in labs.values():
            remove_paths(lab, tag)
        control = None
        if not args.skip_control_plane:
            first = kinds[0]
            steps(f"control plane ({lab_name(first, mtus)})" + ("" if args.quick else " (about 5 minutes on 2 cores)"))
            control = controlplane.measure(labs[first], steps, **(QUICK_CONTROL_PLANE if args.quick else FULL_CONTROL_PLANE))
    finally:
        for lab in labs.values():
            steps(f"removing the lab {lab.prefix}")
            lab.down()
    steps("done")
    table = summarise(samples, {p.name: p.native for p in paths})
    comparison = peer_comparison(table)
    report = markdown(table, args.link_rate, args.repeat, list(switches.values())) + "\n\n" + peers_markdown(comparison)
    if control is not None:
        report += "\n\n## Control plane\n\n" + controlplane.markdown(control)
    print(report)
    if args.out:
        with open(os.path.join(args.out, "netperf.md"), "w") as f:
            f.write(report + "\n")
    if args.chart:
        chart(table, args.chart, f"acsnet netperf, link rate {args.link_rate or 'unshaped'}, median of {args.repeat}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"link_rate": args.link_rate, "repeat": args.repeat, "seconds": args.seconds,
                       "host_os": host_oses, "underlay_mtu": mtus,
                       "switches": {lab_name(kind, mtus): switch for kind, switch in switches.items()},
                       "samples": samples, "table": table, "peers": comparison,
                       "control_plane": control}, f, indent=2)
    return 0


def underlay_mtu(lab: Lab) -> int:
    return lab.state().get("underlay_mtu", DEFAULT_UNDERLAY_MTU)


def ovs_version(lab: Lab) -> str:
    """The version of the Open vSwitch running on the lab's h1 (3.1 on this machine, 3.5 on Debian 13)."""
    out = lab.node("h1").run(["ovs-appctl", "-t", "/run/openvswitch/ovs-vswitchd.ctl", "version"]).stdout
    return re.search(r"\(Open vSwitch\) (\d+\.\d+)", out).group(1)


def lab_name(kind: tuple[str, int], mtus: list[int]) -> str:
    """A lab's name in folders and the JSON: its host OS, and its MTU when more than one is measured."""
    name, mtu = kind
    return name if len(mtus) == 1 else f"{name}-mtu{mtu}"


def label_paths(paths: list[Path], label: str | None) -> list[Path]:
    """With more than one lab, each row says which (its switch): "acsnet vxlan [OVS 3.5, debian13]"."""
    if label is not None:
        for path in paths:
            path.name, path.native = f"{path.name} [{label}]", f"{path.native} [{label}]"
    return paths


if __name__ == "__main__":
    sys.exit(main())
