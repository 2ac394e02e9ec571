"""The multi-host lab: real namespaces, OVS, dockerd, ZooKeeper and acsnet plugins on this machine."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from acsnet.lab.demo.front import FRONT as DEMO_FRONT
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.host import REPO, LabError
from acsnet.lab.topology import Lab
from tests.test_vlan import pings

COUNT_VXLAN_NETWORKS = """
import sys
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.store import open_store
store, layout = open_store(sys.argv[1]), LAYOUTS["vxlan"]
print(sum(len(state.host_network_ids(store, layout, h)) for h in state.hosts(store, layout))
      + len(state.global_network_ids(store, layout)))
"""

READ_HOLDERS = """
import json, sys
from acsnet.ipam.state import AddressRecords
from acsnet.store import open_store
store = open_store(sys.argv[1])
holders = {address: list(record.holders) for _, address, record in AddressRecords.read_all(store)}
print(json.dumps(holders))
store.close()
"""


def lab_cli(lab: Lab, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acsnet.cli", "lab", "--workdir", lab.workdir, "--prefix", lab.prefix, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_each_host_uses_its_own_plugins_and_all_share_one_zookeeper(lab):
    network = f"t-{uuid.uuid4().hex[:6]}"
    try:
        for host in ("h1", "h2"):
            lab.docker(host, "network", "create", "-d", "bridge", "--ipam-driver", "acsnet", "--subnet", "100.98.0.0/24", network)
            lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", network, "--name", f"{network}-{host}", IMAGE, "sleep", "600")
        addresses = {h: json.loads(lab.docker(h, "inspect", f"{network}-{h}").stdout)[0]["NetworkSettings"]["Networks"][network]["IPAddress"]
                     for h in ("h1", "h2")}
        assert addresses["h1"] != addresses["h2"]

        # Each host's own IPAM process made its host's allocation...
        for host in ("h1", "h2"):
            logs = "".join(open(p).read() for p in _plugin_logs(lab, host))
            assert f"address={addresses[host]} kind=endpoint host={host} allocated" in logs
        # ...and both records sit in the one ZooKeeper, read from the services node.
        holders = json.loads(lab.node("svc").run([sys.executable, "-c", READ_HOLDERS, lab.zookeeper_url]).stdout)
        assert holders[addresses["h1"]] == ["h1"] and holders[addresses["h2"]] == ["h2"]
    finally:
        for host in ("h1", "h2"):
            lab.docker(host, "rm", "-f", f"{network}-{host}", check=False)
            lab.docker(host, "network", "rm", network, check=False)


def _plugin_logs(lab: Lab, host: str) -> list[str]:
    import glob
    import os

    return glob.glob(os.path.join(lab.workdir, host, "acsnet-*.log"))


def test_demo_passes_and_can_run_again(lab):
    first = lab_cli(lab, "demo")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "PASS:" in first.stdout and "FAIL" not in first.stdout
    assert re.findall(r"^== (\w+):", first.stdout, re.M) == ["lab", "ipam", "vlan", "vxlan", "vpc", "front", "fault"]
    assert_demo_left_nothing(lab)

    # What a run killed in its front or fault scenario leaves: its front still running, a container of
    # its own, the vlan plugin SIGKILLed and not started again. The next run takes it from there.
    lab.start_front("h1", DEMO_FRONT)
    lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "203.0.113.0/24",
               "--gateway", "203.0.113.1", "-o", "VlanId=218", "demo-fault")
    lab.docker("h1", "run", "-d", "--stop-timeout", "1", "--net", "demo-fault", "--name", "demo-fault-a", IMAGE, "sleep", "600")
    lab.kill_plugin("h1", "vlan", signal.SIGKILL)
    again = lab_cli(lab, "demo")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "PASS:" in again.stdout and "FAIL" not in again.stdout
    assert "started again: vlan on h1" in again.stdout
    assert_demo_left_nothing(lab)


def assert_demo_left_nothing(lab: Lab) -> None:
    for host in lab.hosts():
        names = lab.docker(host, "ps", "-a", "--format", "{{.Names}}").stdout.split()
        networks = lab.network_names(host)
        assert [n for n in names + networks if n.startswith("demo-")] == [], f"left on {host}"
        assert lab.front_pids(host, DEMO_FRONT) == [], f"the demo's front still runs on {host}"
        assert all(lab.plugin_pids(host, plugin) for plugin in lab.plugins()), f"a plugin is down on {host}"
    kept = lab.node("h1").run([sys.executable, "-m", "acsnet.cli", "ip", "list", "--json", "--store", lab.zookeeper_url]).stdout
    assert [a for a in json.loads(kept) if a["app"].startswith("demo-")] == [], kept


def test_status_and_exec(lab):
    result = lab_cli(lab, "status", "--json")
    status = json.loads(result.stdout)
    assert result.returncode == 0 and status["up"] and status["hosts"] == ["h1", "h2"]
    assert {"dockerd", "ovs-vswitchd", "acsnet serve ipam"} <= set(status["nodes"]["h1"]["processes"])
    assert "zookeeper" in status["nodes"]["svc"]["processes"]
    result = lab_cli(lab, "exec", "h2", "--", "hostname")
    assert (result.returncode, result.stdout.strip()) == (0, "h2")
    result = lab_cli(lab, "exec", "h9", "--", "true")
    assert result.returncode == 1 and "no lab node 'h9'" in result.stderr and "Traceback" not in result.stderr


def test_a_taken_name_is_refused_clearly(lab, tmp_path):
    with pytest.raises(LabError, match=f"a lab named {lab.prefix} is already up"):
        Lab(str(tmp_path / "other"), lab.prefix).up(hosts=1)
    assert lab.is_up


def test_an_underlay_mtu_out_of_range_is_refused_before_anything_is_made(lab, tmp_path):
    for mtu in (1279, 9001):
        with pytest.raises(LabError, match=f"--underlay-mtu must be between 1280 .* and 9000 .*, not {mtu}"):
            Lab(str(tmp_path / "other"), lab.prefix + "x").up(hosts=1, underlay_mtu=mtu)
    assert not (tmp_path / "other").exists()
    result = lab_cli(lab, "status")
    assert result.returncode == 0 and "underlay MTU 1500" in result.stdout, result.stdout


def test_the_demo_with_a_relay_refuses_a_lab_up_without_one(lab):
    result = lab_cli(lab, "demo", "--relay")
    assert result.returncode == 1 and "the lab that is up has no store relay" in result.stderr, result.stderr


def test_the_demo_on_a_lab_with_a_store_relay_passes_with_the_hosts_following_through_it(tmp_path):
    """`acsnet lab demo --relay` brings up a lab as `lab up --relay` does: `acsnet relay` on the services
    node and every host's plugins started with `--relay`. The demo passes, its vxlan scenario with the
    step that checks each host's vxlan plugin follows through the relay (its /healthz, by `acsnet
    status`), on real dockerd, OVS and ZooKeeper; `lab status` names the relay; `down` stops it."""
    lab = Lab(str(tmp_path / "lab"), f"acsnet-r{uuid.uuid4().hex[:4]}")
    try:
        result = lab_cli(lab, "demo", "--relay", timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "FAIL" not in result.stdout
        step = re.search(r"^.*the hosts follow the networks through the store relay.*$", result.stdout, re.M)
        assert step and "PASS" in step.group(0), result.stdout
        status = json.loads(lab_cli(lab, "status", "--json").stdout)
        assert status["relay"] == lab.state()["relay"] and status["relay"].endswith(":7405")
        assert "acsnet relay" in " ".join(status["nodes"]["svc"]["processes"]), status["nodes"]["svc"]
        assert f"store relay {status['relay']}" in lab_cli(lab, "status").stdout
    finally:
        lab.down()
    assert lab.leftovers() == []


def test_global_scope_networks_are_cluster_wide(tmp_path):
    lab = Lab(str(tmp_path / "lab"), f"acsnet-g{uuid.uuid4().hex[:4]}")
    try:
        lab.up(hosts=2, scope="global")
        # Docker's own overlay driver is global-scope; acsnet's drivers join this test as they land.
        lab.docker("h1", "network", "create", "-d", "overlay", "--ipam-driver", "acsnet", "--subnet", "100.99.0.0/24", "cluster-net")
        deadline = time.monotonic() + 10
        while "cluster-net" not in lab.network_names("h2"):
            assert time.monotonic() < deadline, "the network created on h1 never appeared on h2"
            time.sleep(0.2)
        scope = lab.docker("h2", "network", "inspect", "-f", "{{.Scope}}", "cluster-net").stdout.strip()
        assert scope == "global"

        # vxlan: networks created once for the cluster, with one subnet and generated VNIs, isolated.
        # The driver takes global networks once dockerd has announced its cluster (DiscoverNew); a
        # plugin restarted under a running dockerd (which does not announce it again) still knows.
        for name in ("vx-a", "vx-b"):
            lab.docker("h1", "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", "100.64.8.0/24", name)
            if name == "vx-a":
                lab.kill_plugin("h1", "vxlan")
                lab.start_plugin("h1", "vxlan")
        for host, name, network, ip in (("h1", "a1", "vx-a", "100.64.8.10"), ("h2", "a2", "vx-a", "100.64.8.11"),
                                        ("h2", "b1", "vx-b", "100.64.8.10")):
            lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", network, "--ip", ip, "--name", name, IMAGE, "sleep", "600")
        assert lab.docker("h2", "network", "inspect", "-f", "{{.Scope}}", "vx-a").stdout.strip() == "global"
        assert pings(lab, "h1", "a1", "100.64.8.11") and pings(lab, "h2", "a2", "100.64.8.10")
        assert not pings(lab, "h2", "b1", "100.64.8.11", wait=2)
        # Removed once (from h2, though h1 created it), it leaves every host.
        lab.docker("h1", "rm", "-f", "a1", "a2", "b1", check=False)
        lab.docker("h2", "rm", "-f", "a1", "a2", "b1", check=False)
        for name in ("vx-a", "vx-b"):
            lab.docker("h2", "network", "rm", name)
        deadline = time.monotonic() + 10
        while lab.node("svc").run([sys.executable, "-c", COUNT_VXLAN_NETWORKS, lab.zookeeper_url]).stdout.strip() != "0":
            assert time.monotonic() < deadline, "a host kept a vxlan network deleted on another"
            time.sleep(0.2)
    finally:
        lab.down()
    assert lab.leftovers() == []


def test_down_cleans_up_after_a_killed_run(tmp_path):
    lab = Lab(str(tmp_path / "lab"), f"acsnet-k{uuid.uuid4().hex[:4]}")
    up = subprocess.Popen([sys.executable, "-m", "acsnet.cli", "lab", "--workdir", lab.workdir, "--prefix", lab.prefix, "up"],
                          cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Kill it once it is building the hosts: namespaces, switch and ZooKeeper exist, hosts half made.
    for line in up.stderr:
        if "h1: dockerd" in line:
            up.send_signal(signal.SIGKILL)
            break
    up.wait()
    assert lab.leftovers(), "the killed run left something to clean up"
    first = lab_cli(lab, "down")
    assert first.returncode == 0, first.stderr
    assert lab.leftovers() == []
    again = lab_cli(lab, "down")
    assert again.returncode == 0 and "nothing" in again.stdout


def test_cgroup_pids_skips_a_cgroup_removed_while_walking_on_a_fake_cgroup_tree(tmp_path):
    """A container that exits while power_off or down walks its host's cgroups takes its cgroup with it:
    the walk listed `cgroup.procs` and the open finds it gone (seen in CI). A plain directory tree stands
    in for the cgroup filesystem; the vanished cgroup is a `cgroup.procs` whose target is gone."""
    from acsnet.lab.processes import cgroup_pids
    top = tmp_path / "acsnet-x-h3"
    (top / "live").mkdir(parents=True)
    (top / "cgroup.procs").write_text("11\n12\n")
    (top / "live" / "cgroup.procs").write_text("13\n")
    (top / "exited").mkdir()
    (top / "exited" / "cgroup.procs").symlink_to(tmp_path / "gone")
    assert cgroup_pids(str(top)) == {11, 12, 13}


def test_cgroup_pids_skips_a_removed_cgroup_read_as_enodev_on_a_fake_open(tmp_path, monkeypatch):
    """On a cgroup v1 hierarchy a cgroup being removed can still be listed and its `cgroup.procs` then
    reads as ENODEV (seen in CI, powering a host off). The fake layer is `open`, which raises ENODEV for
    that one cgroup; any other error still reaches the caller."""
    import errno
    import acsnet.lab.processes as processes
    top = tmp_path / "acsnet-x-h1"
    (top / "exited").mkdir(parents=True)
    (top / "cgroup.procs").write_text("21\n")
    (top / "exited" / "cgroup.procs").write_text("22\n")
    failing = {"errno": errno.ENODEV}

    def open_failing_for_the_exited_cgroup(path, *args, **kwargs):
        if "exited" in str(path):
            raise OSError(failing["errno"], "fake")
        return open(path, *args, **kwargs)

    monkeypatch.setattr(processes, "open", open_failing_for_the_exited_cgroup, raising=False)
    assert processes.cgroup_pids(str(top)) == {21}
    failing["errno"] = errno.EACCES
    with pytest.raises(PermissionError):
        processes.cgroup_pids(str(top))


def test_a_lab_service_that_exits_while_waited_for_is_named_with_its_exit_and_log_at_once(tmp_path):
    from acsnet.lab.host import wait_until_up

    log = str(tmp_path / "svc.log")
    dead = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    started = time.monotonic()
    with pytest.raises(LabError, match=rf"^etcd on svc exited with 3; see {re.escape(log)}$"):
        wait_until_up(lambda: False, "etcd on svc", timeout=30, see=log, processes=[dead])
    assert time.monotonic() - started < 5, "waited on a dead service"

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(LabError, match=rf"^etcd on svc did not come up within 0.3s; see {re.escape(log)}$"):
            wait_until_up(lambda: False, "etcd on svc", timeout=0.3, see=log, processes=[alive])
        answers = iter([False, False, True])
        wait_until_up(lambda: next(answers), "etcd on svc", timeout=5, see=log, processes=[alive], interval=0.01)
    finally:
        alive.kill()
        alive.wait()
