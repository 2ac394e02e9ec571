"""Datapath benchmark: TCP bandwidth and latency across two lab hosts, side by side in one run.

Paths measured (interleaved, so that machine drift cancels; median of repeats with min-max):
- native: host to host over their own underlay addresses (through both hosts' OVS bridges and the switch),
- acsnet vlan: container to container across the hosts on a VLAN network,
- acsnet vxlan: container to container across the hosts on a VXLAN network (OVS userspace tunnels),
- acsnet vpc: container to container across the hosts on a vpc network (host subnets, routed).
qperf (tcp_bw, tcp_lat: the reference table's units) runs from each host inside the container's network
namespace (`nsenter -n`), so the busybox image needs no qperf; iperf3 cross-checks bandwidth.

    python -m benchmarks.netperf [--link-rate 1gbit] [--repeat 3] [--quick] [--json FILE]

The reference (ACS, gigabit hosts): native 117 MB/s, 24.5 us; vlan-1.1 117 MB/s, 28.6 us; vxlan 113 MB/s, 43 us.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import uuid

from plugins.lab.dockerd import IMAGE
from plugins.lab.topology import Lab, host_address

REFERENCE = {"native": (117.0, 24.5), "acsnet vlan": (117.0, 28.6), "acsnet vxlan": (113.0, 43.0)}
QPERF_PORT = "19765"


def _qperf_value(text: str, test: str) -> float:
    """qperf's figure for `test`, in MB/s for bandwidth and microseconds for latency."""
    block = text.split(test + ":", 1)[1]
    number, unit = re.search(r"=\s*([\d.]+)\s*(\S+)", block).groups()
    value = float(number)
    scale = {"GB/sec": 1000, "MB/sec": 1, "KB/sec": 0.001, "bytes/sec": 1e-6,
             "ms": 1000, "us": 1, "ns": 0.001, "sec": 1e6}
    return value * scale[unit]


class Path:
    """Where to run the client and server of one path: a host, optionally inside a container's netns."""

    def __init__(self, name: str, lab: Lab, client_host: str, server_host: str, server_address: str,
                 client_container: str | None = None, server_container: str | None = None):
        self.name, self.lab = name, lab
        self.client_host, self.server_host, self.server_address = client_host, server_host, server_address
        self.client_container, self.server_container = client_container, server_container

    def _prefix(self, host: str, container: str | None) -> list[str]:
        if container is None:
            return []
        pid = self.lab.docker(host, "inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
        return ["nsenter", "-t", pid, "-n", "--"]

    def measure(self, seconds: int) -> dict[str, float]:
        server = self.lab.node(self.server_host)
        client = self.lab.node(self.client_host)
        server_prefix = self._prefix(self.server_host, self.server_container)
        client_prefix = self._prefix(self.client_host, self.client_container)
        daemon = server.popen([*server_prefix, "qperf", "--listen_port", QPERF_PORT], f"{server.workdir}/qperf-server.log")
        try:
            time.sleep(0.3)
            out = client.run([*client_prefix, "qperf", "--listen_port", QPERF_PORT, "-t", str(seconds),
                              self.server_address, "tcp_bw", "tcp_lat"], timeout=seconds * 4 + 30).stdout
        finally:
            daemon.kill()
            daemon.wait()
        iperf = server.popen([*server_prefix, "iperf3", "-s", "-1"], f"{server.workdir}/iperf3-server.log")
        try:
            time.sleep(0.3)
            result = json.loads(client.run([*client_prefix, "iperf3", "-J", "-t", str(seconds), "-c", self.server_address],
                                           timeout=seconds * 4 + 30).stdout)
        finally:
            iperf.kill()
            iperf.wait()
        return {"bw": _qperf_value(out, "tcp_bw"), "lat": _qperf_value(out, "tcp_lat"),
                "iperf3": result["end"]["sum_received"]["bits_per_second"] / 8e6}


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
    vpc_server = json.loads(lab.docker("h2", "inspect", f"benchvpc-{tag}").stdout)[0]["NetworkSettings"]["Networks"][
        f"benchvpc-{tag}"]["IPAddress"]
    return [
        Path("native", lab, "h1", "h2", host_address(2)),
        Path("acsnet vlan", lab, "h1", "h2", "198.51.100.202", f"bench-{tag}", f"bench-{tag}"),
        Path("acsnet vxlan", lab, "h1", "h2", "100.64.9.202", f"benchvx-{tag}", f"benchvx-{tag}"),
        Path("acsnet vpc", lab, "h1", "h2", vpc_server, f"benchvpc-{tag}", f"benchvpc-{tag}"),
    ]


def remove_paths(lab: Lab, tag: str) -> None:
    for host in ("h1", "h2"):
        for prefix in ("bench", "benchvx", "benchvpc"):
            lab.docker(host, "rm", "-f", f"{prefix}-{tag}", check=False)
            lab.docker(host, "network", "rm", f"{prefix}-{tag}", check=False)


def summarise(samples: dict[str, list[dict[str, float]]]) -> dict[str, dict]:
    table = {}
    for name, runs in samples.items():
        table[name] = {key: {"median": statistics.median(r[key] for r in runs), "min": min(r[key] for r in runs),
                             "max": max(r[key] for r in runs)} for key in ("bw", "lat", "iperf3")}
    native = table["native"]
    for name, row in table.items():
        row["bw_ratio"] = row["bw"]["median"] / native["bw"]["median"]
        row["lat_ratio"] = row["lat"]["median"] / native["lat"]["median"]
    return table


def markdown(table: dict[str, dict], link_rate: str | None, repeat: int) -> str:
    lines = [f"Two lab hosts, link rate {link_rate or 'unshaped'}, {repeat} interleaved repeats, median (min-max).", "",
             "| path | TCP BW (MB/s) | BW / native | TCP lat (us) | lat / native | iperf3 (MB/s) | reference BW | reference lat |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in table.items():
        ref_bw, ref_lat = REFERENCE.get(name, ("-", "-"))
        bw, lat = row["bw"], row["lat"]
        lines.append(f"| {name} | {bw['median']:.1f} ({bw['min']:.1f}-{bw['max']:.1f}) | {row['bw_ratio']:.2f} "
                     f"| {lat['median']:.1f} ({lat['min']:.1f}-{lat['max']:.1f}) | {row['lat_ratio']:.2f} "
                     f"| {row['iperf3']['median']:.1f} | {ref_bw} | {ref_lat} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--link-rate", default=None, help="shape host uplinks, e.g. 1gbit (default: unshaped)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="duration of each measurement")
    parser.add_argument("--quick", action="store_true", help="1 repeat of 1 s: checks the harness, not the datapath")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--workdir", default="/var/lib/acsnet/bench-lab")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.seconds = 1, 1
    lab = Lab(args.workdir, f"acsnet-b{uuid.uuid4().hex[:4]}")
    tag = uuid.uuid4().hex[:6]
    try:
        print(f"building a 2-host lab (link rate {args.link_rate or 'unshaped'})", file=sys.stderr, flush=True)
        lab.up(hosts=2, link_rate=args.link_rate)
        paths = build_paths(lab, tag)
        samples: dict[str, list] = {p.name: [] for p in paths}
        for round_ in range(args.repeat):
            for path in paths:
                print(f"round {round_ + 1}/{args.repeat}: {path.name}", file=sys.stderr, flush=True)
                samples[path.name].append(path.measure(args.seconds))
        remove_paths(lab, tag)
    finally:
        lab.down()
    table = summarise(samples)
    print(markdown(table, args.link_rate, args.repeat))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"link_rate": args.link_rate, "repeat": args.repeat, "seconds": args.seconds,
                       "samples": samples, "table": table}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
