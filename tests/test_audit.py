"""acsnet audit and gc on a lab host: each kind of inconsistency is made on purpose, found, left alone
by a dry run, and repaired by --apply."""

from __future__ import annotations

import json
import signal
import sys
import uuid

from tests.test_vlan import V217, create_network

WRITE_RECORDS = """
import json, sys
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS, SegmentEndpoint, SegmentRecord
from acsnet.store import open_store
store, vlan = open_store(sys.argv[1]), LAYOUTS["vlan"]
ghost, gone = json.loads(sys.argv[2]), json.loads(sys.argv[3])
state.write_segment_record(store, vlan, 217, SegmentRecord(**ghost))
state.write_host_endpoint(store, vlan, "ghost", SegmentEndpoint("66" * 32, "x" * 12, 217, ghost["ip"], 24, ghost["mac"]))
state.write_host_endpoint(store, vlan, "h1", SegmentEndpoint.from_json(gone))
state.write_segment_record(store, vlan, 217, SegmentRecord("h1", "02:00:00:00:00:01", "", gone["ip"], gone["mac"], gone["endpoint_id"]))
store.close()
"""

CREATE_ENDPOINT = """
import sys
from acsnet.plugin_client import PluginClient
status, reply = PluginClient("/run/docker/plugins/vlan.sock").call("NetworkDriver.CreateEndpoint", {
    "NetworkID": sys.argv[1], "EndpointID": sys.argv[2], "Options": None,
    "Interface": {"Address": "198.51.100.88/24", "AddressIPv6": "", "MacAddress": "02:42:c6:33:64:58"}})
assert status == 200, reply
"""

LEAK = """
import sys
from acsnet.plugin_client import PluginClient
c = PluginClient("/run/docker/plugins/acsnet.sock")
status, pool = c.call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": sys.argv[1]})
status, reply = c.call("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": sys.argv[2],
                       "Options": {"com.docker.network.endpoint.macaddress": "02:42:00:00:00:99"}})
assert status == 200, reply
print(pool["PoolID"])
"""


GHOST_ADDRESS = """
import sys
import netaddr
from acsnet.ipam.driver import AcsnetIpam
from acsnet.plugins.protocol import AddressRequest, PoolRequest
from acsnet.store import open_store
store = open_store(sys.argv[1])
ghost = AcsnetIpam(store, "ghost")
# It had joined the shared pool too (its dockerd made the network), and will never send ReleasePool.
assert ghost.request_pool(PoolRequest("acsnet-local", netaddr.IPNetwork(sys.argv[4]), None, {}, False)).pool_id == sys.argv[2]
ghost.request_address(AddressRequest(sys.argv[2], netaddr.IPAddress(sys.argv[3]),
                                           {AddressRequest.MAC_OPTION: "02:42:00:00:00:55"}))
store.close()
"""


def acsnet(lab, *args: str, check: bool = True):
    return lab.node("h1").run([sys.executable, "-m", "acsnet.cli", *args, "--store", lab.zookeeper_url, "--host-id", "h1"],
                              check=check)


def test_audit_finds_each_inconsistency_and_gc_repairs_them(lab):
    tag = uuid.uuid4().hex[:4]
    h1 = lab.node("h1")
    network = f"audit-{tag}"
    create_network(lab, network, V217, hosts=("h1",))
    # An endpoint dockerd never adopted (the plugin died inside CreateEndpoint): consistent in the
    # store, the veth and OVS, known to no container.
    network_id = json.loads(lab.docker("h1", "network", "inspect", network).stdout)[0]["Id"]
    unadopted = "88" * 32
    h1.run([sys.executable, "-c", CREATE_ENDPOINT, network_id, unadopted])
    lab.kill_plugin("h1", "vlan", signal.SIGKILL)
    pool = None
    try:
        orphan = "vhfeedface0000"
        h1.run(["ip", "link", "add", orphan, "type", "veth", "peer", "name", "vcfeedface0000"])
        h1.run(["ovs-vsctl", "add-port", "ovsbr0", orphan, "--", "set", "interface", orphan,
                "external_ids:acsnet-endpoint=feedface0000ffff"])
        ghost = {"host": "ghost", "host_mac": "02:00:00:00:00:66", "vtep": "", "ip": "198.51.100.66", "mac": "02:42:00:00:00:66",
                 "endpoint_id": "66" * 32}
        gone = {"endpoint_id": "77" * 32, "network_id": "x" * 12, "segment": 217, "ip": "198.51.100.77", "prefixlen": 24,
                "mac": "02:42:00:00:00:77"}
        lab.node("svc").run([sys.executable, "-c", WRITE_RECORDS, lab.zookeeper_url, json.dumps(ghost), json.dumps(gone)])
        pool = h1.run([sys.executable, "-c", LEAK, V217[0], "198.51.100.99"]).stdout.strip()
        # An address the IPAM handed to a host that has since died (it holds no store session).
        lab.node("svc").run([sys.executable, "-c", GHOST_ADDRESS, lab.zookeeper_url, pool, "198.51.100.55", V217[0]])

        result = acsnet(lab, "audit", "--json", "--grace", "0", check=False)
        found = {(f["kind"], f["subject"]) for f in json.loads(result.stdout)}
        expected = {("orphan-port", f"ovsbr0/{orphan}"), ("endpoint-without-veth", f"vlan/{gone['endpoint_id']}"),
                    ("endpoint-unknown-to-docker", f"vlan/{unadopted}"),
                    ("leaked-address", f"{pool}/198.51.100.99"), ("dead-host-address", f"{pool}/198.51.100.55"),
                    ("dead-host-record", f"vlan/217/{ghost['ip']}~{ghost['endpoint_id'][:12]}"),
                    ("dead-host-endpoint", f"vlan/ghost/{ghost['endpoint_id']}"), ("dead-host-pool-reference", f"{pool}/ghost")}
        assert result.returncode == 1 and found == expected, found

        dry = json.loads(acsnet(lab, "gc", "--json", "--grace", "0", "--dead-hosts").stdout)
        assert not dry["applied"] and len(dry["repairs"]) == 8
        assert {(f["kind"], f["subject"]) for f in json.loads(acsnet(lab, "audit", "--json", "--grace", "0", check=False).stdout)} == expected, \
            "a dry run changes nothing"

        # Without --dead-hosts, what belongs to hosts that are not alive stays.
        partial = json.loads(acsnet(lab, "gc", "--json", "--apply", "--grace", "0").stdout)
        assert len(partial["repairs"]) == 4 and not any("dead-host" in r for r in partial["repairs"]), partial
        left = {(f["kind"], f["subject"]) for f in json.loads(acsnet(lab, "audit", "--json", "--grace", "0", check=False).stdout)}
        assert left == {k for k in expected if k[0].startswith("dead-host")}, left

        applied = json.loads(acsnet(lab, "gc", "--json", "--apply", "--grace", "0", "--dead-hosts").stdout)
        assert applied["applied"] and len(applied["repairs"]) == 4
        after = acsnet(lab, "audit", "--json", "--grace", "0", check=False)
        assert (after.returncode, json.loads(after.stdout)) == (0, [])
        for port in (orphan, f"vh{unadopted[:12]}"):
            assert h1.run(["ip", "link", "show", port], check=False).returncode != 0, port
    finally:
        lab.start_plugin("h1", "vlan")
        lab.docker("h1", "network", "rm", network, check=False)
        release = ("from acsnet.plugin_client import PluginClient; import sys; "
                   "PluginClient('/run/docker/plugins/acsnet.sock').call('IpamDriver.ReleasePool', {'PoolID': sys.argv[1]})")
        if pool:
            h1.run([sys.executable, "-c", release, pool])
