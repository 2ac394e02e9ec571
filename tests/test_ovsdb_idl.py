"""acsnet.ovsctl.ovsdb on a real Open vSwitch (ovsdb-server and ovs-vswitchd of a simulated host of the
test's own): the persistent IDL connection adds and removes ports as ovs-vsctl shows them, and rides
out an ovsdb-server restart; a running vlan plugin forks no ovs-vsctl, neither for its requests nor
for /healthz (counted by a PATH shim that logs every ovs-vsctl it runs), and reports OVSDB down and
up again across a restart without being restarted itself."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from acsnet.lab.host import SimulatedHost, stop_process_group
from acsnet.lab.ovs import RUNDIR, OpenVSwitch
from acsnet.lab.plugin_process import PluginProcess
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.ovsctl.ovsdb_idl import connection
from acsnet.plugin_client import PluginClient, get_json


@pytest.fixture
def ovs_host(tmp_path):
    host = SimulatedHost("ov", f"acsnet-o{uuid.uuid4().hex[:6]}", str(tmp_path / "ov")).start()
    try:
        switch = OpenVSwitch(host).start()
        yield host, switch
    finally:
        host.stop()


def restart_ovsdb_server(host: SimulatedHost, switch: OpenVSwitch, down_for: float = 0.0) -> None:
    """Stop the host's ovsdb-server (its database stays), wait, and start it again with the same command."""
    server = switch.processes[0]
    argv = open(f"/proc/{server.pid}/cmdline").read().split("\0")[:-1]
    stop_process_group(server)
    time.sleep(down_for)  # an outage of a given length, not a wait for a state
    switch.processes[0] = host.popen(argv, os.path.join(os.path.dirname(switch.db), "ovsdb-server.out"))
    deadline = time.monotonic() + 20
    while host.run(["ovs-vsctl", "--timeout=2", "--no-wait", "show"], check=False, timeout=10).returncode != 0:
        assert time.monotonic() < deadline, "ovsdb-server did not come back"
        time.sleep(0.1)


def vsctl(host: SimulatedHost, *args: str) -> str:
    return host.run(["ovs-vsctl", "--timeout=10", *args]).stdout.strip()


def test_idl_adds_and_removes_ports_and_survives_an_ovsdb_server_restart(ovs_host):
    host, switch = ovs_host
    remote = f"unix:/proc/{host.holder_pid}/root{RUNDIR}/db.sock"  # the host's private /run, from here
    ovsdb = Ovsdb(remote, timeout=30)
    host.run(["ip", "link", "add", "idla", "type", "veth", "peer", "name", "idlap"])
    host.run(["ip", "link", "add", "idlb", "type", "veth", "peer", "name", "idlbp"])

    ovsdb.add_bridge("acsidl0", "netdev", secure=True)
    ovsdb.add_port("acsidl0", "idla", tag=217, external_ids={"acsnet-endpoint": "e1"})
    assert vsctl(host, "get", "port", "idla", "tag") == "217"
    assert vsctl(host, "get", "bridge", "acsidl0", "fail_mode") == "secure"
    ports = ovsdb.ports("acsidl0")
    assert set(ports) == {"idla"} and ports["idla"]["external_ids"] == {"acsnet-endpoint": "e1"}
    assert ports["idla"]["ofport"] > 0, "add_port returned before ovs-vswitchd opened the port"
    ovsdb.add_port("acsidl0", "idla", external_ids={"acsnet-driver": "vlan"})  # as --may-exist: kept, updated
    assert ovsdb.ports("acsidl0")["idla"]["external_ids"] == {"acsnet-endpoint": "e1", "acsnet-driver": "vlan"}
    ovsdb.set_bridge_external_ids("acsidl0", {"acsnet-uplink": "idla"})
    assert ovsdb.bridge_external_ids("acsidl0") == {"acsnet-uplink": "idla"}
    before = connection(remote)

    # A change asked while ovsdb-server is down waits for it, and lands once it is back.
    restart_thread_error = []
    added = threading.Thread(target=lambda: restart_thread_error.append(_try(lambda: ovsdb.add_port("acsidl0", "idlb"))))
    stopped = threading.Event()

    def restart():
        restart_ovsdb_server(host, switch, down_for=1.5)
        stopped.set()

    restarter = threading.Thread(target=restart)
    restarter.start()
    deadline = time.monotonic() + 10
    while ovsdb.reachable():
        assert time.monotonic() < deadline, "the connection never noticed ovsdb-server going"
        time.sleep(0.02)
    added.start()
    restarter.join(60)
    added.join(60)
    assert restart_thread_error == [None], restart_thread_error
    assert stopped.is_set() and ovsdb.reachable()
    assert connection(remote) is before, "the process opened a second connection"
    assert sorted(vsctl(host, "list-ports", "acsidl0").split()) == ["idla", "idlb"]
    assert ovsdb.ports("acsidl0")["idlb"]["ofport"] > 0

    ovsdb.delete_port("acsidl0", "idla")
    ovsdb.delete_port("acsidl0", "idla")  # gone already: nothing to do
    ovsdb.delete_port("acsidl0", "idlb", wait=False)
    assert vsctl(host, "list-ports", "acsidl0") == ""
    assert ovsdb.ports("acsidl0") == {}
    assert vsctl(host, "--columns=name", "--bare", "list", "interface").split() == ["acsidl0"], "interfaces left behind"
    ovsdb.close()


def _try(action) -> str | None:
    try:
        action()
        return None
    except Exception as e:  # reported by the test's assertion
        return repr(e)


SHIM = """#!/bin/sh
echo "$*" >> {log}
exec /usr/bin/ovs-vsctl "$@"
"""


def test_a_vlan_plugin_forks_no_ovs_vsctl_and_healthz_follows_an_ovsdb_restart(ovs_host, tmp_path):
    host, switch = ovs_host
    host.run(["ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0-peer"])
    host.run([sys.executable, "-m", "acsnet.cli", "host-setup", "--uplink", "uplink0", "--datapath", "netdev"])
    shim_dir, forks = tmp_path / "shim", tmp_path / "ovs-vsctl.log"
    shim_dir.mkdir()
    (shim_dir / "ovs-vsctl").write_text(SHIM.format(log=forks))
    (shim_dir / "ovs-vsctl").chmod(0o755)
    plugin_dir = str(tmp_path / "plugins")
    plugin = PluginProcess.acsnet("vlan", plugin_dir, "--store", f"file://{tmp_path / 'store.db'}", "--host-id", "ov",
                                  log_dir=str(tmp_path), host=host)
    plugin.env["PATH"] = f"{shim_dir}:{plugin.env['PATH']}"
    host.run(["ovs-vsctl", "--version"], env=plugin.env)  # the shim sees what the plugin would run
    assert forks.read_text() == "--version\n"
    forks.write_text("")
    plugin.start(wait=60)
    try:
        client = PluginClient(plugin.socket_path, 30)
        network = {"NetworkID": "n1", "Options": {"com.docker.network.generic": {"VlanId": "217", "gateway_mac": "02:42:c6:33:64:01"}},
                   "IPv4Data": [{"AddressSpace": "acsnet-local", "Pool": "198.51.100.0/24", "Gateway": "198.51.100.1/24"}],
                   "IPv6Data": []}
        assert client.call("NetworkDriver.CreateNetwork", network)[0] == 200

        def endpoint(eid: str, ip: str) -> dict:
            return {"NetworkID": "n1", "EndpointID": eid, "Interface": {"Address": f"{ip}/24", "MacAddress": ""}, "Options": {}}

        status, reply = client.call("NetworkDriver.CreateEndpoint", endpoint("e" * 64, "198.51.100.10"))
        assert status == 200, reply
        assert len(vsctl(host, "--bare", "--columns=name", "find", "interface", "external_ids:acsnet-ip=198.51.100.10").split()) == 1
        for _ in range(20):
            status, health = get_json(os.path.join(plugin_dir, "vlan.sock"), "/healthz")
            assert status == 200 and health["ovsdb"] == "reachable", health
        assert client.call("NetworkDriver.DeleteEndpoint", {"NetworkID": "n1", "EndpointID": "e" * 64})[0] == 200

        # ovsdb-server goes: /healthz says so at once; back: the same plugin reconnects and serves.
        server = switch.processes[0]
        argv = open(f"/proc/{server.pid}/cmdline").read().split("\0")[:-1]
        stop_process_group(server)
        deadline = time.monotonic() + 10
        while (reply := _health(plugin_dir))[1].get("ovsdb") != "unreachable":
            assert time.monotonic() < deadline, reply
            time.sleep(0.05)
        started = time.monotonic()
        assert _health(plugin_dir)[0] == 503 and time.monotonic() - started < 1.0, "/healthz waited on OVSDB"
        switch.processes[0] = host.popen(argv, os.path.join(os.path.dirname(switch.db), "ovsdb-server.out"))
        deadline = time.monotonic() + 15
        while (reply := _health(plugin_dir))[0] != 200:
            assert time.monotonic() < deadline, f"the plugin did not reconnect: {reply}"
            time.sleep(0.1)
        status, reply = client.call("NetworkDriver.CreateEndpoint", endpoint("f" * 64, "198.51.100.11"))
        assert status == 200, reply
        assert len(vsctl(host, "--bare", "--columns=name", "find", "interface", "external_ids:acsnet-ip=198.51.100.11").split()) == 1
        assert client.call("NetworkDriver.DeleteEndpoint", {"NetworkID": "n1", "EndpointID": "f" * 64})[0] == 200
        assert forks.read_text() == "", f"the plugin forked ovs-vsctl: {forks.read_text()}"
    finally:
        plugin.stop()


def _health(plugin_dir: str) -> tuple[int, dict]:
    try:
        status, body = get_json(os.path.join(plugin_dir, "vlan.sock"), "/healthz", timeout=5)
        return status, body if isinstance(body, dict) else {}
    except (OSError, subprocess.SubprocessError) as e:
        return 0, {"error": str(e)}
