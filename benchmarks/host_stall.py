"""What a port coming and going on a lab host's bridge costs that host's store round trips, in one run:
a ZooKeeper read and write from h1 alone, and again while a veth port is being added to, or taken off,
h1's host bridge beside them (rounds interleaved). With the userspace datapath, ovs-vswitchd's main
thread both reconfigures the bridge and forwards the host's own packets (the store's among them), so
each request that makes or removes a port makes the host's store calls of that moment wait. A kernel
datapath forwards the host's packets in the kernel. The ports are the benchmark's own (acshs*), on
h1's host bridge (the one its packets cross), and go again.

    run by benchmarks/controlplane.py on its lab
"""

from __future__ import annotations

import json
import sys

from acsnet.lab.host import REPO
from acsnet.lab.topology import Lab

SAMPLES = 20
BESIDE = ("alone", "beside add-port", "beside port removal")
SCRIPT = r"""
import json, statistics, sys, threading, time
sys.path.insert(0, sys.argv[1])
from acsnet.ovsctl import links
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.store import open_store

url, samples, bridge = sys.argv[2], int(sys.argv[3]), "ovsbr0"
store = open_store(url, timeout=30)
ovsdb = Ovsdb()
path = "/bench-host-stall"
store.create(path, b"0")
times = {way: {"read": [], "write": []} for way in ("alone", "beside add-port", "beside port removal")}


def add(port):
    links.create_veth(port, port + "c", mtu=1500, container_mac=None)
    ovsdb.add_port(bridge, port)


def remove(port):
    ovsdb.delete_port(bridge, port)
    links.delete(port)


def round_trips(way):
    started = time.perf_counter()
    found = store.get(path)
    read = time.perf_counter()
    store.compare_and_set(path, str(found.version).encode(), found.version)
    times[way]["read"].append((read - started) * 1000)
    times[way]["write"].append((time.perf_counter() - read) * 1000)


work = {"alone": None, "beside add-port": add, "beside port removal": remove}
try:
    for n in range(samples):
        port = f"acshs{n}"
        # alone first in every other round; a port is always added before it is removed
        for way in ("alone", "beside add-port", "beside port removal") if n % 2 == 0 else ("beside add-port", "alone", "beside port removal"):
            beside = threading.Thread(target=work[way], args=(port,)) if work[way] else None
            if beside:
                beside.start()
            round_trips(way)
            if beside:
                beside.join()
            time.sleep(0.1)
finally:
    for n in range(samples):
        if links.exists(f"acshs{n}"):
            remove(f"acshs{n}")
    store.delete(path)
    store.close()
print(json.dumps({way: {kind: statistics.median(v) for kind, v in kinds.items()} for way, kinds in times.items()}))
"""


def measure(lab: Lab, samples: int = SAMPLES, progress=lambda message, estimate=None: None) -> dict:
    progress(f"store round trips from h1 alone and beside a port made or removed: {samples} rounds", estimate=samples * 0.5)
    out = lab.node("h1").run([sys.executable, "-c", SCRIPT, REPO, lab.zookeeper_url, str(samples)]).stdout
    return {"samples": samples, "p50_ms": json.loads(out.strip().splitlines()[-1])}


def markdown(report: dict) -> str:
    p50 = report["p50_ms"]
    lines = [f"A ZooKeeper read and write from h1, alone and while a port is added to or taken off its host bridge "
             f"beside them (userspace datapath), p50 over {report['samples']} interleaved rounds:", "",
             "| store call | read (ms) | write (ms) |", "|---|---|---|"]
    for way in BESIDE:
        lines.append(f"| {way} | {p50[way]['read']:.2f} | {p50[way]['write']:.2f} |")
    return "\n".join(lines)
