"""The multi-host lab: simulated hosts cabled to a simulated top-of-rack switch, on one machine.

    svc (ZooKeeper, etcd)  out (outside host)      gw (router for the demo VLANs)
          | untagged            | untagged              | access 217 | access 218
    +-----+---------------------+-----------------------+------------+----------+
    |                      sw: OVS bridge "labsw" (userspace datapath)           |
    +-------------+------------------------------+------------------------------+
                  | trunk                        | trunk
           h1: uplink0 192.0.2.11          h2: uplink0 192.0.2.12   ...
           own OVS, dockerd, acsnet plugins, private /run

Underlay 192.0.2.0/24 (untagged). VLAN 217 is 198.51.100.0/24 and VLAN 218 203.0.113.0/24, each with
its gateway (.1) on the router. Every node is a `SimulatedHost` named `<prefix>-<node>`; veths are
created straight into their namespaces, so nothing of the lab lives in the root namespace except its
workdir and, per host, a cgroup parent `<prefix>-<host>` that dockerd puts its containers under (how
`down` finds containers even after a killed run).

The class `Lab` is assembled from building.py (up, start_*), faults.py (kill, power off/on, ZooKeeper
stops) and teardown.py (down, leftovers); what is where is in layout.py.
"""

from __future__ import annotations

import json
import os
import subprocess

from acsnet.lab.building import DEFAULT_UNDERLAY_MTU, LabBuilding, shape_port
from acsnet.lab.dockerd import DEFAULT_ENGINE, DOCKER_CLI, ENGINES, OS_ENGINE
from acsnet.lab.faults import LabFaults
from acsnet.lab.host import DEFAULT_HOST_OS, LabError, SimulatedHost, netns_exists, processes_in_netns
from acsnet.lab.layout import (
    DEFAULT_PREFIX, DEFAULT_WORKDIR, ETCD_PORT, INFRASTRUCTURE, OUTSIDE_ADDRESS, QUORUM_PORT, SERVICES_ADDRESS,
    SWITCH_BRIDGE, UNDERLAY_PREFIXLEN, UPLINK, VLANS, ZOOKEEPER_ADDRESSES, ZOOKEEPER_PORT, Progress, host_address,
)
from acsnet.lab.processes import cgroup_roots, command_name
from acsnet.lab.teardown import LabTeardown
from acsnet.lab.zookeeper import ZooKeeperServer

__all__ = [  # what the tests, the demo and the benchmarks import from here
    "DEFAULT_PREFIX", "DEFAULT_WORKDIR", "DOCKER_CLI", "ETCD_PORT", "INFRASTRUCTURE", "OUTSIDE_ADDRESS", "QUORUM_PORT",
    "SERVICES_ADDRESS", "SWITCH_BRIDGE", "UNDERLAY_PREFIXLEN", "UPLINK", "VLANS", "ZOOKEEPER_ADDRESSES",
    "ZOOKEEPER_PORT", "Lab", "LabError", "Progress", "host_address", "shape_port",
]


class Lab(LabBuilding, LabFaults, LabTeardown):

    def __init__(self, workdir: str = DEFAULT_WORKDIR, prefix: str = DEFAULT_PREFIX):
        self.workdir = os.path.abspath(workdir)
        self.prefix = prefix
        self.state_path = os.path.join(self.workdir, "lab.json")

    # -- what is there ---------------------------------------------------------------------------

    def state(self) -> dict | None:
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    @property
    def is_up(self) -> bool:
        state = self.state()
        return bool(state) and all(netns_exists(self.netns(n)) for n in state["nodes"])

    def netns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def node(self, name: str) -> SimulatedHost:
        state = self.state()
        if not state or name not in state["nodes"]:
            known = ", ".join(state["nodes"]) if state else "none: the lab is not up (acsnet lab up)"
            raise LabError(f"no lab node {name!r}; nodes: {known}")
        host = SimulatedHost.attach(name, self.netns(name), os.path.join(self.workdir, name))
        if not host.running:
            raise LabError(f"lab node {name} is not running; run 'acsnet lab down' and 'acsnet lab up'")
        return host

    def hosts(self) -> list[str]:
        state = self.state() or {"hosts": []}
        return state["hosts"]

    @property
    def zookeeper_url(self) -> str:
        count = (self.state() or {}).get("zookeepers", 1)
        return "zk://" + ",".join(f"{a}:{ZOOKEEPER_PORT}" for a in ZOOKEEPER_ADDRESSES[:count]) + "/acsnet"

    def log_tail(self, host: str, lines: int = 40) -> str:
        """The last lines of every log of a host (its plugins and dockerd), for a failing test to show."""
        workdir = self.node(host).workdir
        parts = []
        for name in sorted(n for n in os.listdir(workdir) if n.endswith(".log")):
            with open(os.path.join(workdir, name), errors="replace") as f:
                parts.append(f"--- {host}/{name}\n" + "".join(f.readlines()[-lines:]))
        return "\n".join(parts)

    def _zookeeper(self, member: int = 0) -> ZooKeeperServer:
        """Member `member` (0-based) of the lab's ZooKeeper: standalone, or one of an ensemble."""
        svc = self.node("svc")
        count = (self.state() or {}).get("zookeepers", 1)
        peers = [(i + 1, ZOOKEEPER_ADDRESSES[i], QUORUM_PORT) for i in range(count)] if count > 1 else None
        workdir = os.path.join(self.workdir, "svc", "zookeeper" if count == 1 else f"zookeeper{member + 1}")
        return ZooKeeperServer(workdir, ZOOKEEPER_ADDRESSES[member], ZOOKEEPER_PORT, command_prefix=svc.command([]),
                               peers=peers, my_id=member + 1 if peers else None)

    @staticmethod
    def plugins() -> list[str]:
        """The plugins a lab host runs: the IPAM and each driver that has landed."""
        return ["ipam", "vlan", "vxlan", "vpc"]

    @property
    def engine(self) -> str:
        """The Docker Engine the lab's hosts run ("20.10" or "26"; a lab from before engines is 20.10)."""
        return (self.state() or {}).get("engine", DEFAULT_ENGINE)

    @property
    def host_os(self) -> str:
        """What the lab's hosts run from ("machine", or "debian13": a Debian 13 root filesystem)."""
        return (self.state() or {}).get("host_os", DEFAULT_HOST_OS)

    @property
    def docker_cli(self) -> str:
        """The docker CLI that matches the lab's dockerd (a mismatched one may ask for another API), on this
        machine (a Debian 13 host's own CLI runs only inside its root: `run_in_os`)."""
        return ENGINES[self.engine].docker

    def docker(self, host: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.node(host).run([self.docker_cli, *args], check=check, timeout=timeout)

    def network_names(self, host: str, check: bool = True) -> list[str]:
        """`docker network ls` on `host`: the names of the networks it has (none if it does not answer and
        not `check`)."""
        return self.docker(host, "network", "ls", "--format", "{{.Name}}", check=check).stdout.split()

    def exec_env(self) -> dict:
        """The environment of `lab exec`: `docker` on PATH is the CLI of the lab's engine."""
        return {**os.environ, "PATH": os.path.dirname(self.docker_cli) + os.pathsep + os.environ.get("PATH", os.defpath)}

    def _cgroup_dirs(self) -> list[str]:
        found = []
        for root in cgroup_roots():
            try:
                names = os.listdir(root)
            except OSError:
                continue
            found += [os.path.join(root, n) for n in names if n.startswith(self.prefix + "-")]
        return found

    # -- status ----------------------------------------------------------------------------------

    def status(self) -> dict:
        state = self.state()
        if state is None:
            return {"up": False, "workdir": self.workdir, "prefix": self.prefix}
        nodes = {}
        for name in state["nodes"]:
            host = SimulatedHost.attach(name, self.netns(name), os.path.join(self.workdir, name))
            processes = []
            if host.running:
                processes = sorted({command_name(pid) for pid in processes_in_netns(self.netns(name))} - {"", "holder"})
            nodes[name] = {"running": host.running, "netns": self.netns(name), "processes": processes,
                           "logs": os.path.join(self.workdir, name)}
        return {"up": all(n["running"] for n in nodes.values()), "workdir": self.workdir, "prefix": self.prefix,
                "scope": state["scope"], "engine": state.get("engine", DEFAULT_ENGINE),
                "host_os": state.get("host_os", DEFAULT_HOST_OS),
                "dockerd": (state["os_root"] + OS_ENGINE.dockerd if state.get("os_root")
                            else ENGINES[state.get("engine", DEFAULT_ENGINE)].dockerd),
                "hosts": state["hosts"], "link_rate": state["link_rate"],
                "underlay_mtu": state.get("underlay_mtu", DEFAULT_UNDERLAY_MTU),
                "zookeeper": self.zookeeper_url, "relay": state.get("relay"), "nodes": nodes}
