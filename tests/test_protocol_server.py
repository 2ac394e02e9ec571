"""The protocol as dockerd speaks it, against real gunicorn processes on unix sockets: the IPAM plugin
for real, and the NetworkDriver side through a recording fake driver (tests/fake_network_plugin.py)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acsnet.lab.host import REPO, stop_process_group
from acsnet.lab.plugin_process import PluginProcess
from acsnet.lab.zookeeper import free_port
from acsnet.plugin_client import PluginClient, UnixHTTPConnection

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
MAC = {"com.docker.network.endpoint.macaddress": "02:42:c0:00:02:0a"}


@pytest.fixture
def ipam(plugins, embedded_url):
    return plugins("ipam", "--store", embedded_url, "--host-id", "h1")


@pytest.fixture
def fake_network(tmp_path):
    plugin_dir = tmp_path / "fake-plugins"
    plugin_dir.mkdir()
    process = PluginProcess([sys.executable, "-m", "tests.fake_network_plugin", str(plugin_dir)],
                            str(plugin_dir / "fake.sock"), str(tmp_path / "fake.log")).start()
    yield process
    process.stop()


def calls_of(process: PluginProcess) -> list[dict]:
    path = os.path.join(os.path.dirname(process.socket_path), "calls.jsonl")
    with open(path) as f:
        return [json.loads(line) for line in f]


def assert_error(reply, status, fragment):
    code, body = reply
    assert code == status, body
    assert set(body) == {"Err"} and fragment in body["Err"], body


# -- IPAM ----------------------------------------------------------------------------------------


def test_socket_is_root_only(ipam):
    mode = os.stat(ipam.socket_path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660


def test_ipam_handshake_as_dockerd_does_it(ipam):
    client = ipam.client()
    status, raw = client.call_raw("Plugin.Activate", b"")  # dockerd sends an empty body
    assert (status, json.loads(raw)) == (200, {"Implements": ["IpamDriver"]})
    assert client.call("IpamDriver.GetCapabilities") == (200, {"RequiresMACAddress": True, "RequiresRequestReplay": False})
    assert client.call("IpamDriver.GetDefaultAddressSpaces", {}) == (
        200, {"LocalDefaultAddressSpace": "acsnet-local", "GlobalDefaultAddressSpace": "acsnet-global"})


def test_ipam_full_cycle_and_errors(ipam):
    c = ipam.client()
    status, pool = c.call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": "192.0.2.0/24",
                                                    "SubPool": "", "Options": None, "V6": False})
    assert status == 200 and pool["Pool"] == "192.0.2.0/24" and pool["Data"] == {}
    pid = pool["PoolID"]
    assert c.call("IpamDriver.RequestAddress", {"PoolID": pid, "Address": "", "Options": GATEWAY}) == (
        200, {"Address": "192.0.2.1/24", "Data": {}})
    assert c.call("IpamDriver.RequestAddress", {"PoolID": pid, "Address": "192.0.2.10", "Options": None})[0] == 200
    assert c.call("IpamDriver.RequestAddress", {"PoolID": pid, "Address": "192.0.2.20", "Options": MAC}) == (
        200, {"Address": "192.0.2.20/24", "Data": {}})

    assert_error(c.call("IpamDriver.RequestAddress", {"PoolID": pid, "Address": "192.0.2.20",
                                                     "Options": {**MAC, "com.docker.network.endpoint.macaddress": "02:42:00:00:00:01"}}),
                 409, "192.0.2.20 is in use")
    assert_error(c.call("IpamDriver.RequestAddress", {"PoolID": pid, "Address": "203.0.113.9", "Options": MAC}),
                 400, "203.0.113.9 is outside pool")
    assert_error(c.call("IpamDriver.RequestAddress", {"PoolID": pid, "Address": "192.0.2.300", "Options": MAC}),
                 400, "'192.0.2.300' is not a valid IP address")
    assert_error(c.call("IpamDriver.RequestAddress", {"PoolID": "nope", "Address": "", "Options": MAC}),
                 404, "pool nope does not exist")
    assert_error(c.call("IpamDriver.RequestAddress", {"Address": ""}), 400, "missing field 'PoolID'")
    assert_error(c.call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": "192.0.2.0/40"}),
                 400, "not a valid CIDR")
    assert_error(c.call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": "192.0.2.0/24",
                                                  "SubPool": "192.0.3.0/25"}), 400, "not inside Pool")
    assert_error(c.call("IpamDriver.RequestPool", {"AddressSpace": "elsewhere", "Pool": ""}), 400, "unknown address space")
    assert_error(c.call("IpamDriver.ReleasePool", {}), 400, "missing field 'PoolID'")
    assert_error(c.call("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": "x"}), 400, "not a valid IP address")

    for address in ("192.0.2.1", "192.0.2.10", "192.0.2.20", "192.0.2.20"):
        assert c.call("IpamDriver.ReleaseAddress", {"PoolID": pid, "Address": address}) == (200, {})
    assert c.call("IpamDriver.ReleasePool", {"PoolID": pid}) == (200, {})
    assert c.call("IpamDriver.ReleasePool", {"PoolID": pid}) == (200, {})


@pytest.mark.parametrize("raw, fragment", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object, not list"),
    (b"\xff\xfe", "not valid JSON"),
    (b'"text"', "must be a JSON object"),
    (b'{"PoolID": 5}', "field 'PoolID' must be a string"),
    (b'{"PoolID": "p", "Address": "", "Options": "x"}', "field 'Options' must be a JSON object"),
])
def test_malformed_bodies_get_clear_errors_and_the_server_keeps_serving(ipam, raw, fragment):
    c = ipam.client()
    status, body = c.call_raw("IpamDriver.RequestAddress", raw)
    assert status == 400 and fragment in json.loads(body)["Err"]
    assert c.call("IpamDriver.GetCapabilities")[0] == 200


def test_unknown_methods_and_verbs_answer_json(ipam):
    c = ipam.client()
    assert_error(c.call("IpamDriver.Frobnicate", {}), 404, "does not implement IpamDriver.Frobnicate")
    assert_error(c.call("NetworkDriver.CreateNetwork", {}), 404, "does not implement NetworkDriver.CreateNetwork")
    conn = UnixHTTPConnection(ipam.socket_path, 10)
    conn.request("GET", "/IpamDriver.GetCapabilities")
    response = conn.getresponse()
    assert response.status == 405 and "Err" in json.loads(response.read())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["IpamDriver.RequestPool", "IpamDriver.RequestAddress", "IpamDriver.ReleaseAddress",
                            "IpamDriver.ReleasePool", "IpamDriver.GetCapabilities", "Plugin.Activate"]),
    body=st.one_of(
        st.binary(max_size=64),
        st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["PoolID", "Address", "Options", "Pool", "SubPool", "V6", "AddressSpace", "x"]),
                         inner, max_size=5),
                     max_leaves=8).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_random_bodies_always_get_json(ipam, method, body):
    status, raw = ipam.client().call_raw(method, body)
    reply = json.loads(raw)
    assert status < 500, reply
    assert status == 200 or set(reply) == {"Err"}


def test_store_outage_fails_fast_with_a_clear_error(plugins):
    dead = f"zk://127.0.0.1:{free_port()}/acsnet"
    ipam = plugins("ipam", "--store", dead, "--store-timeout", "1")
    c = ipam.client()
    assert c.call("IpamDriver.GetCapabilities")[0] == 200, "capabilities never depend on the store"
    started = time.monotonic()
    assert_error(c.call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": "192.0.2.0/24"}),
                 503, "is not connected")
    assert time.monotonic() - started < 3


# dockerd's window for a plugin's socket after starting it (moby's pluginPostStart: 0.5 s, then a dial
# every 3 s, four tries): ~12.5 s, after which a managed plugin is disabled. The socket must exist long
# before that, however slow the imports, the host checks and the store are.
DOCKERD_SOCKET_WINDOW = 12.5


def test_the_socket_listens_at_once_and_activate_waits_for_the_plugin_not_the_store(tmp_path):
    """A real `acsnet serve ipam` with an unreachable store (nothing listens on its port, and the worker
    waits the whole --store-timeout for it): the socket accepts a connection well within dockerd's window,
    and Plugin.Activate sent at once waits in the backlog and is answered without the store."""
    dead = f"zk://127.0.0.1:{free_port()}/acsnet"
    path = str(tmp_path / "plugins" / "acsnet.sock")
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "acsnet.cli", "serve", "ipam", "--plugin-dir",
                                str(tmp_path / "plugins"), "--store", dead, "--store-timeout", "4", "--state-dir", str(tmp_path)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "wb"),
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() - started < DOCKERD_SOCKET_WINDOW, "no socket in dockerd's window"
                time.sleep(0.01)
            finally:
                probe.close()
        listening = time.monotonic() - started
        # The first call, made now as dockerd makes it, is answered once the worker is up.
        reply = PluginClient(path, 30).call("Plugin.Activate")
        answered = time.monotonic() - started
        print(f"\nsocket accepting after {listening:.2f} s, Activate answered after {answered:.2f} s "
              f"(dockerd waits ~{DOCKERD_SOCKET_WINDOW} s for the socket)")
        assert reply == (200, {"Implements": ["IpamDriver"]})
        assert PluginClient(path, 30).call("IpamDriver.GetCapabilities")[0] == 200
        assert listening < 3, f"socket took {listening:.2f} s (window {DOCKERD_SOCKET_WINDOW} s)"
        assert answered > listening + 1, "the worker waits for the store: Activate was held in the backlog"
    finally:
        stop_process_group(process)
    assert not os.path.exists(path), "gunicorn removes the socket it was handed when it stops"


def test_a_second_plugin_on_a_served_socket_is_refused_and_leaves_it_alone(ipam, tmp_path):
    result = subprocess.run([sys.executable, "-m", "acsnet.cli", "serve", "ipam", "--plugin-dir",
                             os.path.dirname(ipam.socket_path), "--store", f"file://{tmp_path}/other.db"],
                            cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "already serves" in result.stderr and "Traceback" not in result.stderr
    assert ipam.client().call("Plugin.Activate")[0] == 200


def test_an_unknown_store_url_is_refused_clearly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "acsnet.cli", "serve", "ipam", "--store", "redis://x"],
                            cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "unknown store URL" in result.stderr and "Traceback" not in result.stderr


# -- NetworkDriver, through the recording fake driver --------------------------------------------

CREATE_NETWORK = {  # what dockerd 20.10 sent for `docker network create -d ... -o VlanId=217 ...`
    "NetworkID": "n1",
    "Options": {"com.docker.network.enable_ipv6": False,
                "com.docker.network.generic": {"VlanId": "217", "com.docker.network.driver.mtu": "1400"}},
    "IPv4Data": [{"AddressSpace": "acsnet-local", "Pool": "10.0.5.0/24", "Gateway": "10.0.5.254/24",
                  "AuxAddresses": {"h1": "10.0.5.10/24"}}],
    "IPv6Data": [],
}


def test_network_driver_endpoints(fake_network):
    c = fake_network.client()
    assert c.call("Plugin.Activate") == (200, {"Implements": ["NetworkDriver"]})
    assert c.call("NetworkDriver.GetCapabilities") == (200, {"Scope": "local", "ConnectivityScope": "local"})
    assert c.call("NetworkDriver.CreateNetwork", CREATE_NETWORK) == (200, {})
    status, reply = c.call("NetworkDriver.CreateEndpoint", {
        "NetworkID": "n1", "EndpointID": "e1", "Options": {"com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}]},
        "Interface": {"Address": "10.0.5.200/24", "AddressIPv6": "", "MacAddress": ""}})
    assert (status, reply) == (200, {"Interface": {"Address": "", "AddressIPv6": "", "MacAddress": "02:aa:bb:cc:dd:ee"}})
    assert c.call("NetworkDriver.CreateEndpoint", {
        "NetworkID": "n1", "EndpointID": "e2", "Options": None,
        "Interface": {"Address": "10.0.5.201/24", "AddressIPv6": "", "MacAddress": "02:42:0a:00:05:c9"}}) == (200, {})
    assert c.call("NetworkDriver.EndpointOperInfo", {"NetworkID": "n1", "EndpointID": "e1"}) == (200, {"Value": {"id": "e1"}})
    assert c.call("NetworkDriver.Join", {"NetworkID": "n1", "EndpointID": "e1", "SandboxKey": "/var/run/docker/netns/x",
                                         "Options": None}) == (200, {
        "InterfaceName": {"SrcName": "veth-c1234", "DstPrefix": "eth"}, "Gateway": "10.0.5.254", "GatewayIPv6": "",
        "StaticRoutes": [{"Destination": "192.0.2.0/24", "RouteType": 0, "NextHop": "10.0.5.1"},
                         {"Destination": "198.51.100.0/24", "RouteType": 1, "NextHop": ""}],
        "DisableGatewayService": False})
    portmap = [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080}]
    assert c.call("NetworkDriver.ProgramExternalConnectivity", {
        "NetworkID": "n1", "EndpointID": "e1",
        "Options": {"com.docker.network.portmap": portmap,
                    "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}]}}) == (200, {})
    assert c.call("NetworkDriver.RevokeExternalConnectivity", {"NetworkID": "n1", "EndpointID": "e1"}) == (200, {})
    assert c.call("NetworkDriver.Leave", {"NetworkID": "n1", "EndpointID": "e1"}) == (200, {})
    assert c.call("NetworkDriver.DeleteEndpoint", {"NetworkID": "n1", "EndpointID": "e1"}) == (200, {})
    assert c.call("NetworkDriver.DiscoverNew", {"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.7"}}) == (200, {})
    assert c.call("NetworkDriver.DiscoverDelete", {"DiscoveryType": 1, "DiscoveryData": None}) == (200, {})
    assert c.call("NetworkDriver.AllocateNetwork", {"NetworkID": "n1", "Options": None}) == (200, {"Options": {}})
    assert c.call("NetworkDriver.FreeNetwork", {"NetworkID": "n1"}) == (200, {})
    assert c.call("NetworkDriver.DeleteNetwork", {"NetworkID": "n1"}) == (200, {})

    calls = calls_of(fake_network)
    assert [call["method"] for call in calls] == [
        "create_network", "create_endpoint", "create_endpoint", "join", "program_external_connectivity",
        "revoke_external_connectivity", "leave", "delete_endpoint", "delete_network"]
    assert calls[0] == {"method": "create_network", "network_id": "n1",
                        "generic": {"VlanId": "217", "com.docker.network.driver.mtu": "1400"}, "mtu": 1400, "internal": False,
                        "ipv4": [["10.0.5.0/24", "10.0.5.254/24", {"h1": "10.0.5.10/24"}]]}
    assert calls[3]["port_bindings"] == []
    assert calls[4] == {"method": "program_external_connectivity", "endpoint_id": "e1",
                        "port_bindings": [[6, 80, None, 8080]], "exposed_ports": [[6, 80]]}


def test_network_driver_errors(fake_network):
    c = fake_network.client()
    assert_error(c.call("NetworkDriver.CreateNetwork", {**CREATE_NETWORK, "NetworkID": "conflict"}), 409, "already exists")
    assert_error(c.call("NetworkDriver.CreateNetwork", {**CREATE_NETWORK, "NetworkID": "crash"}), 500,
                 "internal error in NetworkDriver.CreateNetwork: RuntimeError: simulated bug")
    assert_error(c.call("NetworkDriver.CreateNetwork", {**CREATE_NETWORK, "IPv4Data": [{"Pool": "10.0.5.0/24", "Gateway": "10.0.5.999/24"}]}),
                 400, "IPv4Data Gateway '10.0.5.999/24' is not a valid CIDR")
    assert_error(c.call("NetworkDriver.CreateNetwork", {**CREATE_NETWORK, "NetworkID": "../../etc"}), 400, "not a valid identifier")
    assert_error(c.call("NetworkDriver.CreateEndpoint", {"NetworkID": "n1", "EndpointID": "e1",
                                                        "Interface": {"MacAddress": "zz:zz"}}), 400, "not a valid MAC address")
    assert_error(c.call("NetworkDriver.Join", {"NetworkID": "n1"}), 400, "missing field 'EndpointID'")
    assert_error(c.call("NetworkDriver.DiscoverNew", {"DiscoveryType": "x"}), 400, "must be an integer")
    assert c.call("NetworkDriver.GetCapabilities")[0] == 200, "still serving after a crash in a handler"
    assert "Traceback" in fake_network.log(), "the bug's traceback goes to the log, not to dockerd"


def test_bad_mtu_and_port_bindings_are_refused_at_the_edge(fake_network):
    """The MTU and the port bindings are parsed before the driver runs: a bad one is a 400 naming the
    option and the value, and the driver is never called."""
    c = fake_network.client()
    generic = CREATE_NETWORK["Options"]["com.docker.network.generic"]
    for mtu, shown in [("20", "20"), ("jumbo", "'jumbo'"), ("70000", "70000"), ("", "''")]:
        body = {**CREATE_NETWORK, "Options": {"com.docker.network.generic": {**generic, "com.docker.network.driver.mtu": mtu}}}
        assert_error(c.call("NetworkDriver.CreateNetwork", body), 400,
                     f"com.docker.network.driver.mtu must be an integer from 68 to 65535, got {shown}")
    good = {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080}
    for portmap, fragment in [
            ({"Port": 80}, "option 'com.docker.network.portmap' must be a JSON array"),
            (["80:8080"], "each entry of option 'com.docker.network.portmap' must be a JSON object"),
            ([{**good, "Port": 0}], "Port must be an integer from 1 to 65535, got 0"),
            ([{**good, "Port": "80"}], "Port must be an integer from 1 to 65535, got '80'"),
            ([{**good, "HostPort": 70000}], "HostPort must be an integer from 0 to 65535, got 70000"),
            ([{**good, "Proto": 1}], "protocol 1 is not tcp (6), udp (17) or sctp (132)"),
            ([{**good, "Proto": True}], "Proto must be an integer"),
            ([{**good, "HostIP": "10.0.0.300"}], "HostIP '10.0.0.300' is not an IP address")]:
        for method, extra in [("NetworkDriver.ProgramExternalConnectivity", {}), ("NetworkDriver.Join", {"SandboxKey": "/x"})]:
            reply = c.call(method, {"NetworkID": "n1", "EndpointID": "e1", **extra,
                                    "Options": {"com.docker.network.portmap": portmap}})
            assert_error(reply, 400, fragment)
    assert_error(c.call("NetworkDriver.ProgramExternalConnectivity", {
        "NetworkID": "n1", "EndpointID": "e1", "Options": {"com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": -1}]}}),
        400, "com.docker.network.endpoint.exposedports entry")
    assert not os.path.exists(os.path.join(os.path.dirname(fake_network.socket_path), "calls.jsonl")), \
        "no refused request reached the driver"


def http_get(socket_path: str, path: str) -> tuple[int, str]:
    conn = UnixHTTPConnection(socket_path, 10)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read().decode()


def test_metrics_count_requests_and_health_reports_the_store(ipam, plugins):
    c = ipam.client()
    status, pool = c.call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": "192.0.2.0/24"})
    for _ in range(3):
        c.call("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": MAC})
    c.call("IpamDriver.RequestAddress", {"PoolID": "nope", "Address": "", "Options": MAC})
    status, text = http_get(ipam.socket_path, "/metrics")
    assert status == 200
    assert 'acsnet_requests_total{method="IpamDriver.RequestAddress",plugin="acsnet",status="200"} 3.0' in text
    assert 'acsnet_requests_total{method="IpamDriver.RequestAddress",plugin="acsnet",status="404"} 1.0' in text
    assert 'acsnet_request_errors_total{method="IpamDriver.RequestAddress",plugin="acsnet"} 1.0' in text
    assert 'acsnet_request_seconds_count{method="IpamDriver.RequestPool",plugin="acsnet"} 1.0' in text
    assert "acsnet_store_seconds_count" in text and "acsnet_store_connected 1.0" in text
    assert "acsnet_ipam_releases_pending 0.0" in text
    status, text = http_get(ipam.socket_path, "/healthz")
    assert status == 200 and json.loads(text) == {"plugin": "acsnet", "ok": True, "store": "connected", "host_id": "h1",
                                                  "releases_pending": 0}

    down = plugins("ipam", "--store", f"zk://127.0.0.1:{free_port()}/x", "--store-timeout", "1",
                   plugin_dir=str(os.path.dirname(ipam.socket_path)) + "-down")
    status, text = http_get(down.socket_path, "/healthz")
    assert status == 503 and json.loads(text)["store"] == "disconnected"
    assert "acsnet_store_connected 0.0" in http_get(down.socket_path, "/metrics")[1]
