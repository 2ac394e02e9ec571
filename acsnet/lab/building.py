"""Building a lab: its nodes, the switch and cabling, ZooKeeper (and etcd), then each host's OVS,
host-setup, plugins and dockerd; and starting plugins and `acsnet front` on a running lab."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import sys
import time

from acsnet.lab.dockerd import DEFAULT_ENGINE, ENGINES, DockerDaemon
from acsnet.lab.dockerd import engine as docker_engine
from acsnet.lab.host import DEFAULT_HOST_OS, HOST_OSES, LabError, SimulatedHost, run, wait_until_up
from acsnet.lab.layout import (
    ETCD_PORT, INFRASTRUCTURE, OUTSIDE_ADDRESS, SERVICES_ADDRESS, SWITCH_BRIDGE, UNDERLAY_PREFIXLEN, UPLINK, VLANS,
    ZOOKEEPER_ADDRESSES, Progress, host_address, quiet,
)
from acsnet.lab.ovs import OpenVSwitch
from acsnet.lab.plugin_process import PluginProcess
from acsnet.lab.zookeeper import ZooKeeperMissing
from acsnet.managed_plugins import PLUGINS
from acsnet.managed_plugins import build_cached as build_plugins_once
from acsnet.store.relay import DEFAULT_PORT as RELAY_PORT

PLUGIN_KINDS = ("processes", "managed")  # `acsnet serve` processes, or Docker managed plugins
# The lab network's MTU: Ethernet's 1500, or up to the jumbo frames a data center's VXLAN fabric runs on.
DEFAULT_UNDERLAY_MTU, MIN_UNDERLAY_MTU, MAX_UNDERLAY_MTU = 1500, 1280, 9000


# The store relay of a lab brought up with `--relay`: on the services node, which every host reaches.
RELAY_ADDRESS = f"{ZOOKEEPER_ADDRESSES[0]}:{RELAY_PORT}"


def relay_options(state: dict) -> list[str]:
    """The `acsnet serve` flags that have a plugin follow its segments through the lab's relay, if it has one."""
    return ["--relay", state["relay"]] if state.get("relay") else []


def shape_port(node: SimulatedHost, port: str, rate: str) -> None:
    """Limit what leaves an OVS port's device to `rate`. OVS owns the queueing of its ports and removes
    a qdisc it did not make when it (re)configures the port; QoS type linux-noop tells it to leave the
    device's qdisc alone."""
    node.run(["ovs-vsctl", "set", "port", port, "qos=@q", "--", "--id=@q", "create", "qos", "type=linux-noop"])
    node.run(["tc", "qdisc", "replace", "dev", port, "root", "tbf", "rate", rate, "burst", "256kb", "latency", "50ms"])


class LabBuilding:
    """`Lab`'s up and start_* (a mixin: the node, state and ZooKeeper lookups are `Lab`'s)."""

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

    def up(self, hosts: int = 2, scope: str = "local", link_rate: str | None = None, progress: Progress = quiet,
           zookeepers: int = 1, engine: str = DEFAULT_ENGINE, host_os: str = DEFAULT_HOST_OS,
           plugins: str = "processes", swarm: bool = False, underlay_mtu: int = DEFAULT_UNDERLAY_MTU,
           relay: bool = False) -> None:
        if not 1 <= hosts <= 40:
            raise LabError("--hosts must be between 1 and 40")
        if not MIN_UNDERLAY_MTU <= underlay_mtu <= MAX_UNDERLAY_MTU:
            raise LabError(f"--underlay-mtu must be between {MIN_UNDERLAY_MTU} (IPv6's least) and {MAX_UNDERLAY_MTU} "
                           f"(jumbo frames), not {underlay_mtu}")
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
        if host_os not in HOST_OSES:
            raise LabError(f"--host-os must be one of {', '.join(HOST_OSES)}")
        if engine not in HOST_OSES[host_os].engines:
            raise LabError(f"--host-os {host_os} runs Docker {' or '.join(HOST_OSES[host_os].engines)} "
                           f"(its own docker.io), not {engine}: add --engine {HOST_OSES[host_os].engines[0]}")
        if plugins not in PLUGIN_KINDS:
            raise LabError(f"--plugins must be one of {', '.join(PLUGIN_KINDS)}")
        if swarm and plugins != "managed":
            raise LabError("--swarm needs --plugins managed: swarm mode refuses plugins that are not managed "
                           "(legacy plugin ... is not supported in swarm mode)")
        if swarm and scope != "local":
            raise LabError("--swarm makes its own cluster: leave --scope at local")
        self.check_prerequisites(scope, engine)
        if HOST_OSES[host_os].suite:
            progress(f"hosts' OS: {HOST_OSES[host_os].description} (debootstrap'd once, then cached)")
        os_root = HOST_OSES[host_os].root()
        host_names = [f"h{i}" for i in range(1, hosts + 1)]
        if os.path.exists(self.workdir):
            shutil.rmtree(self.workdir)
        os.makedirs(self.workdir)
        state = {"prefix": self.prefix, "hosts": host_names, "scope": scope, "engine": engine, "host_os": host_os,
                 "os_root": os_root, "link_rate": link_rate, "underlay_mtu": underlay_mtu,
                 "zookeepers": zookeepers, "nodes": list(INFRASTRUCTURE) + host_names, "created": time.time(),
                 "plugins": plugins, "swarm": swarm, "relay": RELAY_ADDRESS if relay else None}
        with open(self.state_path, "w") as f:
            json.dump(state, f, indent=2)
        try:
            self._build(state, progress)
        except BaseException:
            progress("lab up failed; removing what was made")
            self.down()
            raise
        progress(f"lab up: {hosts} hosts ({host_os}), scope {scope}, Docker {engine}, {plugins} plugins"
                 + (f" following their segments through the store relay on svc ({RELAY_ADDRESS})" if relay else "")
                 + (f", a swarm managed by {host_names[0]}" if swarm else "") + "; try 'acsnet lab exec h1 -- docker ps'")

    def _build(self, state: dict, progress: Progress) -> None:
        nodes = {}
        for name in state["nodes"]:
            os_root = state["os_root"] if name in state["hosts"] else None  # the infrastructure runs this machine's
            progress(f"node {name}: namespaces" + (f", its own root from {os_root}" if os_root else ""))
            nodes[name] = SimulatedHost(name, self.netns(name), os.path.join(self.workdir, name), os_root).start()

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
            # Every cable has the underlay's MTU at both ends before OVS opens them: a host's uplink gives
            # it to the host bridge (host-setup), the vxlan driver its networks' (less the 50 of VXLAN).
            mtu = ["mtu", str(state["underlay_mtu"])]
            run(["ip", "link", "add", "name", device, *mtu, "netns", self.netns(node), "type", "veth",
                 "peer", "name", port, *mtu, "netns", self.netns("sw")])
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
        if state.get("relay"):
            progress(f"svc: acsnet relay --listen {state['relay']}")
            self._start_relay(nodes["svc"], state["relay"])

        if state.get("plugins") == "managed":
            progress("the managed plugins: acsnet plugin build")
            build_plugins_once(self.managed_plugins_dir, progress=progress)
            self._start_managed_hosts([nodes[name] for name in state["hosts"]], state, progress)
        else:
            for index, name in enumerate(state["hosts"], start=1):
                self._start_host(nodes[name], index, state, progress)
        if state.get("swarm"):
            self._form_swarm(state["hosts"], progress)

    def _start_etcd(self, svc: SimulatedHost) -> None:
        url = f"http://{SERVICES_ADDRESS}:{ETCD_PORT}"
        log = os.path.join(svc.workdir, "etcd.log")
        process = svc.popen(["etcd", "--name", "lab", "--data-dir", os.path.join(svc.workdir, "etcd"),
                             "--listen-client-urls", url, "--advertise-client-urls", url,
                             "--listen-peer-urls", "http://127.0.0.1:2380", "--enable-v2"], log)
        probe = [sys.executable, "-c", f"import urllib.request; urllib.request.urlopen('{url}/version', timeout=1)"]
        wait_until_up(lambda: svc.run(probe, check=False).returncode == 0, "etcd on svc", timeout=30, see=log,
                      processes=[process])

    def _start_relay(self, svc: SimulatedHost, address: str) -> None:
        """`acsnet relay` on the services node, beside ZooKeeper, as an operator runs one for a pool of
        hosts; plain TCP, as the lab's ZooKeeper is (`--insecure`). `down` stops it with the node."""
        log = os.path.join(svc.workdir, "relay.log")
        process = svc.popen([sys.executable, "-m", "acsnet.cli", "relay", "--store", self.zookeeper_url,
                             "--listen", address, "--insecure"], log)

        def serving() -> bool:
            with open(log, errors="replace") as f:
                return "relay: serving" in f.read()

        wait_until_up(serving, "acsnet relay on svc", timeout=30, see=log, processes=[process])

    def dockerd_args(self, host: str, index: int, scope: str) -> list[str]:
        args = [f"--cgroup-parent=/{self.prefix}-{host}"]
        if scope == "global":
            args += [f"--cluster-store=etcd://{SERVICES_ADDRESS}:{ETCD_PORT}",
                     f"--cluster-advertise={host_address(index)}:2376"]
        return args

    def _start_dockerd(self, host: SimulatedHost, index: int, state: dict, progress: Progress) -> DockerDaemon:
        progress(f"{host.name}: dockerd {state.get('engine', DEFAULT_ENGINE)}")
        return DockerDaemon(host, os.path.join(host.workdir, "docker"),
                            extra_args=self.dockerd_args(host.name, index, state["scope"]),
                            engine=state.get("engine", DEFAULT_ENGINE)).start()

    def _start_host(self, host: SimulatedHost, index: int, state: dict, progress: Progress) -> None:
        progress(f"{host.name}: Open vSwitch" + (f" ({state['host_os']})" if host.os_root else ""))
        OpenVSwitch(host).start()
        progress(f"{host.name}: acsnet host-setup --uplink {UPLINK} --datapath netdev")
        host.run([sys.executable, "-m", "acsnet.cli", "host-setup", "--uplink", UPLINK, "--datapath", "netdev"])
        if state["link_rate"]:
            shape_port(host, UPLINK, state["link_rate"])
        progress(f"{host.name}: acsnet plugins ({', '.join(f'acsnet serve {p}' for p in self.plugins())})")
        for plugin in self.plugins():
            PluginProcess.acsnet(plugin, "/run/docker/plugins", "--store", self.zookeeper_url,
                                 "--host-id", host.name, "--scope", state["scope"], "--datapath", "netdev",
                                 *relay_options(state), log_dir=host.workdir, host=host).start(wait=60)
        daemon = self._start_dockerd(host, index, state, progress)
        progress(f"{host.name}: busybox image")
        daemon.import_busybox(os.path.join(self.workdir, "busybox.tar"))

    # -- managed plugins and swarm mode ----------------------------------------------------------

    @property
    def managed_plugins_dir(self) -> str:
        return os.path.join(self.workdir, "plugins")

    def _start_managed_hosts(self, hosts: list[SimulatedHost], state: dict, progress: Progress) -> None:
        """Each host's OVS and dockerd (it runs managed plugins), then the plugins as a user installs them,
        host setup included (`acsnet plugin install --host-setup`), on every host at once: dockerd takes
        15-30 s to take in each plugin's root, busy on about one core; here a 3-host lab's installs took
        163 s at once and 296 s one host after another."""
        daemons = {}
        for index, host in enumerate(hosts, start=1):
            progress(f"{host.name}: Open vSwitch" + (f" ({state['host_os']})" if host.os_root else ""))
            OpenVSwitch(host).start()
            daemons[host.name] = self._start_dockerd(host, index, state, progress)
            if host.os_root:
                # dockerd runs the plugins from the host's OS and bind-mounts their sources from there, while
                # `acsnet plugin install` runs from this machine's root (which makes them on a real host, where
                # the two are one): the folders the host's OS lacks are made there first. /run is both's.
                sources = sorted({m.source for spec in PLUGINS.values() for m in spec.mounts})
                host.run_in_os(["mkdir", "-p", *sources])
        # In a swarm the drivers are global scope: the manager allocates each swarm network (its pool,
        # gateway, every task's address, AllocateNetwork), and every node creates it with that; a
        # local-scope driver's swarm network is made on each node without its subnet or options.
        settings = ["ACSNET_SCOPE=global"] if state.get("swarm") else []
        settings += [f"ACSNET_RELAY={state['relay']}"] if state.get("relay") else []  # `acsnet serve --relay`'s
        names = ", ".join(h.name for h in hosts)
        progress(f"{names}: acsnet plugin install --host-setup (managed plugins acsnet/ipam, vlan, vxlan, vpc), at once")
        with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
            installs = [pool.submit(self._plugin_install, host.name, *settings) for host in hosts]
        # runc puts a plugin in a cgroup named by its id below its caller's (no cgroup parent applies to
        # plugins): `down` removes those by the ids kept here, those of a failed install's other hosts too.
        ids = [plugin_id for host in hosts
               for plugin_id in self.docker(host.name, "plugin", "ls", "--no-trunc", "--quiet", check=False).stdout.split()]
        saved = self.state()
        saved["plugin_ids"] = sorted(set(saved.get("plugin_ids", [])) | set(ids))
        with open(self.state_path, "w") as f:
            json.dump(saved, f, indent=2)
        for install in installs:
            install.result()  # raises the first host's failure
        for host in hosts:
            if state["link_rate"]:
                shape_port(host, UPLINK, state["link_rate"])
            progress(f"{host.name}: busybox image")
            daemons[host.name].import_busybox(os.path.join(self.workdir, "busybox.tar"))

    def _plugin_install(self, host: str, *settings: str) -> None:
        """`acsnet plugin install` on `host`, with the lab's store and datapath; `settings` are more
        KEY=VALUE pairs."""
        pairs = [f"ACSNET_STORE={self.zookeeper_url}", "ACSNET_DATAPATH=netdev", *settings]
        self.node(host).run([sys.executable, "-m", "acsnet.cli", "plugin", "install", "--docker", "unix:///run/docker.sock",
                             "--from", self.managed_plugins_dir, "--host-setup", "--uplink", UPLINK, "--datapath", "netdev",
                             *[f"--set={pair}" for pair in pairs]], timeout=900)

    def _form_swarm(self, hosts: list[str], progress: Progress) -> None:
        """The first host initialises a swarm on its underlay address and is its manager; the others join
        it as workers."""
        manager = hosts[0]
        progress(f"{manager}: docker swarm init (manager)")
        self.docker(manager, "swarm", "init", "--advertise-addr", host_address(1))
        token = self.docker(manager, "swarm", "join-token", "-q", "worker").stdout.strip()
        for index, host in enumerate(hosts[1:], start=2):
            progress(f"{host}: docker swarm join (worker)")
            self.docker(host, "swarm", "join", "--advertise-addr", host_address(index), "--token", token,
                        f"{host_address(1)}:2377")


    def start_plugin(self, host: str, plugin: str, *options: str) -> None:
        """Start a plugin as `up` does; `options` are extra flags of `acsnet serve` (until it restarts;
        a `--relay` among them takes the place of the lab's)."""
        state = self.state()
        node = self.node(host)
        lab_relay = [] if "--relay" in options else relay_options(state)
        PluginProcess.acsnet(plugin, "/run/docker/plugins", "--store", self.zookeeper_url, "--host-id", host,
                             "--scope", state["scope"], "--datapath", "netdev", *lab_relay, *options,
                             log_dir=node.workdir, host=node).start(wait=60)

    # -- acsnet front, for the demo --------------------------------------------------------------

    def start_front(self, host: str, listen: str, *options: str, wait: float = 30) -> None:
        """`acsnet front --listen LISTEN` on `host`, in front of its dockerd and with the lab's store (for
        IP retention), as a user starts it; returns once the docker CLI gets an answer through it."""
        node = self.node(host)
        log = os.path.join(node.workdir, f"front-{time.time_ns()}.log")
        process = node.popen([sys.executable, "-m", "acsnet.cli", "front", "--listen", listen,
                              "--docker", "unix:///run/docker.sock", "--store", self.zookeeper_url, *options], log)
        through_front = {**os.environ, "DOCKER_HOST": listen}
        wait_until_up(lambda: node.run([self.docker_cli, "version"], check=False, timeout=10, env=through_front).returncode == 0,
                      f"acsnet front on {host}", timeout=wait, see=log, processes=[process])
