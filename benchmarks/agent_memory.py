"""Where one segment agent's memory goes: the real vxlan agent, its flow table kept in parts as on OVS,
loaded with other hosts' records as a host of a large cluster would be, measured by tracemalloc by the
line that allocated it. The scale benchmark gives an agent's resident memory at size; this says what
it is made of.

The store is the embedded one (a SQLite file of this run's own), the datapath `SimulatedDatapath` (the
recording stand-in for OVS of `benchmarks/scale_hosts.py`, whose table of the installed flows is
counted apart: on a real host OVS holds it). The cluster is the scale benchmark's layout: each host has
`--endpoints` endpoints in 2 of 10 networks, so at 1,000 hosts x 100 the agent follows 2 segments of
~10,000 records each.

    python -m acsnet.benchmarks.agent_memory [--hosts 1000] [--endpoints 100] [--out DIR]
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import linecache
import os
import sys
import tempfile
import time
import tracemalloc

from acsnet.benchmarks.scale_hosts import LAYOUT, Layout, SimulatedDatapath, Tally, remote_macs
from acsnet.lab.host import REPO
from acsnet.plugins.segments import state
from acsnet.plugins.segments.agent import SegmentAgent
from acsnet.plugins.segments.recording import RecordedSwitch, RecordingBridge
from acsnet.store.embedded import EmbeddedStore

NETWORKS, NETWORKS_PER_HOST = 10, 2  # the scale benchmark's
TOP_LINES = 15
FRAMES = 4  # enough to tell the recording's allocations (made in code it calls) from the agent's
RECORDING = os.path.join("plugins", "segments", "recording.py")


def _lines(function) -> range:
    source, first = inspect.getsourcelines(function)
    return range(first, first + len(source))


# Where the stand-in writes OVS's table (its own copy of each flow's identity, its dict): what an
# allocation made under these lines holds is the recording's, not the agent's. (The simulated datapath
# also owns the table in parts, as the real vxlan datapath does: that is the agent's.)
RECORDED_TABLE = (_lines(RecordingBridge.install_flows), _lines(RecordingBridge.change_flows))


def populate(store: EmbeddedStore, layout: Layout, segments: set[int]) -> int:
    """Every other host's records on `segments`, alive (registered), as the store of a running cluster
    holds them; answers how many."""
    for segment in segments:
        state.prepare_segment(store, LAYOUT, segment)
    operations = []
    for index in range(1, layout.hosts):
        host = layout.host_name(index)
        for slot in range(layout.endpoints_per_host):
            endpoint = layout.endpoint(index, slot)
            if endpoint.segment in segments:
                operations.append(state.segment_record_operation(LAYOUT, endpoint.segment, layout.record(index, endpoint)))
        store.register_host(host, "vxlan", {"host_id": host})
    for start in range(0, len(operations), 500):
        if not store.commit(operations[start:start + 500]):
            raise RuntimeError("populating the store failed")
    return len(operations)


def measure(hosts: int, endpoints: int, workdir: str, timeout: float = 300.0) -> dict:
    layout = Layout(hosts, endpoints, NETWORKS, NETWORKS_PER_HOST)
    segments = {layout.network(k).segment for k in layout.host_networks(0)}
    store = EmbeddedStore(os.path.join(workdir, "store.db"), timeout=60)
    records = populate(store, layout, segments)
    host = layout.host_name(0)
    store.register_host(host, "vxlan", {"host_id": host})
    state.prepare_host_endpoints(store, LAYOUT, host)
    for k in range(NETWORKS):
        state.write_host_network(store, LAYOUT, host, layout.network(k))
    gc.collect()
    tracemalloc.start(FRAMES)
    datapath = SimulatedDatapath(Tally(), RecordedSwitch(), host_mac=layout.host_mac(0), vtep=layout.vtep(0))
    agent = SegmentAgent(store, datapath, host, orphan_grace=1e9)
    agent.start()
    try:
        for slot in range(endpoints):
            agent.add_endpoint(layout.endpoint(0, slot))
        deadline = time.monotonic() + timeout  # until every record's tunnel flow is in the table
        while len(remote_macs(datapath.switch.flows)) < records and time.monotonic() < deadline:
            time.sleep(0.2)
        programmed, flows = len(remote_macs(datapath.switch.flows)), len(datapath.switch.table)
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    finally:
        tracemalloc.stop()
        agent.stop()
        store.close()
    lines = snapshot.statistics("lineno")  # by the line that allocated (the innermost frame)
    total = sum(s.size for s in lines)
    recording = sum(trace.size for trace in snapshot.traces
                    if any(frame.filename.endswith(RECORDING) and any(frame.lineno in lines for lines in RECORDED_TABLE)
                           for frame in trace.traceback))
    top = []
    for s in lines[:TOP_LINES]:
        frame = s.traceback[0]
        where = os.path.relpath(frame.filename, REPO) if frame.filename.startswith(REPO) else frame.filename
        top.append({"mb": s.size / 1e6, "blocks": s.count, "where": f"{where}:{frame.lineno}",
                    "code": linecache.getline(frame.filename, frame.lineno).strip()})
    return {"hosts": hosts, "endpoints_per_host": endpoints, "records": records, "flows": flows,
            "complete": programmed == records, "traced_mb": total / 1e6, "recording_mb": recording / 1e6,
            "agent_mb": (total - recording) / 1e6, "top": top}


def markdown(report: dict) -> str:
    lines = [f"One vxlan agent of a cluster of {report['hosts']} hosts x {report['endpoints_per_host']} endpoints: "
             f"{report['records']} other hosts' records on its 2 segments, {report['flows']} flows "
             f"({'every record programmed' if report['complete'] else 'NOT every record programmed'}).", "",
             f"Traced (tracemalloc, after the load): **{report['traced_mb']:.1f} MB**, of which the agent "
             f"{report['agent_mb']:.1f} MB and the recording's table (the stand-in for OVS's) "
             f"{report['recording_mb']:.1f} MB.", "",
             "| MB | blocks | allocated at | code |", "|---|---|---|---|"]
    for row in report["top"]:
        code = row["code"].replace("|", "\\|")[:100]
        lines.append(f"| {row['mb']:.2f} | {row['blocks']} | {row['where']} | `{code}` |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=100, help="endpoints per host")
    parser.add_argument("--out", help="write agent-memory.md and agent-memory.json into this directory")
    args = parser.parse_args(argv)
    if args.hosts < 2 or args.endpoints < 1:
        parser.error("--hosts takes at least 2 (the agent's and another), --endpoints at least 1")
    with tempfile.TemporaryDirectory(prefix="acsnet-agent-memory-") as workdir:
        report = measure(args.hosts, args.endpoints, workdir)
    text = markdown(report)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "agent-memory.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.out, "agent-memory.json"), "w") as f:
            json.dump(report, f, indent=1)
    return 0 if report["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
