"""vxlan control plane: route propagation across hosts, and flow programming at scale.

1. Propagation: a container started on h1 is pinged from a container on h2 until it answers; the time
   is taken from the start of `docker run` and from its return (p50/p99 over --runs runs).
2. Scale: N containers of other hosts are simulated as segment records in ZooKeeper (their hosts
   registered alive by this process); the time until h1's agent has installed their flows, and the
   flow count, for each N. Flow count must grow linearly in N.

    python -m acsnet.benchmarks.vxlan_scale [--runs 50] [--endpoints 100,1000,5000] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid

from acsnet.benchmarks.progress import Steps
from acsnet.benchmarks.standalone import run_on_a_lab
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.host import REPO
from acsnet.lab.topology import Lab

VNI, SUBNET = 400, "100.64.16.0/20"

SIMULATE = """
import json, sys, time
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS, SegmentRecord
from acsnet.store import open_store
url, vni, count, hosts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = open_store(url, timeout=30)
for h in range(hosts):
    store.register_host(f"sim{h}", "sim", {"host_id": f"sim{h}"})
layout = LAYOUTS["vxlan"]
state.prepare_segment(store, layout, vni)
ops = []
for i in range(count):
    ip = f"100.65.{i // 250}.{i % 250 + 1}"
    eid = f"{i:064x}"
    record = SegmentRecord(f"sim{i % hosts}", "02:00:00:00:00:01", f"198.51.100.{i % hosts + 1}", ip,
                           f"02:43:{i >> 24 & 255:02x}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}", eid)
    ops.append(state.segment_record_operation(layout, vni, record))
    if len(ops) == 200:
        store.commit(ops); ops = []
if ops:
    store.commit(ops)
print("written", flush=True)
sys.stdin.read()  # hold the hosts' sessions until told to go
state.clear_segment_records(store, layout, vni)  # the segment node stays: hosts watch it
store.close()
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def flow_count(lab: Lab, host: str) -> int:
    out = lab.node(host).run(["ovs-ofctl", "--no-stats", "dump-flows", "acsvx0"]).stdout
    return sum(1 for line in out.splitlines() if "cookie=0xac6" in line)


def propagation(lab: Lab, runs: int, tag: str, progress: Steps) -> dict:
    from_start, from_return = [], []
    pid = lab.docker("h2", "inspect", "-f", "{{.State.Pid}}", f"probe-{tag}").stdout.strip()
    for n in range(runs):
        if n % 10 == 0:
            progress(f"route propagation: runs {n + 1}-{min(runs, n + 10)} of {runs}")
        ip = f"100.64.17.{n % 200 + 10}"
        started = time.monotonic()
        lab.docker("h1", "run", "-d", "--stop-timeout", "1", "--net", f"scale-{tag}", "--ip", ip, "--name", f"p-{tag}-{n}",
                   IMAGE, "sleep", "600")
        returned = time.monotonic()
        while lab.node("h2").run(["nsenter", "-t", pid, "-n", "--", "ping", "-c", "1", "-W", "1", ip], check=False).returncode:
            if time.monotonic() - started > 30:
                raise RuntimeError(f"{ip} never answered")
        answered = time.monotonic()
        from_start.append(answered - started)
        from_return.append(answered - returned)
        lab.docker("h1", "rm", "-f", f"p-{tag}-{n}")
    return {name: {"p50": statistics.median(v), "p99": percentile(v, 0.99), "max": max(v)}
            for name, v in (("from docker run start", from_start), ("from docker run return", from_return))}


def scale(lab: Lab, sizes: list[int], progress: Steps) -> list[dict]:
    rows = []
    for count in sizes:
        progress(f"flow programming: {count} remote endpoints written to the store")
        base = flow_count(lab, "h1")
        writer = subprocess.Popen(lab.node("svc").command([sys.executable, "-c", SIMULATE, lab.zookeeper_url, str(VNI),
                                                           str(count), "10"]),
                                  cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout.readline().strip() == "written"
            written = time.monotonic()
            while flow_count(lab, "h1") < base + 2 * count:
                if time.monotonic() - written > 300:
                    raise RuntimeError(f"h1 did not program {count} routes in 300 s")
                time.sleep(0.05)
            took = time.monotonic() - written
            rows.append({"endpoints": count, "seconds": took, "flows": flow_count(lab, "h1") - base})
        finally:
            writer.stdin.close()
            writer.wait(timeout=120)
        while flow_count(lab, "h1") > base:
            time.sleep(0.1)
        progress(f"flow programming: {count} remote endpoints took {rows[-1]['seconds']:.2f} s, {rows[-1]['flows']} flows")
    return rows


def prepare(lab: Lab, tag: str) -> None:
    """The vxlan network on h1 and h2, the container on h2 that pings the new ones, and one on h1: a
    host programs a segment's remote endpoints only while it has an endpoint there itself."""
    for host in ("h1", "h2"):
        lab.docker(host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", SUBNET,
                   "-o", f"VxlanId={VNI}", f"scale-{tag}")
    for host, name in (("h2", f"probe-{tag}"), ("h1", f"anchor-{tag}")):
        lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", f"scale-{tag}", "--name", name, IMAGE, "sleep", "7200")


def clean_up(lab: Lab, tag: str) -> None:
    lab.docker("h2", "rm", "-f", f"probe-{tag}", check=False)
    lab.docker("h1", "rm", "-f", f"anchor-{tag}", check=False)
    for host in ("h1", "h2"):
        lab.docker(host, "network", "rm", f"scale-{tag}", check=False)


def markdown(report: dict) -> str:
    runs = report["runs"]
    lines = [f"Route propagation h1 -> h2 over {runs} runs (seconds until h2's first ping reply):", "",
             "| measured | p50 (s) | p99 (s) | max (s) |", "|---|---|---|---|"]
    for name, row in report["propagation"].items():
        lines.append(f"| {name} | {row['p50']:.3f} | {row['p99']:.3f} | {row['max']:.3f} |")
    lines += ["", "Flow programming on h1 for remote endpoints written to the store:", "",
              "| endpoints | seconds | flows | flows per endpoint |", "|---|---|---|---|"]
    for row in report["scale"]:
        lines.append(f"| {row['endpoints']} | {row['seconds']:.2f} | {row['flows']} | {row['flows'] / row['endpoints']:.2f} |")
    return "\n".join(lines)


def measure(lab: Lab, runs: int, sizes: list[int], progress: Steps) -> dict:
    tag = uuid.uuid4().hex[:6]
    progress("vxlan: a network on h1 and h2, a probe container on h2")
    prepare(lab, tag)
    try:
        times = propagation(lab, runs, tag, progress)
        return {"runs": runs, "propagation": times, "scale": scale(lab, sizes, progress)}
    finally:
        clean_up(lab, tag)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--endpoints", default="100,1000,5000")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--workdir", default="/var/lib/acsnet/scale-lab")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.endpoints.split(",")]
    return run_on_a_lab(args.workdir, "acsnet-s", 2, lambda lab, steps: measure(lab, args.runs, sizes, steps), markdown, args.json)


if __name__ == "__main__":
    sys.exit(main())
