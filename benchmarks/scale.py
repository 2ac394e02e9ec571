"""Shown at scale, by simulation: N hosts' vxlan agents against a real ZooKeeper ensemble of three.

Each simulated host is the real segment agent (`SegmentAgent`) and the real ZooKeeper store, with its
own session; its datapath is `RecordingDatapath` — a stand-in for Open vSwitch that keeps the host's
flow table (the vxlan driver's real flows) in memory. The hosts run in a handful of processes (this
machine has 2 cores). Every network exists on every host (local scope, as Docker 26 makes them); each
host has its endpoints in a few of them. The run:

1. measures what the ensemble sustains on this machine (pipelined reads, writes, watch notifications);
2. per size: writes the cluster's state, starts every host's agent (its first load), checks every
   table; then replaces containers at a steady rate across the hosts (an endpoint deleted, a new one
   made on the same address) and measures propagation (from a record's commit to the moment every
   host with endpoints on that network has it in its table), ZooKeeper's requests, watches and znodes
   (`mntr`) and their share of what it sustains, each host's CPU time and memory, the flows computed
   per event; then checks every table again (exactly the other hosts' endpoints: none missing, none stale);
3. the IPAM under contention: many hosts allocating from one /16 at once, and a 99% full /16 against
   an empty one (`benchmarks/scale_ipam.py`).

With `--before REF`, the sizes of `--before-sizes` and the IPAM's contention run also run the code of
git ref REF (`benchmarks/scale_before.py`), against the same ensemble in the same run: the report sets
before and after side by side.

    python -m acsnet.benchmarks.scale [--sizes 10,100,300,1000] [--before main --before-sizes 10,30] [--quick]
        [--before-says "what before and after differ in"] [--shared-with "what else ran"] [--out benchmarks/results]

`python -m acsnet.benchmarks.scale_report scale.json [--before-says ...] [--shared-with ...]` writes a
run's report again from its JSON (the words corrected, nothing measured again).

A size whose first load the previous size projects past `--budget` seconds, or past this machine's
free memory, is not run; the report says so and why. Writes scale.md, scale.csv, scale.json and a
chart per figure (scale-<figure>.png) to `--out`, and names the figure that limits growth.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

from acsnet.benchmarks import scale_before, scale_ipam, scale_report
from acsnet.benchmarks.scale_ensemble import Ensemble, capacity, load_fraction
from acsnet.benchmarks.scale_hosts import Layout, agents_among, serve


def percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def say(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:7.1f}s] {text}", file=sys.stderr, flush=True)


class HostProcessClient:
    """The orchestrator's end of one host process: commands answered in order, replacements as they finish."""

    def __init__(self, context, url: str, layout: Layout, indexes: list[int], tree: str | None = None,
                 relays: list[tuple[str, int]] = (), agent_indexes: list[int] | None = None):
        self.indexes = indexes
        self.agent_indexes = agents_among(indexes, agent_indexes)
        self.connection, child = context.Pipe()
        # relays and agent-less hosts only for this checkout's: a "before" tree's may not take them
        extra = (list(relays), agent_indexes) if relays or agent_indexes is not None else ()
        self.process = context.Process(target=scale_before.run_from, daemon=True,
                                       args=(tree, serve.__module__, serve.__name__, url, layout, indexes, child, *extra))
        self.process.start()
        self.asked_to_stop = False
        self.answers: queue.Queue = queue.Queue()
        self.replaced: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ready = self.answers.get(timeout=120)[1]

    def _read(self) -> None:
        try:
            while True:
                message = self.connection.recv()
                (self.replaced if message[0].startswith("replace") else self.answers).put(message)
        except (EOFError, OSError):
            self.answers.put(("error", "the host process ended"))

    def send(self, name: str, *args) -> None:
        self.connection.send((name, args))

    def answer(self, timeout: float):
        name, value = self.answers.get(timeout=timeout)
        if name == "error":
            raise RuntimeError(value)
        return value

    def call(self, name: str, *args, timeout: float = 3600):
        self.send(name, *args)
        return self.answer(timeout)

    def ask_to_stop(self) -> None:
        """Send the stop without waiting for it (every process stops at once; `stop` waits)."""
        try:
            self.send("stop")
            self.asked_to_stop = True
        except OSError:
            pass

    def stop(self) -> None:
        try:
            if not self.asked_to_stop:
                self.send("stop")
            self.answer(timeout=120)
        except (RuntimeError, queue.Empty, OSError):
            pass
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()


def on_all(clients: list[HostProcessClient], name: str, *args, timeout: float = 3600) -> list:
    for client in clients:
        client.send(name, *args)
    return [client.answer(timeout) for client in clients]


def expected_tables(layout: Layout, current: dict[tuple[int, int], int]) -> dict[int, set]:
    """VNI -> (VNI, MAC, host) of every endpoint there is, given each slot's current generation."""
    expected: dict[int, set] = {}
    for index in range(layout.hosts):
        for slot in range(layout.endpoints_per_host):
            endpoint = layout.endpoint(index, slot, current.get((index, slot), 0))
            expected.setdefault(endpoint.segment, set()).add((endpoint.segment, endpoint.mac, index))
    return expected


def summed(checks: list[dict]) -> dict:
    """The host processes' table checks as one: counts added up, a few examples of what is wrong."""
    total = {k: sum(c[k] for c in checks) for k in ("missing", "stale", "unconverged_hosts")}
    samples = [s for c in checks for s in c["samples"]][:3]
    return {**total, **({"samples": samples} if samples else {})}


def attempt_size(rows: list, skipped: list, ensemble: Ensemble, sustained: dict, layout: Layout, args, started: float,
                 tree: str | None = None) -> bool:
    """Run one size into `rows`; a size that fails (a host process's error: simulated sessions lost to
    starved heartbeats, for one) goes into `skipped` with what failed, so the sizes before it are still
    reported. False if it failed (a larger size would fail as well)."""
    try:
        rows.append(run_size(ensemble, sustained, layout, args, started, tree))
        return True
    except (RuntimeError, queue.Empty) as e:
        what = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        skipped.append({"hosts": layout.hosts, "design": "before" if tree else "after", "outcome": "did not hold",
                        "why": what})
        say(started, f"{layout.hosts} hosts ({'before' if tree else 'after'}): did not hold: {what}")
        return False


def run_size(ensemble: Ensemble, sustained: dict, layout: Layout, args, started: float, tree: str | None = None) -> dict:
    """One size: with this checkout's code, or with that of `tree` (a "before")."""
    hosts = layout.hosts
    design = "before" if tree else "after"
    url = ensemble.url(f"/scale-{hosts}-{design}-{os.getpid()}")
    context = multiprocessing.get_context("spawn")
    count = max(1, min(args.processes, hosts))
    agents = agent_hosts(hosts, args.agents) if not tree else list(range(hosts))
    relays: list[RelayProcess] = []
    clients: list[HostProcessClient] = []
    result: dict = {"hosts": hosts, "design": design, "endpoints": hosts * layout.endpoints_per_host, "processes": count,
                    "relays": 0 if tree else args.relays, "agents": len(agents)}
    say(started, f"{hosts} hosts ({design}): starting {count} host processes"
                 + (f" and {result['relays']} store relays" if result["relays"] else ""))
    try:
        relays += [RelayProcess(url) for _ in range(result["relays"])]
        clients += [HostProcessClient(context, url, layout, list(range(hosts))[p::count], tree,
                                      [relay.address for relay in relays],
                                      agents if len(agents) < hosts else None) for p in range(count)]
        t = time.monotonic()
        on_all(clients, "populate")
        result["populate_s"] = time.monotonic() - t
        before_load = ensemble.stats()
        say(started, f"{hosts} hosts: state written ({result['populate_s']:.1f}s); starting the agents")
        t = time.monotonic()
        # at most `--start-at-once` first loads at a time across the processes (a before tree's take 16 each)
        at_once = () if tree else (max(1, args.start_at_once // count),)
        loaded = on_all(clients, "start_agents", *at_once, timeout=args.budget * 3)
        result["load_s"] = time.monotonic() - t
        after_load = ensemble.stats()
        result["load_requests"] = after_load["requests"] - before_load["requests"]
        current: dict[tuple[int, int], int] = {}
        checks = on_all(clients, "check", expected_tables(layout, current), args.settle)
        result["loaded_check"] = summed(checks)
        say(started, f"{hosts} hosts: loaded in {result['load_s']:.1f}s, tables {result['loaded_check']}; churning")

        # -- steady churn ----------------------------------------------------------------------
        chooser = random.Random(hosts)
        events = int(args.rate * args.seconds)
        slots = chooser.sample([(i, s) for i in agents for s in range(layout.endpoints_per_host)],
                               min(events, len(agents) * layout.endpoints_per_host))
        owner = {i: clients[i % count] for i in range(hosts)}
        counters_before = on_all(clients, "counters")
        relay_cpu_before = sum(relay.cpu_s() for relay in relays)
        zk_before = ensemble.stats()
        t0 = time.monotonic()
        for n, (index, slot) in enumerate(slots):
            time.sleep(max(0.0, t0 + n / args.rate - time.monotonic()))
            current[(index, slot)] = 1
            owner[index].send("replace", index, slot, 1)
        commits: dict[str, tuple[int, float]] = {}
        errors = []
        for client in clients:
            for _ in range(sum(1 for i, _s in slots if i % count == clients.index(client))):
                name, value = client.replaced.get(timeout=args.budget)
                if name == "replaced":
                    commits[value[0]] = value[1]
                else:
                    errors.append(value)
        churn_s = time.monotonic() - t0
        relay_cpu = sum(relay.cpu_s() for relay in relays) - relay_cpu_before
        zk_after = ensemble.stats()
        counters_after = on_all(clients, "counters")
        # the hosts' watches by kind, most first (a "before" tree's processes may not say)
        watch_kinds = None if tree else sum(map(collections.Counter, on_all(clients, "watches")), collections.Counter())
        checks = on_all(clients, "check", expected_tables(layout, current), args.settle)
        result["check"] = summed(checks)
        arrivals: dict[str, list] = {}
        for answer in on_all(clients, "arrivals"):
            for endpoint_id, seen in answer.items():
                arrivals.setdefault(endpoint_id, []).extend(seen)

        # -- figures ---------------------------------------------------------------------------
        interested = {k: [i for i in agents if k in layout.host_networks(i)] for k in range(layout.networks)}
        delays, unpropagated = [], 0
        for index, slot in slots:
            endpoint = layout.endpoint(index, slot, 1)
            if endpoint.endpoint_id not in commits:
                continue
            k = [k for k in range(layout.networks) if layout.network(k).segment == endpoint.segment][0]
            want = {layout.host_name(i) for i in interested[k] if i != index}
            seen = {host: when for host, when in arrivals.get(endpoint.endpoint_id, ())}
            if not want <= set(seen):
                unpropagated += 1
                continue
            if want:
                delays.append(max(seen[h] for h in want) - commits[endpoint.endpoint_id])
        spanned = [len(running) - 1 for running in interested.values() if running]  # networks with an agent
        interested_hosts = sum(spanned) / len(spanned)
        flows = sum(c["flows"] for c in counters_after) - sum(c["flows"] for c in counters_before)
        programs = sum(c["programs"] for c in counters_after) - sum(c["programs"] for c in counters_before)
        per_process_hosts = [len(c.agent_indexes) for c in clients]  # (an agent-less host costs its process nothing)
        memory = [(after["rss"] - client.ready["rss"]) / n for after, client, n in zip(counters_after, clients, per_process_hosts)]
        cpu = [(after["cpu_s"] - before["cpu_s"]) / n / churn_s
               for after, before, n in zip(counters_after, counters_before, per_process_hosts)]
        load_cpu = [(l["cpu_s"] - client.ready["cpu_s"]) / n for l, client, n in zip(loaded, clients, per_process_hosts)]
        zk = {k: zk_after[k] - zk_before[k] for k in ("requests", "writes", "notifications", "leaf_notifications")}
        reads_per_s = max(zk["requests"] - zk["writes"], 0) / churn_s
        result.update({
            "events": len(slots), "events_per_s": len(slots) / churn_s, "errors": errors[:5], "error_count": len(errors),
            "propagation_p50_s": percentile(delays, 0.5), "propagation_p99_s": percentile(delays, 0.99),
            "propagated": len(delays), "unpropagated": unpropagated, "interested_hosts_per_event": interested_hosts,
            "zk_requests_per_s": zk["requests"] / churn_s, "zk_writes_per_s": zk["writes"] / churn_s,
            "zk_notifications_per_s": zk["notifications"] / churn_s, "zk_watches": zk_after["watches"],
            "hosts_watches_by_kind": None if watch_kinds is None else dict(watch_kinds.most_common()),
            "zk_znodes": zk_after["znodes"], "zk_connections": zk_after["connections"],
            "zk_leaf_notifications_per_s": zk["leaf_notifications"] / churn_s,
            "zk_load_fraction": load_fraction(reads_per_s, zk["writes"] / churn_s, zk["notifications"] / churn_s,
                                              zk["leaf_notifications"] / churn_s, sustained),
            "memory_per_host_mb": sum(memory) / len(memory) / 1e6,
            "cpu_per_host_ms_per_s": sum(cpu) / len(cpu) * 1000,
            "load_cpu_per_host_s": sum(load_cpu) / len(load_cpu),
            "load_average_1m": os.getloadavg()[0],
            "machine_busy": (sum((a["cpu_s"] - b["cpu_s"]) for a, b in zip(counters_after, counters_before)) + relay_cpu)
                            / churn_s / (os.cpu_count() or 1),
            "relay_cpu_ms_per_s": relay_cpu / churn_s * 1000 if relays else None,
            "relay_memory_mb": sum(relay.rss() for relay in relays) / 1e6 if relays else None,
            "flows_computed_per_event": flows / max(len(slots), 1), "programs_per_event": programs / max(len(slots), 1),
            # a replacement changes, on each host with endpoints on that network, the old endpoint's two
            # flows (its MAC to its VTEP, its ARP answer) for the new one's two; on its own host its four
            # (its port's classifier, its two outputs, its ARP answer) for the new one's four
            "flows_changed_per_event": 4 * interested_hosts + 8,
        })
        result["recomputed_over_changed"] = result["flows_computed_per_event"] / max(result["flows_changed_per_event"], 1)
        say(started, f"{hosts} hosts: {scale_report.one_line(result)}")
        return result
    finally:  # the relays stopped whatever stopping the host processes met (a second SIGTERM among them)
        try:
            for client in clients:
                client.ask_to_stop()
            for client in clients:
                client.stop()
        finally:
            for relay in relays:
                relay.stop()


class RelayProcess:
    """A store relay (`acsnet relay`, plain TCP on loopback) for the simulated hosts of one size:
    its CPU time and memory are read from /proc, and counted in the machine's share."""

    def __init__(self, url: str):
        self.process = subprocess.Popen([sys.executable, "-m", "acsnet.cli", "relay", "--store", url, "--listen",
                                         "127.0.0.1:0", "--insecure", "--log-level", "warning", "--store-timeout", "60"],
                                        stdout=subprocess.PIPE, text=True)
        said = self.process.stdout.readline().split()
        if said[:1] != ["listening"]:
            self.stop()
            raise RuntimeError(f"a store relay did not start (it said {said!r})")
        host, port = said[1].rsplit(":", 1)
        self.address = (host, int(port))

    def cpu_s(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def rss(self) -> int:
        with open(f"/proc/{self.process.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def agent_hosts(hosts: int, agents: int | None) -> list[int]:
    """The hosts whose agent runs at a size: every one, or `agents` of them drawn at random (the same
    ones for the same size), so that they spread over the networks as the hosts do."""
    if agents is None or agents >= hosts:
        return list(range(hosts))
    return sorted(random.Random(f"agents-{hosts}").sample(range(hosts), agents))


def projected(previous: dict, hosts: int, agents: int | None = None) -> dict:
    """What a larger size will take, from the last one run: a host's first load reads every record of
    its networks (grows with hosts), for every host that runs an agent (again, with every host:
    quadratic); memory per host linear in hosts."""
    ratio = hosts / previous["hosts"]
    running = len(agent_hosts(hosts, agents)) / previous.get("agents", previous["hosts"])
    return {"load_s": previous["load_s"] * ratio * running,
            "memory_gb": previous["memory_per_host_mb"] * ratio * len(agent_hosts(hosts, agents)) / 1000}


def available_memory_gb() -> float:
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["MemAvailable"].split()[0]) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,300,1000", help="numbers of hosts, comma-separated")
    parser.add_argument("--endpoints", type=int, default=100, help="endpoints per host")
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--networks-per-host", type=int, default=2, help="networks a host has endpoints in")
    parser.add_argument("--processes", type=int, default=4, help="processes the simulated hosts run in")
    parser.add_argument("--start-at-once", type=int, default=scale_report.DEFAULT_START_AT_ONCE,
                        help="hosts whose agents start (their first load) at once, across the processes: a cold start "
                             "of every host at once, squeezed onto this machine's cores, is paced by this")
    parser.add_argument("--rate", type=float, default=10.0, help="container replacements per second, across the hosts")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the churn lasts at each size")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds every table may take to converge")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds a size's first load may be projected to take")
    parser.add_argument("--before", help="git ref whose code runs the 'before' of each comparison (e.g. main)")
    parser.add_argument("--before-sizes", default="10,30", help="numbers of hosts the 'before' runs, comma-separated")
    parser.add_argument("--before-says", help="what before and after differ in, for the report (one sentence)")
    parser.add_argument("--shared-with", help="what else runs on the machine, for the report (e.g. other helpers' tests)")
    parser.add_argument("--relays", type=int, default=0,
                        help="store relays (acsnet relay) this checkout's hosts follow segments through "
                             "(0: each host follows ZooKeeper itself); a 'before' never has any")
    parser.add_argument("--agents", type=int,
                        help="hosts whose agent runs at each size (default: every host); the others are their state "
                             "in the store and their live sessions only: what a cluster larger than this machine can "
                             "run an agent for each host of looks like to the agents that run. ZooKeeper's figures are "
                             "then those of these agents, not of every host's")
    parser.add_argument("--ipam-hosts", type=int, default=1000)
    parser.add_argument("--ipam-per-host", type=int, default=3)
    parser.add_argument("--ipam-only", action="store_true",
                        help="run only the IPAM part; its report is scale-ipam.md (scale.md is left as it is)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and short phases (what the test runs)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--workdir", help="where the ensemble keeps its data (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.agents is not None and (args.agents < 1 or args.before):
        parser.error("--agents takes a number of hosts, at least 1, and is for this tree's hosts only (not with --before)")
    if args.quick:
        args.sizes = args.sizes if "--sizes" in (argv or sys.argv) else "3,6"
        args.endpoints, args.networks, args.networks_per_host = min(args.endpoints, 6), min(args.networks, 3), min(args.networks_per_host, 2)
        args.rate, args.seconds, args.settle, args.processes = 5.0, 2.0, 30.0, 2
        args.ipam_hosts, args.ipam_per_host = min(args.ipam_hosts, 20), min(args.ipam_per_host, 2)
    sizes = [] if args.ipam_only else [int(s) for s in args.sizes.split(",")]
    before_sizes = [int(s) for s in args.before_sizes.split(",")] if args.before and not args.ipam_only else []
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the ensemble stops on the way out
    workdir = args.workdir or tempfile.mkdtemp(prefix="acsnet-scale-")
    tree, before_commit = scale_before.export(args.before, workdir) if args.before else (None, None)
    ensemble = Ensemble(workdir).start()
    try:
        say(started, "ensemble of 3 up; measuring what it sustains")
        sustained = capacity(ensemble, processes=1 if args.quick else 4, seconds=1.0 if args.quick else 8.0)
        say(started, f"sustained: {sustained['reads_per_s']:.0f} reads/s, {sustained['writes_per_s']:.0f} writes/s, "
                     f"{sustained['notifications_per_s']:.0f} one-shot and "
                     f"{sustained['leaf_notifications_per_s']:.0f} persistent watch notifications/s")
        rows, skipped, before_rows = [], [], []
        for hosts in before_sizes:
            layout = Layout(hosts, args.endpoints, args.networks, min(args.networks_per_host, args.networks))
            if before_rows and projected(before_rows[-1], hosts)["load_s"] > args.budget:
                skipped.append({"hosts": hosts, "design": "before", "why": f"first load projected "
                                f"{projected(before_rows[-1], hosts)['load_s']:.0f}s > budget {args.budget:.0f}s"})
                continue
            if not attempt_size(before_rows, skipped, ensemble, sustained, layout, args, started, tree):
                break
        for hosts in sizes:
            layout = Layout(hosts, args.endpoints, args.networks, min(args.networks_per_host, args.networks))
            if rows:
                guess = projected(rows[-1], hosts, args.agents)
                reasons = []
                if guess["load_s"] > args.budget:
                    reasons.append(f"first load projected {guess['load_s']:.0f}s > budget {args.budget:.0f}s")
                if guess["memory_gb"] > 0.7 * available_memory_gb():
                    reasons.append(f"memory projected {guess['memory_gb']:.1f} GB > 70% of {available_memory_gb():.1f} GB free")
                if reasons:
                    skipped.append({"hosts": hosts, "design": "after", "why": "; ".join(reasons), **guess})
                    say(started, f"{hosts} hosts: not run ({skipped[-1]['why']})")
                    continue
            if not attempt_size(rows, skipped, ensemble, sustained, layout, args, started):
                break
        say(started, f"IPAM: {args.ipam_hosts} hosts allocating from one /16 at once")
        ipam = scale_ipam.run(ensemble.url("/scale-ipam"), hosts=args.ipam_hosts, per_host=args.ipam_per_host,
                              fullness_hosts=min(args.ipam_hosts, 200), processes=2 if args.quick else 4, before=tree)
    finally:
        ensemble.stop()
    report = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sustained": sustained, "rows": rows,
              "before_rows": before_rows, "before": {"ref": args.before, "commit": before_commit, "says": args.before_says} if args.before else None,
              "shared_with": args.shared_with,
              "skipped": skipped, "ipam": ipam, "load_average": os.getloadavg(), "cpus": os.cpu_count(),
              "layout": {"endpoints_per_host": args.endpoints, "networks": args.networks,
                         "networks_per_host": args.networks_per_host, "rate": args.rate, "seconds": args.seconds,
                         "processes": args.processes, "relays": args.relays, "start_at_once": args.start_at_once,
                         "agents": args.agents}}
    report["limit"] = scale_report.limiting_figure(rows)
    report["checks_failed"] = scale_report.failed_checks(report)
    report["before_failures"] = scale_report.before_failures(report)
    os.makedirs(args.out, exist_ok=True)
    text = (scale_report.write_ipam if args.ipam_only else scale_report.write)(report, args.out)
    print(text)
    with open(os.path.join(args.out, "scale-ipam.json" if args.ipam_only else "scale.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    return 1 if report["checks_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
