"""Container churn on every lab host at once: `docker run` / `docker rm` loops on one vlan network,
with the addresses in use sampled across hosts to catch any address held twice. Used by the
concurrency test and the soak benchmark (which also injects faults while it runs)."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from typing import Callable

from acsnet.lab.dockerd import IMAGE
from acsnet.lab.topology import Lab

NETWORK, SUBNET, GATEWAY, VLAN = "churn", "198.51.100.0/24", "198.51.100.1", 217

LEFTOVERS = """
import json, sys
from acsnet.ipam.state import AddressRecords
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.store import open_store
s, vlan = open_store(sys.argv[1]), LAYOUTS["vlan"]
addresses = {a: list(record.holders) for _, a, record in AddressRecords.read_all(s)}
segments = sum(len(state.read_segment_records(s, vlan, n)) for n in state.segment_numbers(s, vlan))
endpoints = sum(len(state.read_host_endpoints(s, vlan, h)) for h in state.hosts(s, vlan))
print(json.dumps({"addresses": addresses, "segment_records": segments, "endpoint_records": endpoints}))
s.close()
"""


@dataclasses.dataclass
class ChurnReport:
    runs: int = 0
    removals: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[str] = dataclasses.field(default_factory=list)  # an address seen on two containers at once
    samples: int = 0


def _address(lab: Lab, host: str, name: str) -> str | None:
    result = lab.docker(host, "inspect", name, check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)[0]["NetworkSettings"]["Networks"].get(NETWORK, {}).get("IPAddress") or None


def churn(lab: Lab, seconds: float, *, fault: Callable[[], None] | None = None, fault_every: float = 20.0,
          before_removal: Callable[[], None] | None = None) -> ChurnReport:
    """Every host runs and removes containers for `seconds`; `fault`, if given, is called every
    `fault_every` seconds while it goes on. The network is made first and removed after, once
    `before_removal` (if given) has run."""
    hosts = lab.hosts()
    for host in hosts:
        lab.docker(host, "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", SUBNET,
                   "--gateway", GATEWAY, "-o", f"VlanId={VLAN}", NETWORK)
    report = ChurnReport()
    live: dict[str, tuple[str, str]] = {}  # container -> (host, address)
    guard = threading.Lock()
    stop_at = time.monotonic() + seconds

    def loop(host: str) -> None:
        n = 0
        mine: list[str] = []
        while time.monotonic() < stop_at:
            name = f"churn-{host}-{n}"
            n += 1
            result = lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", NETWORK, "--name", name, IMAGE,
                                "sleep", "3600", check=False)
            address = _address(lab, host, name) if result.returncode == 0 else None
            if result.returncode != 0:
                lab.docker(host, "rm", "-f", name, check=False)  # dockerd may have created it before failing
                with guard:
                    report.errors.append(f"{host} run: {result.stderr.strip()[:160]}")
                continue
            with guard:
                report.runs += 1
                for other, (other_host, other_address) in live.items():
                    if address and other_address == address:
                        report.duplicates.append(f"{address}: {name}@{host} and {other}@{other_host}")
                live[name] = (host, address)
            mine.append(name)
            if len(mine) > 3:  # keep a few running, remove the oldest
                old = mine.pop(0)
                lab.docker(host, "rm", "-f", old, check=False)
                with guard:
                    live.pop(old, None)
                    report.removals += 1
        for old in mine:
            lab.docker(host, "rm", "-f", old, check=False)
            with guard:
                live.pop(old, None)
                report.removals += 1

    threads = [threading.Thread(target=loop, args=(h,)) for h in hosts]
    for t in threads:
        t.start()
    next_fault = time.monotonic() + fault_every
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if fault is not None and time.monotonic() >= next_fault:
            next_fault = time.monotonic() + fault_every
            fault()
    if before_removal is not None:
        before_removal()
    for host in hosts:
        result = lab.docker(host, "network", "rm", NETWORK, check=False)
        if result.returncode != 0:
            report.errors.append(f"{host} network rm: {result.stderr.strip()[:300]}")
    return report


def leftovers(lab: Lab) -> dict:
    """What the store still holds, and what acsnet ports remain in each host's OVS."""
    stored = json.loads(lab.node("svc").run([sys.executable, "-c", LEFTOVERS, lab.zookeeper_url]).stdout)
    ports = {}
    for host in lab.hosts():
        out = lab.node(host).run(["ovs-vsctl", "--format=json", "--columns=name,external_ids", "list", "interface"]).stdout
        ports[host] = sorted(name for name, ids in json.loads(out)["data"] if "acsnet-endpoint" in dict(ids[1]))
    return {**stored, "ports": ports}
