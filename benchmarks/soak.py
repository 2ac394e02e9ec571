"""Soak benchmark: N minutes of container churn on three lab hosts with faults injected, then the count
of operations, errors, addresses seen twice and anything leaked.

Faults, in turn, every --fault-every seconds: the vlan plugin of a host killed (SIGKILL) and started
again; the IPAM plugin of a host likewise; one member of the 3-node ZooKeeper ensemble stopped, and
started again at the next fault. Errors while a plugin is down are expected (dockerd cannot reach
it); addresses seen twice and leaks are not.

    python -m acsnet.benchmarks.soak [--minutes 5] [--fault-every 20]
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
import time
import uuid

from acsnet.lab.churn import churn, leftovers
from acsnet.lab.topology import Lab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--fault-every", type=float, default=20.0)
    parser.add_argument("--workdir", default="/var/lib/acsnet/soak-lab")
    args = parser.parse_args(argv)

    lab = Lab(args.workdir, f"acsnet-s{uuid.uuid4().hex[:4]}")
    faults_done: list[str] = []
    stopped_member: list[int] = []
    steps = itertools.cycle([("vlan", "h1"), ("acsnet", "h2"), ("zookeeper", None), ("vlan", "h3"), ("acsnet", "h1")])

    def inject() -> None:
        if stopped_member:  # the ensemble member stopped last time comes back first
            lab.start_zookeeper(stopped_member.pop())
        kind, host = next(steps)
        if kind == "zookeeper":
            lab.stop_zookeeper(1)
            stopped_member.append(1)
            faults_done.append("zookeeper member 2 stopped")
        else:
            plugin = "ipam" if kind == "acsnet" else kind
            lab.kill_plugin(host, plugin, signal.SIGKILL)
            lab.start_plugin(host, plugin)
            faults_done.append(f"{plugin} on {host} killed and restarted")

    try:
        print(f"building a 3-host lab with a ZooKeeper ensemble; churning for {args.minutes:g} min", file=sys.stderr, flush=True)
        lab.up(hosts=3, zookeepers=3)
        started = time.monotonic()
        report = churn(lab, args.minutes * 60, fault=inject, fault_every=args.fault_every)
        if stopped_member:
            lab.start_zookeeper(stopped_member.pop())
        elapsed = time.monotonic() - started
        left = leftovers(lab)
    finally:
        lab.down()
    leaked = len(left["addresses"]) + left["segment_records"] + left["endpoint_records"] + sum(len(p) for p in left["ports"].values())
    result = {"minutes": round(elapsed / 60, 2), "runs": report.runs, "removals": report.removals,
              "errors": len(report.errors), "duplicates": len(report.duplicates), "leaked": leaked,
              "faults": faults_done, "first_errors": report.errors[:5], "leftovers": left}
    print(json.dumps(result, indent=2))
    print(f"\n{report.runs} containers run and {report.removals} removed in {elapsed / 60:.1f} min on 3 hosts, "
          f"{len(faults_done)} faults injected: {len(report.errors)} errors, {len(report.duplicates)} addresses seen twice, "
          f"{leaked} things leaked")
    return 0 if not report.duplicates and not leaked else 1


if __name__ == "__main__":
    sys.exit(main())
