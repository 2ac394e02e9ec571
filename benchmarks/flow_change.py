"""One endpoint's flow change on a lab host's Open vSwitch, sent three ways in the same run and
interleaved: `ovs-ofctl add-flows` forked for it, by port name (the first way); an ovs-ofctl started
ahead, already waiting on stdin, by port number (the drivers' way until 2026-12-05); and the OpenFlow
connection the process keeps (`acsnet.ovsctl.openflow.OpenFlowConnection`, the drivers' way now). Each
change is what CreateEndpoint sends for a vlan container (its two flows in, then out again, as
DeleteEndpoint sends), on a bridge and port of the benchmark's own, removed afterwards. Besides the wall
time, the CPU each change costs this host beyond ovs-vswitchd's: the ovs-ofctl processes' (started ahead
or not), or the sending process's own.

    python -m acsnet.benchmarks.flow_change   (on a lab: run by benchmarks/controlplane.py)
"""

from __future__ import annotations

import json
import statistics
import sys

from acsnet.lab.host import REPO
from acsnet.lab.topology import Lab

SAMPLES = 30
WAYS = (("forked", "`ovs-ofctl add-flows` forked, by port name"),
        ("spare", "an ovs-ofctl started ahead, by port number (until 2026-12-05)"),
        ("connection", "the kept OpenFlow connection, by port number"))
SCRIPT = r"""
import json, resource, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from acsnet.ovsctl import links, openflow
from acsnet.ovsctl.ovsdb import Ovsdb

BRIDGE, PORT, SAMPLES = "acsfb0", "acsfbp", int(sys.argv[2])
ovsdb = Ovsdb()
ovsdb.add_bridge(BRIDGE, "netdev", secure=True)
links.create_veth(PORT, PORT + "c", mtu=1500, container_mac=None)
ovsdb.add_port(BRIDGE, PORT)
connection = openflow.OpenFlowConnection(BRIDGE)

def cpu(who):
    used = resource.getrusage(who)
    return used.ru_utime + used.ru_stime

def start_spare():
    return subprocess.Popen(["ovs-ofctl", "--no-names", "add-flows", BRIDGE, "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

times = {way: [] for way in ("forked", "spare", "connection")}
cpu_ms = {way: [] for way in times}
ways = list(times)
try:
    for n in range(SAMPLES):
        mac = f"02:00:00:00:00:{n % 256:02x}"
        added = [f"cookie=0xacb,table=0,priority=300,in_port={PORT},actions=set_field:217->reg0,resubmit(,10)",
                 f"cookie=0xacb,table=10,priority=100,reg0=217,dl_dst={mac},actions=output:{PORT}"]
        removed = ["delete_strict cookie=0xacb/-1," + openflow.flow_identity(f) for f in added]
        for way in ways[n % 3:] + ways[:n % 3]:
            for lines in (added, removed):
                numbered = openflow.numbered(lines, ovsdb.ofports(openflow.port_names(lines)))
                spare = start_spare() if way == "spare" else None
                time.sleep(0.05)  # the spare loads meanwhile, as it did between two requests
                # a child's CPU counts once it is reaped: the spare's start is in its change's CPU
                used = cpu(resource.RUSAGE_CHILDREN) + cpu(resource.RUSAGE_SELF)
                started = time.perf_counter()
                if way == "forked":
                    subprocess.run(["ovs-ofctl", "add-flows", BRIDGE, "-"], input="\n".join(lines) + "\n", text=True, check=True)
                elif way == "spare":
                    _, errors = spare.communicate("\n".join(numbered) + "\n", timeout=20)
                    assert spare.returncode == 0, errors
                else:
                    connection.add_flows(numbered, timeout=20)
                times[way].append((time.perf_counter() - started) * 1000)
                cpu_ms[way].append((cpu(resource.RUSAGE_CHILDREN) + cpu(resource.RUSAGE_SELF) - used) * 1000)
finally:
    connection.close()
    subprocess.run(["ovs-vsctl", "--if-exists", "del-br", BRIDGE])
    links.delete(PORT)
print(json.dumps({"times": times, "cpu_ms": cpu_ms}))
"""


def measure(lab: Lab, samples: int = SAMPLES, progress=lambda message, estimate=None: None) -> dict:
    progress(f"flow changes on h1: {samples} pairs each forked, by an ovs-ofctl started ahead and by the kept "
             "OpenFlow connection, interleaved", estimate=samples * 0.4)
    out = lab.node("h1").run([sys.executable, "-c", SCRIPT, REPO, str(samples)]).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    report = {way: {"changes": len(t), "p50_ms": statistics.median(t), "p90_ms": statistics.quantiles(t, n=10)[-1],
                    "cpu_ms_mean": statistics.fmean(seen["cpu_ms"][way])}
              for way, t in seen["times"].items()}
    report["connection_over_spare"] = report["connection"]["p50_ms"] / report["spare"]["p50_ms"]
    return report


def markdown(report: dict) -> str:
    lines = ["One endpoint's flow change on h1 (two flows in, or out), interleaved in one run; the CPU is what the "
             "change cost beyond ovs-vswitchd (ovs-ofctl's, started ahead or not, or the sending process's):", "",
             "| sent by | changes | p50 (ms) | p90 (ms) | CPU per change, mean (ms) |", "|---|---|---|---|---|"]
    for way, label in WAYS:
        row = report[way]
        lines.append(f"| {label} | {row['changes']} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} | {row['cpu_ms_mean']:.2f} |")
    lines += ["", f"The kept connection takes {report['connection_over_spare']:.2f} of the started-ahead ovs-ofctl's time."]
    return "\n".join(lines)
