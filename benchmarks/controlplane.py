"""Control-plane figures on a 3-host lab, in one run:

- `docker run --rm` time with each acsnet driver against Docker's built-in bridge driver on the same
  host (interleaved; median and ratio to bridge), and with Docker's macvlan and overlay, the peers of
  vlan and vxlan (benchmarks/peers.py: h1 and h2 form a swarm for overlay),
- each plugin's own handler time per call (p50/p99, from its Prometheus histogram),
- IPAM allocations per second with all three hosts allocating and releasing at once on one pool,
- cross-host route propagation (p50/p99) and flow programming for 100/1000/5000 remote endpoints
  (vxlan; benchmarks/vxlan_scale.py),
- CreateEndpoint time per driver during the `docker run`s, exact, and the plugins' own time per
  container: the sum of every call's handler time (from each plugin's request log),
- one endpoint's flow change, `ovs-ofctl` forked, one started ahead and the kept OpenFlow connection,
  wall time and CPU (benchmarks/flow_change.py),
- the host's store round trips alone and beside a port being added or removed (benchmarks/host_stall.py),
- add-port time against the ports already on a host, ovs-vsctl against the plugins' persistent IDL
  (benchmarks/ovsdb_ports.py, on a private ovsdb-server).
`acsnet bench` runs the same after the datapath table, into the same report.

    python -m acsnet.benchmarks.controlplane [--runs 20] [--seconds 10] [--propagation-runs 50]
        [--ovsdb-ports 0,500,1000,2000] [--json FILE]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from fractions import Fraction
from math import comb

from acsnet.benchmarks import flow_change, host_stall, ovsdb_ports, peers, vxlan_scale
from acsnet.benchmarks.progress import Steps
from acsnet.benchmarks.standalone import run_on_a_lab
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.host import REPO
from acsnet.lab.topology import Lab

NETWORKS = {  # driver -> create options
    "bridge": ["-d", "bridge", "--subnet", "100.73.0.0/24"],
    "vlan": ["-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "198.51.100.0/24", "--gateway", "198.51.100.1", "-o", "VlanId=217"],
    "vxlan": ["-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", "100.64.30.0/24", "-o", "VxlanId=330"],
    "vpc": ["-d", "vpc", "--ipam-driver", "acsnet", "--subnet", "100.74.0.0/16"],
    "macvlan": peers.macvlan_options("192.0.2.240/28"),
    "overlay": peers.overlay_options("100.78.0.0/24"),
}
PEERS = {"vlan": "macvlan", "vxlan": "overlay"}  # acsnet's driver -> Docker's own that a user would pick instead
PLUGIN_SOCKETS = {"acsnet": "acsnet.sock", "vlan": "vlan.sock", "vxlan": "vxlan.sock", "vpc": "vpc.sock"}
REQUEST_LINE = re.compile(r"plugin=(\S+) method=(\w+\.\w+) status=(\d+) duration_ms=([0-9.]+)")
IPAM_PLUGIN = "acsnet"
OVSDB_PORTS_SAMPLES = 20

SCRAPE = """
import sys
from acsnet.plugin_client import UnixHTTPConnection
c = UnixHTTPConnection(sys.argv[1], 10)
c.request("GET", "/metrics")
print(c.getresponse().read().decode())
"""

ROUND_TRIP = """
import json, sys, time
from acsnet.plugin_client import PluginClient
client, times = PluginClient(sys.argv[1], 10), []
for n in range(int(sys.argv[2])):
    started = time.perf_counter()
    status, _ = client.call_raw("NetworkDriver.GetCapabilities", b"{}")
    times.append(time.perf_counter() - started)
    assert status == 200, status
print(json.dumps(times))
"""
ROUND_TRIP_CALLS = 400  # the first tenth (warm-up) is left out

ALLOCATE = """
import json, sys, time
from acsnet.plugin_client import PluginClient
client = PluginClient("/run/docker/plugins/acsnet.sock", 30)
status, pool = client.call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": sys.argv[1], "Options": {}})
assert status == 200, pool
host, deadline, n = sys.argv[2], time.monotonic() + float(sys.argv[3]), 0
while time.monotonic() < deadline:
    mac = f"02:42:{host[-1]}{n % 10}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
    status, got = client.call("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "",
                                                           "Options": {"com.docker.network.endpoint.macaddress": mac}})
    assert status == 200, got
    client.call("IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": got["Address"].split("/")[0]})
    n += 1
client.call("IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})
print(n)
"""


def quantiles(metrics: str, plugin: str) -> dict[str, dict[str, float]]:
    """p50/p99 per method from the cumulative buckets of acsnet_request_seconds (bucket upper bounds)."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    for line in metrics.splitlines():
        found = re.match(r"acsnet_request_seconds_bucket\{([^}]*)\} (\S+)$", line)
        if not found:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
        if labels.get("plugin") != plugin:
            continue
        le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
        buckets.setdefault(labels["method"], []).append((le, float(found.group(2))))
    result = {}
    for method, points in buckets.items():
        points.sort()
        total = points[-1][1]
        if total == 0:
            continue

        def bound(q: float) -> float:
            return next(le for le, count in points if count >= q * total)

        result[method] = {"calls": total, "p50_ms": bound(0.5) * 1000, "p99_ms": bound(0.99) * 1000}
    return result


def plugin_logs(lab: Lab, host: str) -> dict[str, int]:
    """The plugins' log files on a host (PluginProcess writes `<name>-<ns>.log` in its workdir), with their sizes."""
    return {path: os.path.getsize(path) for path in glob.glob(os.path.join(lab.node(host).workdir, "*-*.log"))}


def plugin_calls(since: dict[str, int], now: dict[str, int]) -> dict[str, list[tuple[str, float]]]:
    """Each plugin's calls logged after `since`: plugin -> [(method, handler ms to the tenth)], a call
    answered with an error as `Method!status` (its time counts, apart from the method's successes)."""
    calls: dict[str, list[tuple[str, float]]] = {}
    for path, size in now.items():
        with open(path, errors="replace") as f:
            f.seek(since.get(path, 0))
            for line in f.read(size - since.get(path, 0)).splitlines():
                found = REQUEST_LINE.search(line)
                if found:
                    plugin, method, status, ms = found.groups()
                    calls.setdefault(plugin, []).append((method + ("" if status == "200" else f"!{status}"), float(ms)))
    return calls


def create_endpoint_durations(calls: dict[str, list[tuple[str, float]]]) -> dict[str, list[float]]:
    """Each plugin's successful CreateEndpoint durations (ms), in the order it logged them."""
    return {plugin: [ms for method, ms in found if method == "NetworkDriver.CreateEndpoint"]
            for plugin, found in sorted(calls.items())}


def create_endpoint_times(calls: dict[str, list[tuple[str, float]]]) -> dict:
    """CreateEndpoint durations per driver, to the tenth of a millisecond (the Prometheus histogram only
    says which bucket: 25 or 50 ms)."""
    return {driver: {"calls": len(d), "p50_ms": statistics.median(d), "max_ms": max(d)}
            for driver, d in create_endpoint_durations(calls).items() if d}


def create_endpoint_by_run_before(calls: dict[str, list[tuple[str, float]]], sequence: list[str]) -> dict:
    """Each driver's CreateEndpoint times by the driver whose `docker run` came just before (`sequence`:
    every run in order): what a run leaves behind lands in the next one (`balanced_orders`), and a
    tail the p50 hides shows here. Calls are matched to runs in order, one each; a driver whose calls
    do not number its runs (one refused, or retried) gets none."""
    found = {}
    for driver, durations in create_endpoint_durations(calls).items():
        before = [sequence[i - 1] if i else None for i, ran in enumerate(sequence) if ran == driver]
        if not durations or len(durations) != len(before):
            continue
        by_before: dict[str, list[float]] = {}
        for previous, ms in zip(before, durations):
            if previous is not None:
                by_before.setdefault(previous, []).append(ms)
        found[driver] = {previous: {"calls": len(d), "mean_ms": statistics.fmean(d), "p50_ms": statistics.median(d)}
                         for previous, d in by_before.items()}
    return found


def handler_ms_per_container(calls: dict[str, list[tuple[str, float]]], runs: int, drivers: list[str]) -> dict[str, dict[str, float]]:
    """The plugins' own time in one container's life, by method, for each acsnet driver: every call its
    driver plugin answered over the runs, plus an equal share of the IPAM's (the drivers' containers
    asked it alike: one RequestAddress and one ReleaseAddress each), per run. Sums of exact handler
    times: they show a saving of a few milliseconds that the `docker run` medians' spread hides, and
    how much of the gap to bridge is not the plugins' (dockerd's work, the socket's round trips)."""
    ipam: dict[str, float] = {}
    for method, ms in calls.get(IPAM_PLUGIN, []):
        ipam[method] = ipam.get(method, 0.0) + ms / len(drivers) / runs
    found = {}
    for driver in drivers:
        by_method = dict(ipam)
        for method, ms in calls.get(driver, []):
            by_method[method] = by_method.get(method, 0.0) + ms / runs
        found[driver] = dict(sorted(by_method.items(), key=lambda item: -item[1]))
    return found


def balanced_orders(names: list[str]) -> list[list[str]]:
    """The order of each round: len(names) - 1 rounds, run one after another and over again, in which
    each name follows each other name exactly once, across rounds too (the first of a round follows the
    last of the one before; the last round's last, the first's first). What a run leaves behind lands in
    the next run: the work a plugin does after answering (a port retired 0.1 s later, commits), overlay's
    swarm after its container is gone. With the order flipped every round, macvlan followed overlay in
    every other round and ran 32-42 ms slower there (README, "DeleteEndpoint answered before its flows'
    change"); with a Williams design, balanced within rounds only, each driver followed one other twice
    as often as the rest at the rounds' seams: vpc followed overlay in 53 of 160 runs, and a CreateEndpoint
    after overlay's run took 20 ms against 7 ("CreateEndpoint's tail"). Found by a depth-first search,
    the first in order (instant for up to 9 names; bridge, the first name, leads)."""
    count = len(names)
    if count < 2:
        return [list(names)]
    length, sequence, used = count * (count - 1), [0], set()

    def extend() -> bool:
        if len(sequence) == length:
            return (sequence[-1], sequence[0]) not in used  # the cycle closes on a pair not used yet
        in_round = set(sequence[len(sequence) - len(sequence) % count:])
        for name in range(count):
            pair = (sequence[-1], name)
            if name == sequence[-1] or name in in_round or pair in used:
                continue
            used.add(pair)
            sequence.append(name)
            if extend():
                return True
            sequence.pop()
            used.discard(pair)
        return False

    if not extend():
        raise ValueError(f"no balanced order of {count} names")
    return [[names[i] for i in sequence[k:k + count]] for k in range(0, length, count)]


def docker_run_times(lab: Lab, runs: int, progress: Steps, drivers: list[str] | None = None) -> dict:
    """`docker run --rm` on h1 per network driver (`drivers`, bridge first; None: every one of NETWORKS),
    interleaved (`balanced_orders`), and the drivers' CreateEndpoint times during those runs."""
    drivers = list(NETWORKS) if drivers is None else drivers
    tag = uuid.uuid4().hex[:6]
    progress(f"docker run --rm on h1: {runs} runs of each of {', '.join(drivers)}")
    if "overlay" in drivers:
        peers.ensure_swarm(lab)
    for driver in drivers:
        lab.docker("h1", "network", "create", *NETWORKS[driver], f"cp-{driver}-{tag}")
    logs_before = plugin_logs(lab, "h1")
    try:
        times: dict[str, list[float]] = {d: [] for d in drivers}
        orders = balanced_orders(drivers)
        sequence = [driver for n in range(runs) for driver in orders[n % len(orders)]]
        for driver in sequence:
            started = time.monotonic()
            lab.docker("h1", "run", "--rm", "--net", f"cp-{driver}-{tag}", IMAGE, "true")
            times[driver].append(time.monotonic() - started)
        calls = plugin_calls(logs_before, plugin_logs(lab, "h1"))  # the runs' calls, not the networks' removal
    finally:
        for driver in drivers:
            lab.docker("h1", "network", "rm", f"cp-{driver}-{tag}", check=False)
    endpoints = create_endpoint_times(calls)
    by_run_before = create_endpoint_by_run_before(calls, sequence)
    handlers = handler_ms_per_container(calls, runs, [d for d in drivers if IPAM_PLUGIN in NETWORKS[d]])
    bridge = statistics.median(times["bridge"])
    return {d: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "runs_s": t,
                "ratio_to_bridge": statistics.median(t) / bridge,
                "extra_over_bridge_ms": paired_extra_ms(t, times["bridge"]),
                **({"ratio_to_peer": statistics.median(t) / statistics.median(times[PEERS[d]]),
                    "extra_over_peer_ms": paired_extra_ms(t, times[PEERS[d]])} if PEERS.get(d) in times else {}),
                **({"create_endpoint": endpoints[d]} if d in endpoints else {}),
                **({"create_endpoint_by_run_before": by_run_before[d]} if d in by_run_before else {}),
                **({"plugins_ms_per_container": sum(handlers[d].values()), "plugins_ms_by_method": handlers[d]}
                   if d in handlers else {})} for d, t in times.items()}


def paired_extra_ms(times: list[float], bridge: list[float]) -> dict[str, float]:
    """What a container costs over bridge's, run by run: each run of a driver less bridge's run of the
    same round (the drivers take turns within a round), in ms, median and quartiles. The medians'
    ratio moves with the machine's pace over the whole run; a round's two runs are seconds apart, so that
    drift cancels out of each difference, and the quartiles show the scatter that is left (50-95 ms
    wide on this machine on 2026-12-03: a few ms per container is beyond what a run of 30 can see).
    The median's 95% interval (`median_interval`) says whether the run tells the driver from bridge."""
    differences = sorted((t - b) * 1000 for t, b in zip(times, bridge))
    low, high, coverage = median_interval(differences)
    interval = {"median_low": low, "median_high": high, "median_coverage": coverage}
    if len(differences) < 2:
        return {"median": differences[0], "q1": differences[0], "q3": differences[0], **interval}
    q1, median, q3 = statistics.quantiles(differences, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3, **interval}


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """An interval holding the median of what `values` sample with at least `confidence`, whatever their
    distribution: the k-th smallest and k-th largest value, k the largest with P(Binomial(n, 1/2) < k)
    at most half of 1 - confidence. Also its coverage (below `confidence` only for fewer than 6 values,
    where the interval is the whole range)."""
    ordered = sorted(values)
    n = len(ordered)
    tail = Fraction(1 - confidence).limit_denominator(10**6) / 2
    k, fewer = 1, 1  # fewer: of the 2^n equally likely outcomes, those with under k values below the median
    while k + 1 <= (n + 1) // 2 and Fraction(fewer + comb(n, k), 2**n) <= tail:
        fewer += comb(n, k)
        k += 1
    return ordered[k - 1], ordered[n - k], float(1 - 2 * Fraction(fewer, 2**n))


def told_apart(extra: dict[str, float]) -> str:
    """What a run says of a driver against bridge (or another peer), from the median's 95% interval of
    the differences."""
    if extra["median_low"] > 0:
        return "slower"
    if extra["median_high"] < 0:
        return "faster"
    return "not told apart"


def handler_times(lab: Lab) -> dict:
    report = {}
    for plugin, sock in PLUGIN_SOCKETS.items():
        metrics = lab.node("h1").run([sys.executable, "-c", SCRAPE, f"/run/docker/plugins/{sock}"]).stdout
        report[plugin] = quantiles(metrics, plugin)
    return report


def call_round_trip(lab: Lab, progress: Steps, calls: int = ROUND_TRIP_CALLS) -> dict[str, float]:
    """A trivial call's round trip through the vlan plugin's socket on h1, one keep-alive connection as
    dockerd's: what the server costs each of the ~10 calls of a container, beyond the handler's own
    time (which the plugins log, and which 'plugins per container' sums)."""
    progress(f"a trivial call through h1's vlan plugin socket: {calls} in a row")
    out = lab.node("h1").run([sys.executable, "-c", ROUND_TRIP, f"/run/docker/plugins/{PLUGIN_SOCKETS['vlan']}",
                              str(calls)]).stdout
    times = sorted(t * 1000 for t in json.loads(out)[calls // 10:])
    return {"calls": len(times), "p50_ms": statistics.median(times), "p90_ms": times[int(len(times) * 0.9)]}


def ipam_rate(lab: Lab, seconds: float, progress: Steps) -> dict:
    """Every host allocates and releases on one shared pool at once."""
    progress(f"IPAM: {len(lab.hosts())} hosts allocating on one pool at once", estimate=seconds)
    racers = [subprocess.Popen(lab.node(h).command([sys.executable, "-c", ALLOCATE, "100.75.0.0/16", h, str(seconds)]),
                               cwd=REPO, stdout=subprocess.PIPE, text=True) for h in lab.hosts()]
    counts = [int(r.communicate(timeout=seconds + 120)[0].strip()) for r in racers]
    return {"hosts": len(counts), "seconds": seconds, "allocations": sum(counts), "per_second": sum(counts) / seconds,
            "per_host": counts}


def measure(lab: Lab, progress: Steps, *, runs: int, seconds: float, propagation_runs: int, endpoints: list[int],
            ovsdb_port_counts: list[int] = (0, 500, 1000, 2000), flow_change_samples: int = flow_change.SAMPLES,
            host_stall_samples: int = host_stall.SAMPLES, drivers: list[str] | None = None) -> dict:
    """Every control-plane figure on a lab of 2 or more hosts (the IPAM race uses all of them)."""
    report = {"docker_run": docker_run_times(lab, runs, progress, drivers)}
    progress("plugin handler times on h1 (their metrics)")
    report["handlers"] = handler_times(lab)
    report["call_round_trip"] = call_round_trip(lab, progress)
    report["ipam"] = ipam_rate(lab, seconds, progress)
    report["vxlan"] = vxlan_scale.measure(lab, propagation_runs, endpoints, progress)
    report["flow_change"] = flow_change.measure(lab, flow_change_samples, progress)
    report["host_stall"] = host_stall.measure(lab, host_stall_samples, progress)
    report["ovsdb_ports"] = ovsdb_ports.measure(list(ovsdb_port_counts), OVSDB_PORTS_SAMPLES, progress)
    return report


def markdown(report: dict) -> str:
    runs = report["docker_run"]
    lines = ["`docker run --rm` on one host, interleaved runs (each driver after each other equally often),",
             "median (min-max), the driver's CreateEndpoint",
             "during them, and the plugins' own time per container: every call's handler time, the IPAM's shared",
             "alike among the acsnet drivers (their request logs; targets: at most 1.00x bridge, CreateEndpoint",
             "p50 under 20 ms). Over bridge, run by run: each run less bridge's run of the same round, median",
             "(quartiles), which the machine's pace over the whole run moves less than the medians' ratio, and",
             "that median's 95% interval (order statistics, no distribution assumed): the run tells a driver",
             "slower or faster than bridge only if the interval leaves out 0:", "",
             "| network driver | seconds | / bridge | over bridge, run by run (ms) | its median, 95% (ms) | "
             "CreateEndpoint p50 (ms) | max (ms) | plugins per container (ms) |",
             "|---|---|---|---|---|---|---|---|"]
    for driver, row in runs.items():
        endpoint = row.get("create_endpoint")
        times = f"{endpoint['p50_ms']:.1f} | {endpoint['max_ms']:.1f}" if endpoint else "- | -"
        plugins = f"{row['plugins_ms_per_container']:.1f}" if "plugins_ms_per_container" in row else "-"
        extra = row["extra_over_bridge_ms"]
        paired = "-" if driver == "bridge" else f"{extra['median']:+.0f} ({extra['q1']:+.0f} to {extra['q3']:+.0f})"
        interval = "-" if driver == "bridge" else (f"{extra['median_low']:+.0f} to {extra['median_high']:+.0f}: "
                                                   f"{told_apart(extra)}")
        lines.append(f"| {driver} | {row['median_s']:.3f} ({row['min_s']:.3f}-{row['max_s']:.3f}) | "
                     f"{row['ratio_to_bridge']:.2f} | {paired} | {interval} | {times} | {plugins} |")
    breakdown = [f"- {driver}, {row['plugins_ms_per_container']:.1f} ms: " + ", ".join(
        f"{method.split('.')[-1]} {ms:.1f}" for method, ms in row["plugins_ms_by_method"].items() if ms >= 0.05)
        for driver, row in runs.items() if "plugins_ms_by_method" in row]
    if breakdown:
        lines += ["", "The plugins' time per container by call (ms; the IPAM's calls shared alike):", "", *breakdown]
    after = [f"- {driver}: " + ", ".join(f"after {previous} {row['mean_ms']:.1f} (p50 {row['p50_ms']:.1f}, {row['calls']})"
                                         for previous, row in by.items())
             for driver, row in runs.items() if (by := row.get("create_endpoint_by_run_before"))]
    if after:
        lines += ["", "Each driver's CreateEndpoint by the run just before it (mean ms, p50, calls): what a run leaves "
                  "behind lands in the next one:", "", *after]
    beside = [f"{driver} / {PEERS[driver]} {row['ratio_to_peer']:.2f}, run by run {peer['median']:+.0f} ms (95%: "
              f"{peer['median_low']:+.0f} to {peer['median_high']:+.0f}, {driver} {told_apart(peer)})"
              for driver, row in runs.items() if "ratio_to_peer" in row for peer in [row["extra_over_peer_ms"]]]
    if beside:
        lines += ["", "Against Docker's own drivers (the medians' ratio, and the round's differences' median with its "
                  "95% interval; 'slower': the acsnet driver is): " + "; ".join(beside) + "."]
    lines += ["", "Plugin handler time per call on h1 (from acsnet_request_seconds; bucket bounds):", "",
              "| plugin | method | calls | p50 (ms) | p99 (ms) |", "|---|---|---|---|---|"]
    for plugin, methods in report["handlers"].items():
        for method, row in sorted(methods.items()):
            lines.append(f"| {plugin} | {method} | {row['calls']:.0f} | {row['p50_ms']:g} | {row['p99_ms']:g} |")
    trip = report["call_round_trip"]
    lines += ["", f"A trivial call's round trip through a plugin's socket (vlan's GetCapabilities on h1, {trip['calls']} "
              f"on one keep-alive connection, as dockerd's): p50 {trip['p50_ms']:.2f} ms, p90 {trip['p90_ms']:.2f} ms."]
    ipam = report["ipam"]
    lines += ["", f"IPAM: {ipam['allocations']} allocations (+ releases) in {ipam['seconds']:g} s by {ipam['hosts']} hosts "
              f"at once on one pool: {ipam['per_second']:.0f} allocations/s (per host {ipam['per_host']})", ""]
    return ("\n".join(lines) + vxlan_scale.markdown(report["vxlan"]) + "\n\n" + flow_change.markdown(report["flow_change"])
            + "\n\n" + host_stall.markdown(report["host_stall"])
            + "\n\n" + ovsdb_ports.markdown(report["ovsdb_ports"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the IPAM allocation race")
    parser.add_argument("--propagation-runs", type=int, default=50)
    parser.add_argument("--endpoints", default="100,1000,5000", help="remote endpoints simulated for flow programming")
    parser.add_argument("--ovsdb-ports", default="0,500,1000,2000", help="ports on the bridge at each add-port row")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--out", help="write controlplane.md and controlplane.json into this directory")
    parser.add_argument("--workdir", default="/var/lib/acsnet/controlplane-lab")
    parser.add_argument("--prefix", default="acsnet-c", help="the lab's name prefix (4 random hex digits follow)")
    parser.add_argument("--drivers", default=",".join(NETWORKS),
                        help="the network drivers `docker run --rm` is timed on, bridge among them (more runs of "
                             "fewer drivers, to tell a few ms apart: e.g. bridge,vlan,macvlan)")
    args = parser.parse_args(argv)
    drivers = args.drivers.split(",")
    unknown = [d for d in drivers if d not in NETWORKS]
    if unknown or "bridge" not in drivers or len(set(drivers)) != len(drivers):
        parser.error(f"--drivers {args.drivers}: names each of {', '.join(NETWORKS)} at most once, bridge among them"
                     + (f" ({', '.join(unknown)} unknown)" if unknown else ""))
    drivers = ["bridge"] + [d for d in drivers if d != "bridge"]  # the reference leads, as in every run before
    endpoints = [int(n) for n in args.endpoints.split(",")]
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        args.json = args.json or os.path.join(args.out, "controlplane.json")

    def report_markdown(report: dict) -> str:
        text = markdown(report)
        if args.out:
            with open(os.path.join(args.out, "controlplane.md"), "w") as f:
                f.write(text + "\n")
        return text

    return run_on_a_lab(args.workdir, args.prefix, 3, lambda lab, steps: measure(
        lab, steps, runs=args.runs, seconds=args.seconds, propagation_runs=args.propagation_runs, endpoints=endpoints,
        ovsdb_port_counts=[int(n) for n in args.ovsdb_ports.split(",")], drivers=drivers),
        report_markdown, args.json)


if __name__ == "__main__":
    sys.exit(main())
