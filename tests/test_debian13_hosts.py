"""Lab hosts that run from a Debian 13 root filesystem (`acsnet lab up --engine 26 --host-os debian13`):
each host's dockerd, containerd, runc and Open vSwitch are Debian 13's (dockerd 26.1.5, OVS 3.5), as on
a real Debian 13 host, while the acsnet plugins run from this machine and drive that host's OVS 3.5."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

from acsnet import rootfs
from acsnet.lab.host import HOST_OSES, processes_in_netns
from acsnet.lab.topology import Lab
from tests.test_lab import assert_demo_left_nothing, lab_cli
from tests.test_managed_plugins import assert_networks_of_each_driver_carry_traffic, inspect_plugin
from tests.test_vlan import run, transfer

DAEMONS = ("dockerd", "containerd", "ovs-vswitchd", "ovsdb-server")


def daemons_of(lab: Lab, host: str) -> dict[str, int]:
    """The pid of each of DAEMONS that runs in `host`."""
    found = {}
    for pid in processes_in_netns(lab.netns(host)):
        try:
            with open(f"/proc/{pid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name in DAEMONS:
            found[name] = pid
    return found


def test_demo_passes_on_debian13_hosts_running_debian13s_docker_and_ovs(tmp_path):
    root = HOST_OSES["debian13"].root()  # built once per machine (.ci/install builds it)
    built = os.stat(os.path.join(root, rootfs.COMPLETE)).st_mtime
    lab = Lab(str(tmp_path / "lab"), f"acsnet-d{uuid.uuid4().hex[:4]}")
    try:
        result = lab_cli(lab, "demo", "--engine", "26", "--host-os", "debian13", timeout=900)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        assert "Docker 26, hosts from debian13" in result.stdout and "FAIL" not in result.stdout
        assert re.findall(r"^== (\w+):", result.stdout, re.M) == ["lab", "ipam", "vlan", "vxlan", "vpc", "front", "fault"]
        assert_demo_left_nothing(lab)
        assert os.stat(os.path.join(root, rootfs.COMPLETE)).st_mtime == built, "the cached root was built again"

        status = json.loads(lab_cli(lab, "status", "--json").stdout)
        assert status["up"] and status["engine"] == "26" and status["host_os"] == "debian13"
        assert status["dockerd"] == root + "/usr/sbin/dockerd"
        for host in ("h1", "h2"):
            # What a user logged into the host sees: Debian 13's programs.
            inside = {argv[0]: lab_cli(lab, "exec", host, "--", *argv).stdout for argv in (
                ["dockerd", "--version"], ["ovs-vsctl", "--version"], ["containerd", "--version"],
                ["cat", "/etc/debian_version"])}
            assert "Docker version 26.1.5" in inside["dockerd"], inside
            assert "(Open vSwitch) 3.5." in inside["ovs-vsctl"], inside
            assert " 1.7." in inside["containerd"], inside
            assert inside["cat"].startswith("13."), inside
            # The daemons that run are those (their root is the host's Debian 13 root)...
            daemons = daemons_of(lab, host)
            assert sorted(daemons) == sorted(DAEMONS), daemons
            for name, pid in daemons.items():
                with open(f"/proc/{pid}/root/etc/debian_version") as f:
                    assert f.read().startswith("13."), f"{name} on {host} does not run from Debian 13"
            # ...and this machine's OVS tools, which the plugins use, reach the host's OVS 3.5.
            node = lab.node(host)
            version = node.run(["ovs-appctl", "-t", "/run/openvswitch/ovs-vswitchd.ctl", "version"]).stdout
            assert "(Open vSwitch) 3.5." in version, version
            assert "ovsbr0" in node.run(["ovs-vsctl", "list-br"]).stdout.split(), "host-setup's bridge is missing"
            assert "3.5." not in node.run(["ovs-vsctl", "--version"]).stdout, "this machine's own OVS tools are 3.1"
            # A container sees its image, not the host's root.
            listing = lab.docker(host, "run", "--rm", "--network", "none", "acsnet/busybox", "ls", "/").stdout.split()
            assert "usr" not in listing and "bin" in listing, listing

        # OVS 3.5 segments a TSO packet sent out of a tunnel port (3.1 drops it), so vxlan containers
        # keep their offloads: 8 MiB cross from h1 to h2 intact, taken by OVS as whole TCP segments.
        for host in ("h1", "h2"):
            lab.docker(host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", "100.64.7.0/24",
                       "-o", "VxlanId=307", "tso-vx")
        a = run(lab, "h1", "tso-a", "tso-vx")
        run(lab, "h2", "tso-b", "tso-vx")
        sent, received, packet_size = transfer(lab, ("h1", "tso-a", a), ("h2", "tso-b"))
        assert sent == received, "the transfer over vxlan was cut or corrupted"
        assert packet_size > 1514, f"OVS took {packet_size:.0f}-byte packets from the vxlan container: no TSO"
    finally:
        lab.down()
    assert lab.leftovers() == []


def serving(lab: Lab, host: str, plugin: str) -> int:
    """The pid of `acsnet serve PLUGIN` on `host`."""
    for pid in processes_in_netns(lab.netns(host)):
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                argv = f.read().split("\0")
        except OSError:
            continue
        if "serve" in argv[:-1] and argv[argv.index("serve") + 1] == plugin:
            return pid
    raise AssertionError(f"no 'acsnet serve {plugin}' runs on {host}")


def run_here(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout


def test_managed_plugins_on_debian13_hosts_carry_each_drivers_networks(tmp_path):
    """`acsnet lab up --engine 26 --host-os debian13 --plugins managed`: Debian 13's dockerd runs the managed
    plugins (their Debian 12 root, with OVS 3.1's clients) and mounts them the host's OVS run folder, where
    Debian 13's OVS 3.5 answers; a vxlan, a vlan and a vpc network cross the two hosts."""
    lab = Lab(str(tmp_path / "lab"), f"acsnet-g{uuid.uuid4().hex[:4]}")
    try:
        lab.up(hosts=2, engine="26", host_os="debian13", plugins="managed")
        for host in lab.hosts():
            assert "Docker version 26.1.5" in lab.node(host).run_in_os(["dockerd", "--version"]).stdout
            assert all(inspect_plugin(lab, host, name)["Enabled"] for name in ("acsnet/ipam", "acsnet/vlan",
                                                                                "acsnet/vxlan", "acsnet/vpc"))
            # The vlan plugin runs from its own Debian 12 root, and its ovs-vsctl (3.1) reaches the host's
            # ovsdb-server, Debian 13's (3.5), through the mounted run folder.
            pid = serving(lab, host, "vlan")
            with open(f"/proc/{pid}/root/etc/debian_version") as f:
                assert f.read().startswith("12."), "the plugin does not run from its own root"
            with open(f"/proc/{daemons_of(lab, host)['ovsdb-server']}/root/etc/debian_version") as f:
                assert f.read().startswith("13.")
            in_plugin = ["nsenter", "-t", str(pid), "-m", "-n", "--", "ovs-vsctl"]
            assert "3.1." in run_here(in_plugin + ["--version"]), "not the plugin's own ovs-vsctl"
            assert "ovsbr0" in run_here(in_plugin + ["list-br"]).split()
        assert_networks_of_each_driver_carry_traffic(lab, uuid.uuid4().hex[:4])
    finally:
        lab.down()
    assert lab.leftovers() == []


def test_debian13_hosts_run_docker_26_only_and_say_so(tmp_path):
    lab = Lab(str(tmp_path / "lab"), f"acsnet-e{uuid.uuid4().hex[:4]}")
    result = lab_cli(lab, "up", "--host-os", "debian13")  # --engine defaults to 20.10
    assert result.returncode == 1, result.stdout + result.stderr
    assert "--host-os debian13 runs Docker 26 (its own docker.io), not 20.10: add --engine 26" in result.stderr
    assert "Traceback" not in result.stderr and lab.leftovers() == []
    wrong = lab_cli(lab, "up", "--host-os", "debian14")
    assert wrong.returncode == 2 and "invalid choice: 'debian14'" in wrong.stderr and lab.leftovers() == []
