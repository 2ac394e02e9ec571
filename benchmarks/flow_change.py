"""One endpoint's flow change on a lab host's Open vSwitch, sent the two ways in the same run and
interleaved: `ovs-ofctl add-flows` forked for it, by port name (as before), and the spare ovs-ofctl
started ahead, by port number (`acsnet.ovsctl.openflow.WarmOfctl`, what the drivers use). Each change
is what CreateEndpoint sends for a vlan container (its two flows in, then out again, as DeleteEndpoint
sends), on a bridge and port of the benchmark's own, removed afterwards.

    python -m acsnet.benchmarks.flow_change   (on a lab: run by benchmarks/controlplane.py)
"""

from __future__ import annotations

import json
import statistics
import sys

from acsnet.lab.host import REPO
from acsnet.lab.topology import Lab

SAMPLES = 30
SCRIPT = r"""
import json, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from acsnet.ovsctl import links, openflow
from acsnet.ovsctl.ovsdb import Ovsdb

BRIDGE, PORT, SAMPLES = "acsfb0", "acsfbp", int(sys.argv[2])
ovsdb = Ovsdb()
ovsdb.add_bridge(BRIDGE, "netdev", secure=True)
links.create_veth(PORT, PORT + "c", mtu=1500, container_mac=None)
ovsdb.add_port(BRIDGE, PORT)
spare = openflow.WarmOfctl(BRIDGE)
times = {"forked": [], "spare": []}
try:
    for n in range(SAMPLES):
        mac = f"02:00:00:00:00:{n % 256:02x}"
        added = [f"cookie=0xacb,table=0,priority=300,in_port={PORT},actions=set_field:217->reg0,resubmit(,10)",
                 f"cookie=0xacb,table=10,priority=100,reg0=217,dl_dst={mac},actions=output:{PORT}"]
        removed = ["delete_strict cookie=0xacb/-1," + openflow.flow_identity(f) for f in added]
        for way in (("forked", "spare") if n % 2 == 0 else ("spare", "forked")):
            for lines in (added, removed):
                started = time.perf_counter()
                if way == "forked":
                    subprocess.run(["ovs-ofctl", "add-flows", BRIDGE, "-"], input="\n".join(lines) + "\n", text=True, check=True)
                else:
                    spare.add_flows(openflow.numbered(lines, ovsdb.ofports(openflow.port_names(lines))), timeout=20)
                times[way].append((time.perf_counter() - started) * 1000)
                time.sleep(0.05)  # the spare loads meanwhile, as it does between two requests
finally:
    spare.close()
    subprocess.run(["ovs-vsctl", "--if-exists", "del-br", BRIDGE])
    links.delete(PORT)
print(json.dumps(times))
"""


def measure(lab: Lab, samples: int = SAMPLES, progress=lambda message, estimate=None: None) -> dict:
    progress(f"flow changes on h1: {samples} pairs forked and by the spare ovs-ofctl, interleaved", estimate=samples * 0.25)
    out = lab.node("h1").run([sys.executable, "-c", SCRIPT, REPO, str(samples)]).stdout
    times = json.loads(out.strip().splitlines()[-1])
    report = {way: {"changes": len(t), "p50_ms": statistics.median(t), "p90_ms": statistics.quantiles(t, n=10)[-1]}
              for way, t in times.items()}
    report["spare_over_forked"] = report["spare"]["p50_ms"] / report["forked"]["p50_ms"]
    return report


def markdown(report: dict) -> str:
    lines = ["One endpoint's flow change on h1 (two flows in, or out), p50 (p90) in ms, interleaved in one run:", "",
             "| sent by | changes | p50 (ms) | p90 (ms) |", "|---|---|---|---|"]
    for way, label in (("forked", "`ovs-ofctl add-flows` forked, by port name"), ("spare", "the spare ovs-ofctl, by port number")):
        row = report[way]
        lines.append(f"| {label} | {row['changes']} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} |")
    lines += ["", f"The spare takes {report['spare_over_forked']:.2f} of a fork's time."]
    return "\n".join(lines)
