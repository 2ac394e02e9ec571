"""add-port time against the number of ports already on a host: `ovs-vsctl add-port` (a fork that
downloads the bridges, ports and interfaces before it changes anything) against acsnet's persistent
IDL connection (acsnet.ovsctl.ovsdb), each in a block of its own, on a private ovsdb-server started here (a unix
socket in a temporary directory: nothing touches a network). No ovs-vswitchd runs, so both commit
without waiting for it (`--no-wait`, `wait=False`): the row is OVSDB's part of add-port, the part
that grows with the ports.

    python -m acsnet.benchmarks.ovsdb_ports [--sizes 0,500,1000,2000] [--samples 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from acsnet.benchmarks.progress import Steps
from acsnet.ovsctl.ovsdb import Ovsdb

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
BRIDGE = "benchbr0"
FILL_BATCH = 250  # ports added per ovs-vsctl call while filling the database


def measure(sizes: list[int], samples: int, progress=lambda message, estimate=None: None) -> list[dict]:
    """One row per size: median and p90 of `samples` add-ports each way (each port deleted again, untimed)."""
    workdir = tempfile.mkdtemp(prefix="acsnet-ovsdb-bench-")
    remote = f"unix:{workdir}/db.sock"
    server = None
    ovsdb = Ovsdb(remote, timeout=30)
    try:
        subprocess.run(["ovsdb-tool", "create", f"{workdir}/conf.db", SCHEMA], check=True, capture_output=True, timeout=30)
        server = subprocess.Popen(["ovsdb-server", f"{workdir}/conf.db", f"--remote=punix:{workdir}/db.sock",
                                   f"--unixctl={workdir}/ovsdb-server.ctl", f"--log-file={workdir}/ovsdb-server.log"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while _vsctl(remote, "init", check=False).returncode != 0:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the private ovsdb-server did not start; see {workdir}/ovsdb-server.log")
            time.sleep(0.05)
        _vsctl(remote, "add-br", BRIDGE)
        rows, filled = [], 0
        for size in sorted(sizes):
            progress(f"OVSDB add-port with {size} ports on the bridge: {samples} by ovs-vsctl, {samples} by the IDL")
            for start in range(filled, size, FILL_BATCH):
                args = []
                for n in range(start, min(size, start + FILL_BATCH)):
                    args += ["--", "add-port", BRIDGE, f"fill{n}"]
                _vsctl(remote, *args[1:])
            filled = max(filled, size)
            ovsdb.ports(BRIDGE)  # the replica holds them all before the clock starts
            vsctl_ms, idl_ms = [], []
            for n in range(samples):
                started = time.perf_counter()
                _vsctl(remote, "add-port", BRIDGE, f"bench{n}")
                vsctl_ms.append((time.perf_counter() - started) * 1000)
                _vsctl(remote, "del-port", BRIDGE, f"bench{n}")
            # In blocks, not interleaved: the first transaction after an ovs-vsctl write is slow in
            # ovsdb-server itself, whoever sends it (25-100 ms at 2,000 ports, measured with a bare
            # JSON-RPC client), and would be charged to the IDL. Its block starts with one untimed pair.
            for n in range(-1, samples):
                started = time.perf_counter()
                ovsdb.add_port(BRIDGE, f"bench{n + 1}", wait=False)
                if n >= 0:
                    idl_ms.append((time.perf_counter() - started) * 1000)
                ovsdb.delete_port(BRIDGE, f"bench{n + 1}", wait=False)
            rows.append({"ports": size, "samples": samples, "ovs_vsctl_ms": statistics.median(vsctl_ms),
                         "ovs_vsctl_p90_ms": _p90(vsctl_ms), "idl_ms": statistics.median(idl_ms), "idl_p90_ms": _p90(idl_ms)})
        return rows
    finally:
        ovsdb.close()
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def _vsctl(remote: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ovs-vsctl", f"--db={remote}", "--no-wait", "--timeout=30", *args], check=check,
                          capture_output=True, text=True, timeout=60)


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def markdown(rows: list[dict]) -> str:
    lines = ["add-port time vs ports on a host (private ovsdb-server, no ovs-vswitchd; median, p90 in brackets):", "",
             "| ports on the bridge | ovs-vsctl add-port (ms) | persistent IDL (ms) | ovs-vsctl / IDL |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['ports']} | {row['ovs_vsctl_ms']:.1f} ({row['ovs_vsctl_p90_ms']:.1f}) | "
                     f"{row['idl_ms']:.2f} ({row['idl_p90_ms']:.2f}) | {row['ovs_vsctl_ms'] / row['idl_ms']:.0f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,500,1000,2000", help="ports on the bridge at each row")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    rows = measure([int(n) for n in args.sizes.split(",")], args.samples, Steps())
    print(markdown(rows))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
