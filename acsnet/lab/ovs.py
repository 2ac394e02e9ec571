"""Run a real Open vSwitch (ovsdb-server + ovs-vswitchd, Debian's openvswitch-switch) inside a simulated
host. The host's /run is private, so OVS's default paths (/run/openvswitch/db.sock, pid files, control
sockets) are the host's own and `ovs-vsctl` inside the host needs no flags. On a host with its own OS
(a Debian 13 root filesystem: OVS 3.5) the daemons and their tools are that OS's; this machine's
ovs-vsctl and ovs-ofctl (the plugins', host-setup's) reach them through the same run dir."""

from __future__ import annotations

import os
import subprocess

from acsnet.lab.host import LabError, SimulatedHost, wait_until_up

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
RUNDIR = "/run/openvswitch"


class OpenVSwitch:
    def __init__(self, host: SimulatedHost):
        self.host = host
        self.db = os.path.join(host.workdir, "ovs", "conf.db")
        self.processes: list[subprocess.Popen] = []

    def start(self, wait: float = 30.0, userspace_tso: bool = False) -> "OpenVSwitch":
        """`userspace_tso`: on from the start, for a switch that nothing sets up afterwards (on a host,
        `acsnet host-setup` turns it on)."""
        if not self.host.has_in_os("/usr/sbin/ovs-vswitchd") or not self.host.has_in_os(SCHEMA):
            raise LabError("Open vSwitch is not installed: apt-get install openvswitch-switch"
                           + (f" (in {self.host.os_root})" if self.host.os_root else ""))
        logs = os.path.dirname(self.db)
        os.makedirs(logs, exist_ok=True)
        if not os.path.exists(self.db):
            self.host.run_in_os(["ovsdb-tool", "create", self.db, SCHEMA])
        self.host.run_in_os(["mkdir", "-p", RUNDIR])
        self.processes.append(self.host.popen_in_os(
            ["ovsdb-server", self.db, f"--remote=punix:{RUNDIR}/db.sock", f"--pidfile={RUNDIR}/ovsdb-server.pid",
             f"--unixctl={RUNDIR}/ovsdb-server.ctl", f"--log-file={logs}/ovsdb-server.log"],
            os.path.join(logs, "ovsdb-server.out")))
        self._wait_for(["ovs-vsctl", "--timeout=2", "--no-wait", "init"], wait, "ovsdb-server")
        if userspace_tso:
            self.host.run_in_os(["ovs-vsctl", "--no-wait", "set", "Open_vSwitch", ".", "other_config:userspace-tso-enable=true"])
        return self.start_switch(wait)

    def start_switch(self, wait: float = 30.0) -> "OpenVSwitch":
        """ovs-vswitchd alone, against the running ovsdb-server (also again, after it was stopped: as
        `systemctl restart ovs-vswitchd` does, which is what OVS settings read only at a start need)."""
        logs = os.path.dirname(self.db)
        self.processes.append(self.host.popen_in_os(
            ["ovs-vswitchd", f"unix:{RUNDIR}/db.sock", f"--pidfile={RUNDIR}/ovs-vswitchd.pid",
             f"--unixctl={RUNDIR}/ovs-vswitchd.ctl", f"--log-file={logs}/ovs-vswitchd.log"],
            os.path.join(logs, "ovs-vswitchd.out")))
        self._wait_for(["ovs-appctl", "-t", f"{RUNDIR}/ovs-vswitchd.ctl", "version"], wait, "ovs-vswitchd")
        return self

    def _wait_for(self, argv: list[str], wait: float, what: str) -> None:
        wait_until_up(lambda: self.host.run_in_os(argv, check=False, timeout=10).returncode == 0,
                      f"{what} on {self.host.name}", timeout=wait, see=os.path.dirname(self.db),
                      processes=self.processes, interval=0.1)

    def vsctl(self, *args: str) -> str:
        return self.host.run_in_os(["ovs-vsctl", "--timeout=10", *args]).stdout
