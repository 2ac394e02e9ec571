"""The systemd units let their processes do what they do.

`systemd-analyze verify` (test_operations.py) checks a unit's syntax, not whether the sandbox it sets
lets the process work: the vpc unit once had ProtectKernelTunables=yes while the driver writes
/proc/sys/net/ipv4/ip_forward at start. There is no systemd as PID 1 here, so each unit's sandbox is
derived from the installed unit file and rebuilt with mount namespaces, read-only remounts and setpriv
(`acsnet.lab.unit_sandbox` says what is reproduced and what is not), on a fresh simulated host: its
own network namespace, an empty /run and /var/lib (a machine just booted, before dockerd), a real Open
vSwitch. Each unit's own ExecStart then runs there — host-setup first, then the IPAM and the three
drivers on the embedded store they share (host-setup's flags stand for /etc/acsnet/acsnet.conf) — and
is exercised: a network, an endpoint and a join per driver, an address from the IPAM, the front's
socket answering; what each wrote is checked from the host, outside the unit's namespace (forwarding
on, the vpc gateway on the bridge, vxlan's router namespace usable by `ip netns exec`). Deliberately wrong sandboxes show the
check can fail: vpc with ProtectKernelTunables=yes cannot turn forwarding on and refuses its networks, and vxlan in a mount namespace of
its own makes router namespaces the host cannot see."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import pytest

from acsnet.lab.host import SimulatedHost
from acsnet.lab.ovs import OpenVSwitch
from acsnet.lab.plugin_process import PluginProcess
from acsnet.lab.unit_sandbox import UnitSandbox
from acsnet.units import install_units

PLUGIN_DIR = "/run/docker/plugins"
UPLINK = ("uplink0", "192.0.2.11/24")
HOST_SETUP = ["--uplink", UPLINK[0], "--datapath", "netdev"]  # what acsnet.conf would say on this host

# A read-only system as the other units have, writable where the vxlan driver writes (as its unit was).
OWN_MOUNT_NAMESPACE = """ProtectSystem=strict
PrivateTmp=yes
RuntimeDirectory=docker/plugins netns
StateDirectory=acsnet
"""

FRONT_SOCKET = "/run/acsnet/docker.sock"
PING = """
import sys
from acsnet.plugin_client import UnixHTTPConnection
connection = UnixHTTPConnection(sys.argv[1], 30)
connection.request("GET", "/_ping")
response = connection.getresponse()
print(response.status, response.read().decode())
"""

CALL = """
import json, sys
from acsnet.plugin_client import PluginClient
client = PluginClient(sys.argv[1], 60)
print(json.dumps([client.call(method, body) for method, body in json.loads(sys.argv[2])]))
"""


@pytest.fixture
def fresh_host(tmp_path):
    host = SimulatedHost("h1", f"acsnet-sbx-{uuid.uuid4().hex[:8]}", str(tmp_path / "h1")).start()
    processes: list[PluginProcess] = []
    try:
        # As just booted, before dockerd: no /run/docker (the lab's hosts make it), an empty /var/lib of its own.
        host.run(["rm", "-r", "/run/docker"])
        host.run(["mount", "-t", "tmpfs", "tmpfs", "/var/lib"])
        host.run(["ip", "link", "set", "lo", "up"])
        host.run(["sysctl", "-qw", "net.ipv4.ip_forward=0"])  # a new namespace may inherit the machine's 1
        host.run(["ip", "link", "add", UPLINK[0], "type", "veth", "peer", "name", "cable0"])  # a NIC, its cable unplugged
        host.run(["ip", "addr", "add", UPLINK[1], "dev", UPLINK[0]])
        host.run(["ip", "link", "set", UPLINK[0], "up"])
        host.run(["ip", "link", "set", "cable0", "up"])
        OpenVSwitch(host).start()
        yield host, processes
    finally:
        for process in processes:
            process.stop()
        host.stop()


def units(tmp_path) -> dict[str, str]:
    """The units as `acsnet install-units` writes them, by plugin."""
    installed = install_units(str(tmp_path / "units"), None)
    return {os.path.basename(p).removeprefix("acsnet-").removesuffix(".service"): open(p).read() for p in installed}


def start(host: SimulatedHost, processes: list, tmp_path, unit_text: str, name: str, *flags: str) -> PluginProcess:
    sandbox = UnitSandbox.from_unit(unit_text)
    process = PluginProcess(sandbox.command([*sandbox.exec_start, *flags]), f"{PLUGIN_DIR}/{name}.sock",
                            str(tmp_path / f"{name}.log"), host=host)
    processes.append(process)
    return process.start(wait=90)


def call(host: SimulatedHost, name: str, calls: list[tuple[str, dict]]) -> list:
    out = host.run([sys.executable, "-c", CALL, f"{PLUGIN_DIR}/{name}.sock", json.dumps(calls)], timeout=120).stdout
    return json.loads(out)


def network_calls(network_id: str, endpoint_id: str, subnet: str, address: str, gateway: str, options: dict) -> list:
    return [
        ("NetworkDriver.CreateNetwork", {"NetworkID": network_id, "Options": {"com.docker.network.generic": options},
                                         "IPv4Data": [{"AddressSpace": "acsnet-local", "Pool": subnet, "Gateway": gateway}],
                                         "IPv6Data": []}),
        ("NetworkDriver.CreateEndpoint", {"NetworkID": network_id, "EndpointID": endpoint_id, "Options": {},
                                          "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}}),
        ("NetworkDriver.Join", {"NetworkID": network_id, "EndpointID": endpoint_id, "SandboxKey": "", "Options": {}}),
    ]


def test_each_unit_lets_its_process_do_its_work_on_a_fresh_host(fresh_host, tmp_path):
    host, processes = fresh_host
    unit = units(tmp_path)
    sandbox = UnitSandbox.from_unit(unit["host-setup"])
    setup = host.run(sandbox.command([*sandbox.exec_start, *HOST_SETUP]), check=False, timeout=120)
    assert setup.returncode == 0, setup.stdout + setup.stderr

    start(host, processes, tmp_path, unit["ipam"], "acsnet")
    pool = call(host, "acsnet", [("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": "100.73.0.0/24",
                                                             "SubPool": "", "Options": {}, "V6": False})])[0]
    assert pool[0] == 200, pool
    granted = call(host, "acsnet", [("IpamDriver.RequestAddress", {"PoolID": pool[1]["PoolID"], "Address": "",
                                                                   "Options": {"com.docker.network.endpoint.macaddress": "02:42:64:49:00:02"}})])[0]
    assert granted[0] == 200, granted

    for name in ("vlan", "vxlan", "vpc"):
        start(host, processes, tmp_path, unit[name], name)
    cases = {
        "vlan": network_calls("a" * 64, "b" * 64, "100.71.0.0/24", "100.71.0.2/24", "100.71.0.1/24",
                              {"VlanId": "217", "gateway_mac": "02:00:00:00:00:01"}),
        "vxlan": network_calls("c" * 64, "d" * 64, "100.72.0.0/24", "100.72.0.2/24", "100.72.0.1/24", {"VxlanId": "110"}),
        "vpc": network_calls("e" * 64, "f" * 64, "100.70.0.0/16", "100.70.0.2/24", "100.70.0.1/16", {"host_subnet_size": "24"}),
    }
    for name, calls in cases.items():
        answers = call(host, name, calls)
        assert [status for status, _ in answers] == [200, 200, 200], (name, answers)

    # The front: its socket in the directory systemd makes for it, answering (dockerd is not running).
    sandbox = UnitSandbox.from_unit(unit["front"])
    front = host.popen(sandbox.command(), str(tmp_path / "front.log"))  # host.stop() ends it
    deadline = time.monotonic() + 30
    while host.run(["test", "-S", FRONT_SOCKET], check=False).returncode != 0:
        assert front.poll() is None and time.monotonic() < deadline, open(tmp_path / "front.log").read()
        time.sleep(0.1)
    ping = host.run([sys.executable, "-c", PING, FRONT_SOCKET], check=False)
    assert ping.returncode == 0 and "dockerd could not be reached" in ping.stdout, ping.stdout + ping.stderr

    # What they wrote, seen from the host rather than from inside the units.
    assert host.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "1"
    assert "100.70.0.1/24" in host.run(["ip", "-4", "addr", "show", "ovsbr0"]).stdout
    ports = host.run(["ovs-vsctl", "list-ports", "ovsbr0"]).stdout.split()
    for endpoint_id in ("b" * 64, "f" * 64):  # a veth made for it or a spare made ahead: found by its label
        named = host.run(["ovs-vsctl", "--bare", "--columns=name", "find", "interface",
                          f"external_ids:acsnet-endpoint={endpoint_id}"]).stdout.split()
        assert len(named) == 1 and named[0] in ports, (endpoint_id, named, ports)
    router = host.run(["ip", "netns", "exec", "acsvx-110", "ip", "-4", "addr"], check=False)
    assert router.returncode == 0 and "100.72.0.1/24" in router.stdout, router.stdout + router.stderr
    assert os.path.basename(PLUGIN_DIR) in host.run(["ls", "/run/docker"]).stdout
    assert "store.db" in host.run(["ls", "/var/lib/acsnet"]).stdout


def test_a_wrong_sandbox_is_caught(fresh_host, tmp_path):
    host, processes = fresh_host
    unit = units(tmp_path)
    sandbox = UnitSandbox.from_unit(unit["host-setup"])
    host.run(sandbox.command([*sandbox.exec_start, *HOST_SETUP]), timeout=120)

    # vpc with read-only kernel tunables: forwarding cannot be turned on. The driver still starts (dockerd
    # disables a plugin that fails to activate until it restarts; a managed plugin's /proc/sys is always
    # read-only) and refuses vpc networks, saying what to do; forwarding stays off.
    tunables = unit["vpc"].replace("ProtectKernelTunables=no", "ProtectKernelTunables=yes")
    assert "ProtectKernelTunables=yes" in tunables
    start(host, processes, tmp_path, tunables, "vpc")
    create = network_calls("e" * 64, "f" * 64, "100.70.0.0/16", "100.70.0.2/24", "100.70.0.1/16", {"host_subnet_size": "24"})[:1]
    [(status, body)] = call(host, "vpc", create)
    assert status != 200 and "IPv4 forwarding is off" in body["Err"] and "net.ipv4.ip_forward=1" in body["Err"], body
    assert host.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "0"

    # vxlan in a mount namespace of its own: its router namespace is a mount the host never sees.
    mounts = unit["vxlan"].replace("[Service]\n", "[Service]\n" + OWN_MOUNT_NAMESPACE)
    start(host, processes, tmp_path, mounts, "vxlan")
    answers = call(host, "vxlan", network_calls("c" * 64, "d" * 64, "100.72.0.0/24", "100.72.0.2/24", "100.72.0.1/24",
                                                {"VxlanId": "110"}))
    assert [status for status, _ in answers] == [200, 200, 200], answers
    assert host.run(["ip", "netns", "exec", "acsvx-110", "true"], check=False).returncode != 0
