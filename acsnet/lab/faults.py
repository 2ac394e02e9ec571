"""Failures for the tests and the demo: a plugin killed, a host powered off and on again, ovs-vswitchd
restarted, ZooKeeper (or one member) stopped, `acsnet front` stopped."""

from __future__ import annotations

import os
import signal
import time

from acsnet.lab.host import LabError, processes_in_netns
from acsnet.lab.layout import UNDERLAY_PREFIXLEN, UPLINK, Progress, host_address, quiet
from acsnet.lab.ovs import OpenVSwitch
from acsnet.lab.processes import argv_of, cgroup_pids, cmdline_of, command_name, kill_quietly


class LabFaults:
    """`Lab`'s failures (a mixin: node, state and ZooKeeper lookups are `Lab`'s, starting is `LabBuilding`'s)."""

    def plugin_pids(self, host: str, plugin: str) -> list[int]:
        """The pids of `acsnet serve <plugin>` on `host` (gunicorn's master and worker)."""
        return [pid for pid in processes_in_netns(self.netns(host)) if command_name(pid) == f"acsnet serve {plugin}"]

    def kill_plugin(self, host: str, plugin: str, sig: int = signal.SIGKILL) -> None:
        pids = self.plugin_pids(host, plugin)
        for pid in pids:
            kill_quietly(pid, sig)
        deadline = time.monotonic() + 15
        while self.plugin_pids(host, plugin):
            if time.monotonic() > deadline:
                raise LabError(f"acsnet serve {plugin} on {host} did not stop")
            time.sleep(0.05)

    def front_pids(self, host: str, listen: str) -> list[int]:
        """The pids of `acsnet front --listen LISTEN` on `host` (also one a killed demo left running)."""
        def is_front(argv: list[str]) -> bool:
            return argv[1:4] == ["-m", "acsnet.cli", "front"] and listen in argv
        return [pid for pid in processes_in_netns(self.netns(host)) if is_front(argv_of(pid))]

    def stop_front(self, host: str, listen: str) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.front_pids(host, listen):
                kill_quietly(pid, sig)
            deadline = time.monotonic() + 10
            while self.front_pids(host, listen) and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.front_pids(host, listen):
            raise LabError(f"acsnet front on {host} did not stop")

    def power_off(self, host: str) -> None:
        """The host dies at once: its containers and processes are killed and its uplink goes down.
        Its namespace stays (as a dead machine stays in the rack) until 'down'."""
        node = self.node(host)
        for top in [d for d in self._cgroup_dirs() if os.path.basename(d) == f"{self.prefix}-{host}"]:
            for pid in cgroup_pids(top):
                kill_quietly(pid, signal.SIGKILL)
        node.run(["ip", "link", "set", UPLINK, "down"])
        for pid in processes_in_netns(self.netns(host)):
            if pid != node.holder_pid:
                kill_quietly(pid, signal.SIGKILL)

    def power_on(self, host: str, progress: Progress = quiet) -> None:
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
        # A rebooted host has no veth of a container it ran: the kernel tears the dead containers'
        # namespaces (and their veths) down on its own time once the last mount went, seconds under
        # load. Booting before that would show the plugins veths a real boot never has.
        # A pair with both ends in the host's namespace (a driver's spare, made ahead of a container)
        # has no namespace to go with: it goes as the boot's, at once.
        for name in _veths(node, both_ends_here=True):
            node.run(["ip", "link", "delete", name], check=False)  # its peer, listed too, goes with it
        deadline = time.monotonic() + 60
        while (leftover := [name for name in _veths(node) if name != UPLINK]):
            if time.monotonic() > deadline:
                raise LabError(f"{host}: veths of the dead containers did not go within 60 s: {', '.join(leftover)}")
            time.sleep(0.2)
        node.run(["mkdir", "-p", "/run/docker/plugins"])
        node.run(["ip", "link", "set", UPLINK, "up"])
        node.run(["ip", "addr", "replace", f"{host_address(index)}/{UNDERLAY_PREFIXLEN}", "dev", UPLINK])
        self._start_host(node, index, state, progress)

    def restart_switch(self, host: str) -> None:
        """ovs-vswitchd on `host` stopped and started again, as an operator restarts it for a setting
        it reads only at its start (`other_config:userspace-tso-enable`). Its database, the bridges'
        ports and the host's address on the bridge stay; the flows go, as at any restart of it."""
        node = self.node(host)

        def running() -> list[int]:
            return [pid for pid in processes_in_netns(self.netns(host)) if command_name(pid) == "ovs-vswitchd"]

        for pid in running():
            kill_quietly(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while running():
            if time.monotonic() > deadline:
                raise LabError(f"ovs-vswitchd on {host} did not stop")
            time.sleep(0.05)
        OpenVSwitch(node).start_switch()

    def stop_zookeeper(self, member: int | None = None) -> None:
        """A ZooKeeper outage (every member), or the loss of one member of an ensemble. Data stays."""
        count = (self.state() or {}).get("zookeepers", 1)
        wanted = [self._zookeeper(m).workdir for m in (range(count) if member is None else [member])]
        for pid in processes_in_netns(self.netns("svc")):
            if command_name(pid) == "zookeeper" and any(w + "/" in cmdline_of(pid) for w in wanted):
                kill_quietly(pid, signal.SIGKILL)

    def start_zookeeper(self, member: int | None = None) -> None:
        count = (self.state() or {}).get("zookeepers", 1)
        servers = [self._zookeeper(m) for m in (range(count) if member is None else [member])]
        for server in servers:
            server.start(wait=60)
        for server in servers:
            server.wait_ready(60)


def _veths(node, *, both_ends_here: bool = False) -> list[str]:
    """The veths in the node's namespace; with `both_ends_here`, those whose peer is in it too (`ip`
    shows a peer elsewhere with a `link-netns`/`link-netnsid`)."""
    lines = node.run(["ip", "-o", "link", "show", "type", "veth"]).stdout.splitlines()
    return [line.split(": ", 2)[1].split("@")[0] for line in lines
            if ": " in line and not (both_ends_here and "link-netns" in line)]
