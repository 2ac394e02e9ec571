"""Hostile input to a real vlan plugin (own simulated host, real OVS after host-setup, embedded store):
random and malformed bodies to every endpoint always get JSON, never an internal error, and a refused
request leaves the stored state as it was."""

from __future__ import annotations

import json
import sqlite3
import sys
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acsnet.lab.host import SimulatedHost
from acsnet.lab.ovs import OpenVSwitch
from acsnet.lab.plugin_process import PluginProcess
from acsnet.plugin_client import PluginClient
from acsnet.store.liveness import HostRecord

METHODS = ["NetworkDriver.GetCapabilities", "NetworkDriver.CreateNetwork", "NetworkDriver.DeleteNetwork",
           "NetworkDriver.CreateEndpoint", "NetworkDriver.DeleteEndpoint", "NetworkDriver.EndpointOperInfo",
           "NetworkDriver.Join", "NetworkDriver.Leave", "NetworkDriver.DiscoverNew", "NetworkDriver.DiscoverDelete",
           "NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.RevokeExternalConnectivity",
           "NetworkDriver.AllocateNetwork", "NetworkDriver.FreeNetwork", "Plugin.Activate"]
KEYS = ["NetworkID", "EndpointID", "Options", "IPv4Data", "IPv6Data", "Interface", "Address", "MacAddress", "Pool",
        "Gateway", "AuxAddresses", "SandboxKey", "DiscoveryType", "DiscoveryData", "com.docker.network.generic",
        "VlanId", "vlan_id", "com.docker.network.driver.mtu", "gateway_mac", "com.docker.network.portmap",
        "com.docker.network.endpoint.exposedports", "Proto", "Port", "HostIP", "HostPort"]
SCALARS = (st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.sampled_from(
    ["", "n1", "e1", "217", "0", "4095", "-1", "10.0.5.0/24", "10.0.5.300/24", "10.0.5.7/24", "zz:zz", "../../x",
     "02:42:0a:00:05:07", "ovsbr0; rm -rf /", "a" * 200]) | st.text(max_size=10))
BODIES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
                      max_leaves=12)


@pytest.fixture(scope="module")
def vlan_plugin(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hostile")
    host = SimulatedHost("fz", f"acsnet-h{uuid.uuid4().hex[:4]}", str(workdir / "fz")).start()
    try:
        OpenVSwitch(host).start()
        host.run(["ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0-peer"])
        host.run([sys.executable, "-m", "acsnet.cli", "host-setup", "--uplink", "uplink0", "--datapath", "netdev"])
        store = workdir / "store.db"
        plugin = PluginProcess.acsnet("vlan", str(workdir / "plugins"), "--store", f"file://{store}", "--host-id", "fz",
                                      log_dir=str(workdir), host=host).start(wait=60)
        yield plugin, str(store)
        plugin.stop()
    finally:
        host.stop()


def snapshot(store_path: str) -> list:
    with sqlite3.connect(store_path) as db:
        # Liveness records change on their own (sessions come and go): left out.
        return db.execute("SELECT path, value, version FROM nodes WHERE path NOT LIKE ? ORDER BY path",
                          (HostRecord.key("%"),)).fetchall()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(METHODS), body=st.one_of(st.binary(max_size=40), BODIES.map(lambda v: json.dumps(v).encode())))
def test_random_bodies_get_json_and_refusals_change_nothing(vlan_plugin, method, body):
    plugin, store = vlan_plugin
    before = snapshot(store)
    status, raw = PluginClient(plugin.socket_path, 30).call_raw(method, body)
    reply = json.loads(raw)
    assert status < 500, (method, body, reply)
    if status != 200:
        assert set(reply) == {"Err"} and reply["Err"], reply
        assert snapshot(store) == before, f"a refused {method} changed the store"


NETWORK_IDS = st.sampled_from(["n1", "n2", "n3"])
POOL_CHOICES = st.sampled_from(["198.51.100.0/24", "198.51.100.0/25", "203.0.113.0/24", "10.0.0.0/8", "bogus", "198.51.100.7/24"])
ADDRESSES = st.sampled_from(["198.51.100.10/24", "198.51.100.11/24", "203.0.113.9/24", "198.51.100.300/24", "", "x"])
PORT_BINDINGS = st.lists(st.fixed_dictionaries({
    "Proto": st.sampled_from([6, 17, 132, 1, "6", None, True]), "IP": st.just(""),
    "Port": st.sampled_from([80, 0, 65536, "80", None, 8.5]), "HostIP": st.sampled_from(["", "0.0.0.0", "::", "10.0.0.300", 7]),
    "HostPort": st.sampled_from([8080, 0, -1, 70000, "8080", None])}), max_size=3) | st.sampled_from([None, "8080:80", [8080], {}])
MACS = st.sampled_from(["", "02:42:c6:33:64:0a", "02:42:c6:33:64:0b", "zz", "02:42:c6:33:64:0a:ff"])
NEAR_VALID = st.one_of(
    st.fixed_dictionaries({
        "method": st.just("NetworkDriver.CreateNetwork"),
        "body": st.fixed_dictionaries({
            "NetworkID": NETWORK_IDS,
            "Options": st.fixed_dictionaries({"com.docker.network.generic": st.dictionaries(
                st.sampled_from(["VlanId", "vlanid", "vlan_id", "com.docker.network.driver.mtu", "gateway_mac"]),
                st.sampled_from(["217", "218", "0", "4095", "x", "1400", "20", "67", "65536", "9000", "1400.0", "",
                                 "02:42:c6:33:64:01", "nope"]) | st.integers(-5, 70000) | st.booleans(),
                max_size=3)}),
            "IPv4Data": st.lists(st.fixed_dictionaries({"AddressSpace": st.just("acsnet-local"), "Pool": POOL_CHOICES,
                                                        "Gateway": st.sampled_from(["198.51.100.1/24", "", "zz/24"])}),
                                 max_size=2),
            "IPv6Data": st.sampled_from([[], None, [{"Pool": "2001:db8::/64"}]]),
        })}),
    st.fixed_dictionaries({
        "method": st.just("NetworkDriver.CreateEndpoint"),
        "body": st.fixed_dictionaries({
            "NetworkID": NETWORK_IDS, "EndpointID": st.text("0123456789abcdef", min_size=12, max_size=64),
            "Interface": st.one_of(st.none(), st.fixed_dictionaries({"Address": ADDRESSES, "AddressIPv6": st.sampled_from(["", "2001:db8::5/64"]),
                                                                      "MacAddress": MACS})),
            "Options": st.none()})}),
    st.fixed_dictionaries({
        "method": st.sampled_from(["NetworkDriver.Join", "NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint",
                                   "NetworkDriver.EndpointOperInfo", "NetworkDriver.DeleteNetwork"]),
        "body": st.fixed_dictionaries({"NetworkID": NETWORK_IDS, "EndpointID": st.text("0123456789abcdef", min_size=1, max_size=20),
                                       "SandboxKey": st.just("/var/run/docker/netns/x")})}),
    st.fixed_dictionaries({  # published ports, parsed at the edge for Join and ProgramExternalConnectivity
        "method": st.sampled_from(["NetworkDriver.Join", "NetworkDriver.ProgramExternalConnectivity"]),
        "body": st.fixed_dictionaries({"NetworkID": NETWORK_IDS, "EndpointID": st.text("0123456789abcdef", min_size=1, max_size=20),
                                       "SandboxKey": st.just("/var/run/docker/netns/x"),
                                       "Options": st.fixed_dictionaries({"com.docker.network.portmap": PORT_BINDINGS})})}),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=NEAR_VALID)
def test_near_valid_requests_reach_the_driver_and_refusals_change_nothing(vlan_plugin, request):
    plugin, store = vlan_plugin
    before = snapshot(store)
    status, raw = PluginClient(plugin.socket_path, 30).call_raw(request["method"], json.dumps(request["body"]).encode())
    reply = json.loads(raw)
    assert status < 500, (request, reply)
    if status != 200:
        assert set(reply) == {"Err"} and reply["Err"], reply
        assert snapshot(store) == before, f"a refused {request['method']} changed the store: {reply}"
