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
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable

from plugins.lab.dockerd import DEFAULT_ENGINE, DOCKER_CLI, ENGINES, DockerDaemon
from plugins.lab.dockerd import engine as docker_engine
from plugins.lab.host import LabError, SimulatedHost, netns_exists, processes_in_netns, run
from plugins.lab.ovs import OpenVSwitch
from plugins.lab.plugin_process import PluginProcess
from plugins.lab.zookeeper import ZooKeeperMissing, ZooKeeperServer

DEFAULT_PREFIX = "acsnet-lab"
DEFAULT_WORKDIR = "/var/lib/acsnet/lab"
UNDERLAY_PREFIXLEN = 24
SERVICES_ADDRESS = "192.0.2.2"
ZOOKEEPER_ADDRESSES = ("192.0.2.2", "192.0.2.3", "192.0.2.4")  # an ensemble's members, on the services node
QUORUM_PORT = 2888
OUTSIDE_ADDRESS = "192.0.2.200"
ZOOKEEPER_PORT = 2181
ETCD_PORT = 2379
VLANS = {217: ("198.51.100.1", 24), 218: ("203.0.113.1", 24)}  # VLAN → router address, prefix length
SWITCH_BRIDGE = "labsw"
UPLINK = "uplink0"
INFRASTRUCTURE = ("sw", "svc", "out", "gw")

Progress = Callable[[str], None]


def host_address(index: int) -> str:
    return f"192.0.2.{10 + index}"


def _quiet(_message: str) -> None:
    pass


def shape_port(node: SimulatedHost, port: str, rate: str) -> None:
    """Limit what leaves an OVS port's device to `rate`. OVS owns the queueing of its ports and removes
    a qdisc it did not make when it (re)configures the port; QoS type linux-noop tells it to leave the
    device's qdisc alone."""
    node.run(["ovs-vsctl", "set", "port", port, "qos=@q", "--", "--id=@q", "create", "qos", "type=linux-noop"])
    node.run(["tc", "qdisc", "replace", "dev", port, "root", "tbf", "rate", rate, "burst", "256kb", "latency", "50ms"])


class Lab:
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

    # -- up --------------------------------------------------------------------------------------

    def check_prerequisites(self, scope: str, engine_name: str = DEFAULT_ENGINE) -> None:
        docker_engine(engine_name).check()
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, OVS, dockerd): run it as root")
        needed = {"ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux", "ethtool": "ethtool",
                  "tc": "iproute2", "ovs-vswitchd": "openvswitch-switch", "containerd": "containerd",
                  "runc": "runc", "docker-init": "tini", "java": "zookeeper", "ping": "iputils-ping"}
        if scope == "global":
            needed["etcd"] = "etcd-server"
        missing = sorted({pkg for cmd, pkg in needed.items() if shutil.which(cmd) is None})
        if not os.path.exists("/usr/share/java/zookeeper.jar"):
            missing.append("zookeeper")
        if not os.path.exists("/bin/busybox"):
            missing.append("busybox-static")
        if missing:
            raise LabError(f"missing packages: apt-get install {' '.join(sorted(set(missing)))} (or run .ci/install)")
        taken = [n for n in os.listdir("/run/netns") if n.startswith(self.prefix + "-")] if os.path.isdir("/run/netns") else []
        if taken:
            raise LabError(f"a lab named {self.prefix} is already up ({', '.join(sorted(taken))}): "
                           "use it, or run 'acsnet lab down' first")

    def up(self, hosts: int = 2, scope: str = "local", link_rate: str | None = None, progress: Progress = _quiet,
           zookeepers: int = 1, engine: str = DEFAULT_ENGINE) -> None:
        if not 1 <= hosts <= 40:
            raise LabError("--hosts must be between 1 and 40")
        if zookeepers not in (1, 3):
            raise LabError("--zookeepers must be 1 or 3")
        if scope not in ("local", "global"):
            raise LabError("--scope must be local or global")
        if engine not in ENGINES:
            raise LabError(f"--engine must be one of {', '.join(ENGINES)}")
        if scope == "global" and engine != "20.10":
            raise LabError(f"--scope global needs dockerd's cluster store, which Docker {engine} does not have "
                           "(Docker 23.0 removed --cluster-store): use --engine 20.10 for global scope, "
                           f"or --scope local with --engine {engine}")
        self.check_prerequisites(scope, engine)
        host_names = [f"h{i}" for i in range(1, hosts + 1)]
        if os.path.exists(self.workdir):
            shutil.rmtree(self.workdir)
        os.makedirs(self.workdir)
        state = {"prefix": self.prefix, "hosts": host_names, "scope": scope, "engine": engine, "link_rate": link_rate,
                 "zookeepers": zookeepers, "nodes": list(INFRASTRUCTURE) + host_names, "created": time.time()}
        with open(self.state_path, "w") as f:
            json.dump(state, f, indent=2)
        try:
            self._build(state, progress)
        except BaseException:
            progress("lab up failed; removing what was made")
            self.down()
            raise
        progress(f"lab up: {hosts} hosts, scope {scope}, Docker {engine}; try 'acsnet lab exec h1 -- docker ps'")

    def _build(self, state: dict, progress: Progress) -> None:
        nodes = {}
        for name in state["nodes"]:
            progress(f"node {name}: namespaces")
            nodes[name] = SimulatedHost(name, self.netns(name), os.path.join(self.workdir, name)).start()

        progress("switch: Open vSwitch")
        switch = OpenVSwitch(nodes["sw"]).start(userspace_tso=True)
        switch.vsctl("add-br", SWITCH_BRIDGE, "--", "set", "bridge", SWITCH_BRIDGE, "datapath_type=netdev")

        # Cabling: (node, its interface, switch port, VLAN tag or None for a trunk, address/len)
        cables = [("svc", "svc0", "sw-svc", 0, f"{SERVICES_ADDRESS}/{UNDERLAY_PREFIXLEN}"),
                  ("out", "out0", "sw-out", 0, f"{OUTSIDE_ADDRESS}/{UNDERLAY_PREFIXLEN}")]
        for vlan, (address, length) in VLANS.items():
            cables.append(("gw", f"gw-v{vlan}", f"sw-gw{vlan}", vlan, f"{address}/{length}"))
        for index, name in enumerate(state["hosts"], start=1):
            cables.append((name, UPLINK, f"{name}-up", None, f"{host_address(index)}/{UNDERLAY_PREFIXLEN}"))
        for node, device, port, tag, address in cables:
            progress(f"cable: {node}/{device} to switch port {port}" + (f" (VLAN {tag})" if tag else ""))
            run(["ip", "link", "add", "name", device, "netns", self.netns(node), "type", "veth",
                 "peer", "name", port, "netns", self.netns("sw")])
            for host, dev in ((nodes[node], device), (nodes["sw"], port)):
                # Cables keep their offloads: the switch and the hosts' OVS take whole TCP segments
                # (userspace TSO), as a gigabit NIC segments in hardware and its peer coalesces (GRO).
                host.run(["ip", "link", "set", dev, "up"])
            switch.vsctl("add-port", SWITCH_BRIDGE, port, *([f"tag={tag}"] if tag is not None else []))
            if state["link_rate"] and node in state["hosts"]:
                shape_port(nodes["sw"], port, state["link_rate"])  # the host's side: after host-setup
            nodes[node].run(["ip", "addr", "add", address, "dev", device])
        # The router is each demo VLAN's gateway but does not route between them (forwarding stays
        # off, as between VLANs kept apart by ACLs), so VLAN isolation is visible end to end.

        for extra in ZOOKEEPER_ADDRESSES[1:state["zookeepers"]]:
            nodes["svc"].run(["ip", "addr", "add", f"{extra}/{UNDERLAY_PREFIXLEN}", "dev", "svc0"])
        progress("svc: ZooKeeper" + (f" ensemble of {state['zookeepers']}" if state["zookeepers"] > 1 else ""))
        try:
            servers = [self._zookeeper(i) for i in range(state["zookeepers"])]
            for server in servers:
                server.start(wait=60)
            for server in servers:
                server.wait_ready(60)
        except ZooKeeperMissing as e:
            raise LabError(str(e)) from None
        if state["scope"] == "global":
            progress("svc: etcd (dockerd's cluster store)")
            self._start_etcd(nodes["svc"])

        for index, name in enumerate(state["hosts"], start=1):
            self._start_host(nodes[name], index, state, progress)

    def _start_etcd(self, svc: SimulatedHost) -> None:
        url = f"http://{SERVICES_ADDRESS}:{ETCD_PORT}"
        svc.popen(["etcd", "--name", "lab", "--data-dir", os.path.join(svc.workdir, "etcd"),
                   "--listen-client-urls", url, "--advertise-client-urls", url,
                   "--listen-peer-urls", "http://127.0.0.1:2380", "--enable-v2"],
                  os.path.join(svc.workdir, "etcd.log"))
        deadline = time.monotonic() + 30
        probe = [sys.executable, "-c", f"import urllib.request; urllib.request.urlopen('{url}/version', timeout=1)"]
        while svc.run(probe, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise LabError(f"etcd did not come up; see {svc.workdir}/etcd.log")
            time.sleep(0.2)

    def dockerd_args(self, host: str, index: int, scope: str) -> list[str]:
        args = [f"--cgroup-parent=/{self.prefix}-{host}"]
        if scope == "global":
            args += [f"--cluster-store=etcd://{SERVICES_ADDRESS}:{ETCD_PORT}",
                     f"--cluster-advertise={host_address(index)}:2376"]
        return args

    def _start_host(self, host: SimulatedHost, index: int, state: dict, progress: Progress) -> None:
        progress(f"{host.name}: Open vSwitch")
        OpenVSwitch(host).start()
        progress(f"{host.name}: acsnet host-setup --uplink {UPLINK} --datapath netdev")
        host.run([sys.executable, "-m", "plugins.cli", "host-setup", "--uplink", UPLINK, "--datapath", "netdev"])
        if state["link_rate"]:
            shape_port(host, UPLINK, state["link_rate"])
        progress(f"{host.name}: acsnet plugins ({', '.join(f'acsnet serve {p}' for p in self.plugins())})")
        for plugin in self.plugins():
            PluginProcess.acsnet(plugin, "/run/docker/plugins", "--store", self.zookeeper_url,
                                 "--host-id", host.name, "--scope", state["scope"], "--datapath", "netdev",
                                 log_dir=host.workdir, host=host).start(wait=60)
        progress(f"{host.name}: dockerd {state.get('engine', DEFAULT_ENGINE)}")
        daemon = DockerDaemon(host, os.path.join(host.workdir, "docker"),
                              extra_args=self.dockerd_args(host.name, index, state["scope"]),
                              engine=state.get("engine", DEFAULT_ENGINE)).start()
        progress(f"{host.name}: busybox image")
        daemon.import_busybox(os.path.join(self.workdir, "busybox.tar"))

    # -- failures, for the tests and the demo ----------------------------------------------------

    def plugin_pids(self, host: str, plugin: str) -> list[int]:
        """The pids of `acsnet serve <plugin>` on `host` (gunicorn's master and worker)."""
        return [pid for pid in processes_in_netns(self.netns(host)) if _command_name(pid) == f"acsnet serve {plugin}"]

    def kill_plugin(self, host: str, plugin: str, sig: int = signal.SIGKILL) -> None:
        pids = self.plugin_pids(host, plugin)
        for pid in pids:
            _kill(pid, sig)
        deadline = time.monotonic() + 15
        while self.plugin_pids(host, plugin):
            if time.monotonic() > deadline:
                raise LabError(f"acsnet serve {plugin} on {host} did not stop")
            time.sleep(0.05)

    def start_plugin(self, host: str, plugin: str, *options: str) -> None:
        """Start a plugin as `up` does; `options` are extra flags of `acsnet serve` (until it restarts)."""
        state = self.state()
        node = self.node(host)
        PluginProcess.acsnet(plugin, "/run/docker/plugins", "--store", self.zookeeper_url, "--host-id", host,
                             "--scope", state["scope"], "--datapath", "netdev", *options,
                             log_dir=node.workdir, host=node).start(wait=60)

    # -- acsnet front, for the demo --------------------------------------------------------------

    def start_front(self, host: str, listen: str, *options: str, wait: float = 30) -> None:
        """`acsnet front --listen LISTEN` on `host`, in front of its dockerd and with the lab's store (for
        IP retention), as a user starts it; returns once the docker CLI gets an answer through it."""
        node = self.node(host)
        log = os.path.join(node.workdir, f"front-{time.time_ns()}.log")
        process = node.popen([sys.executable, "-m", "plugins.cli", "front", "--listen", listen,
                              "--docker", "unix:///run/docker.sock", "--store", self.zookeeper_url, *options], log)
        deadline = time.monotonic() + wait
        through_front = {**os.environ, "DOCKER_HOST": listen}
        while node.run([self.docker_cli, "version"], check=False, timeout=10, env=through_front).returncode != 0:
            if process.poll() is not None:
                raise LabError(f"acsnet front on {host} exited with {process.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise LabError(f"acsnet front on {host} did not answer within {wait:g}s; see {log}")
            time.sleep(0.2)

    def front_pids(self, host: str, listen: str) -> list[int]:
        """The pids of `acsnet front --listen LISTEN` on `host` (also one a killed demo left running)."""
        def is_front(argv: list[str]) -> bool:
            return argv[1:4] == ["-m", "plugins.cli", "front"] and listen in argv
        return [pid for pid in processes_in_netns(self.netns(host)) if is_front(_argv(pid))]

    def stop_front(self, host: str, listen: str) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.front_pids(host, listen):
                _kill(pid, sig)
            deadline = time.monotonic() + 10
            while self.front_pids(host, listen) and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.front_pids(host, listen):
            raise LabError(f"acsnet front on {host} did not stop")

    def log_tail(self, host: str, lines: int = 40) -> str:
        """The last lines of every log of a host (its plugins and dockerd), for a failing test to show."""
        workdir = self.node(host).workdir
        parts = []
        for name in sorted(n for n in os.listdir(workdir) if n.endswith(".log")):
            with open(os.path.join(workdir, name), errors="replace") as f:
                parts.append(f"--- {host}/{name}\n" + "".join(f.readlines()[-lines:]))
        return "\n".join(parts)

    def power_off(self, host: str) -> None:
        """The host dies at once: its containers and processes are killed and its uplink goes down.
        Its namespace stays (as a dead machine stays in the rack) until 'down'."""
        node = self.node(host)
        for top in [d for d in self._cgroup_dirs() if os.path.basename(d) == f"{self.prefix}-{host}"]:
            for directory, _subdirs, files in os.walk(top):
                if "cgroup.procs" in files:
                    with open(os.path.join(directory, "cgroup.procs")) as f:
                        for pid in f.read().split():
                            _kill(int(pid), signal.SIGKILL)
        node.run(["ip", "link", "set", UPLINK, "down"])
        for pid in processes_in_netns(self.netns(host)):
            if pid != node.holder_pid:
                _kill(pid, signal.SIGKILL)

    def power_on(self, host: str, progress: Progress = _quiet) -> None:
        """Boot a host that `power_off` stopped: /run is empty again, the OS brings the uplink up with
        its address, then everything starts as at 'lab up' (OVS keeps its database, as on disk)."""
        state = self.state()
        index = state["hosts"].index(host) + 1
        node = self.node(host)
        # A boot starts with an empty /run: no mounts below it (dockerd's netns files) and no files.
        mountinfo = node.run(["cat", "/proc/self/mountinfo"]).stdout.splitlines()
        below_run = sorted({line.split()[4] for line in mountinfo if line.split()[4].startswith("/run/")}, reverse=True)
        for point in below_run:
            node.run(["umount", "-l", point], check=False)
        node.run(["find", "/run", "-mindepth", "1", "-delete"])
        node.run(["mkdir", "-p", "/run/docker/plugins"])
        node.run(["ip", "link", "set", UPLINK, "up"])
        node.run(["ip", "addr", "replace", f"{host_address(index)}/{UNDERLAY_PREFIXLEN}", "dev", UPLINK])
        self._start_host(node, index, state, progress)

    def _zookeeper(self, member: int = 0) -> ZooKeeperServer:
        """Member `member` (0-based) of the lab's ZooKeeper: standalone, or one of an ensemble."""
        svc = self.node("svc")
        count = (self.state() or {}).get("zookeepers", 1)
        peers = [(i + 1, ZOOKEEPER_ADDRESSES[i], QUORUM_PORT) for i in range(count)] if count > 1 else None
        workdir = os.path.join(self.workdir, "svc", "zookeeper" if count == 1 else f"zookeeper{member + 1}")
        return ZooKeeperServer(workdir, ZOOKEEPER_ADDRESSES[member], ZOOKEEPER_PORT, command_prefix=svc.command([]),
                               peers=peers, my_id=member + 1 if peers else None)

    def stop_zookeeper(self, member: int | None = None) -> None:
        """A ZooKeeper outage (every member), or the loss of one member of an ensemble. Data stays."""
        count = (self.state() or {}).get("zookeepers", 1)
        wanted = [self._zookeeper(m).workdir for m in (range(count) if member is None else [member])]
        for pid in processes_in_netns(self.netns("svc")):
            if _command_name(pid) == "zookeeper" and any(w + "/" in _cmdline(pid) for w in wanted):
                _kill(pid, signal.SIGKILL)

    def start_zookeeper(self, member: int | None = None) -> None:
        count = (self.state() or {}).get("zookeepers", 1)
        servers = [self._zookeeper(m) for m in (range(count) if member is None else [member])]
        for server in servers:
            server.start(wait=60)
        for server in servers:
            server.wait_ready(60)

    @staticmethod
    def plugins() -> list[str]:
        """The plugins a lab host runs: the IPAM and each driver that has landed."""
        return ["ipam", "vlan", "vxlan", "vpc"]

    @property
    def engine(self) -> str:
        """The Docker Engine the lab's hosts run ("20.10" or "26"; a lab from before engines is 20.10)."""
        return (self.state() or {}).get("engine", DEFAULT_ENGINE)

    @property
    def docker_cli(self) -> str:
        """The docker CLI that matches the lab's dockerd (a mismatched one may ask for another API)."""
        return ENGINES[self.engine].docker

    def docker(self, host: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.node(host).run([self.docker_cli, *args], check=check, timeout=timeout)

    def exec_env(self) -> dict:
        """The environment of `lab exec`: `docker` on PATH is the CLI of the lab's engine."""
        return {**os.environ, "PATH": os.path.dirname(self.docker_cli) + os.pathsep + os.environ.get("PATH", os.defpath)}

    # -- down ------------------------------------------------------------------------------------

    def down(self, progress: Progress = _quiet) -> list[str]:
        """Remove everything this lab made, found by its prefix and workdir; safe to run twice and
        after a killed run. Returns what was removed."""
        removed = []
        netns = sorted(n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
                       if n.startswith(self.prefix + "-"))
        # Containers first: they live in namespaces of their own, under the lab's cgroup parents.
        for pid in self._container_pids():
            _kill(pid, signal.SIGKILL)
        for name in netns:
            progress(f"stopping {name}")
            node = name[len(self.prefix) + 1:]
            SimulatedHost.attach(node, name, os.path.join(self.workdir, node)).stop(grace=1)
            removed.append(f"netns {name}")
        for pid in self._container_pids():  # any started while the nodes were stopping
            _kill(pid, signal.SIGKILL)
        removed += self._remove_cgroups()
        if os.path.exists(self.workdir):
            for attempt in range(20):
                try:
                    shutil.rmtree(self.workdir)
                    break
                except OSError:
                    time.sleep(0.25)  # a mount of a dying namespace may linger an instant
            else:
                raise LabError(f"could not remove {self.workdir}; see 'grep {self.workdir} /proc/mounts'")
            removed.append(f"dir {self.workdir}")
        return removed

    def _cgroup_dirs(self) -> list[str]:
        found = []
        for root in _cgroup_roots():
            try:
                names = os.listdir(root)
            except OSError:
                continue
            found += [os.path.join(root, n) for n in names if n.startswith(self.prefix + "-")]
        return found

    def _container_pids(self) -> set[int]:
        pids = set()
        for top in self._cgroup_dirs():
            for directory, _subdirs, files in os.walk(top):
                if "cgroup.procs" in files:
                    with open(os.path.join(directory, "cgroup.procs")) as f:
                        pids.update(int(p) for p in f.read().split())
        return pids

    def _remove_cgroups(self) -> list[str]:
        removed = []
        for top in self._cgroup_dirs():
            for directory, _subdirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                for attempt in range(20):
                    try:
                        os.rmdir(directory)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)  # killed tasks leave the cgroup an instant later
            removed.append(f"cgroup {top}")
        return removed

    def leftovers(self) -> list[str]:
        """What of this lab still exists: namespaces, cgroups, processes, mounts, files (empty after down)."""
        found = [f"netns {n}" for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
                 if n.startswith(self.prefix + "-")]
        found += [f"cgroup {d}" for d in self._cgroup_dirs()]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                cmdline = _cmdline(int(entry))
                if self.workdir in cmdline or f"{self.prefix}-" in cmdline:
                    found.append(f"process {entry}: {cmdline[:120]}")
        with open("/proc/self/mountinfo") as f:
            found += [f"mount {line.split()[4]}" for line in f if self.workdir in line]
        if os.path.exists(self.workdir):
            found.append(f"dir {self.workdir}")
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
                processes = sorted({_command_name(pid) for pid in processes_in_netns(self.netns(name))} - {"", "holder"})
            nodes[name] = {"running": host.running, "netns": self.netns(name), "processes": processes,
                           "logs": os.path.join(self.workdir, name)}
        return {"up": all(n["running"] for n in nodes.values()), "workdir": self.workdir, "prefix": self.prefix,
                "scope": state["scope"], "engine": state.get("engine", DEFAULT_ENGINE), "dockerd": ENGINES[state.get("engine", DEFAULT_ENGINE)].dockerd,
                "hosts": state["hosts"], "link_rate": state["link_rate"],
                "zookeeper": self.zookeeper_url, "nodes": nodes}


def _cgroup_roots() -> list[str]:
    """Every cgroup hierarchy mounted on this machine (v1 controllers and the v2 tree)."""
    roots = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if right.split()[0] in ("cgroup", "cgroup2"):
                roots.append(left.split()[4])
    return roots


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    return " ".join(_argv(pid))


def _command_name(pid: int) -> str:
    words = [os.path.basename(a) for a in _argv(pid)]
    if words and words[0].startswith("python") and len(words) > 2 and words[1] == "-m":
        if words[2] == "plugins.lab.holder":
            return "holder"
        return " ".join(["acsnet"] + words[3:5])  # e.g. "acsnet serve ipam"
    if words and words[0] == "java":
        return "zookeeper"
    return words[0] if words else ""
