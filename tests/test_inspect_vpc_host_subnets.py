"""`acsnet inspect` and `acsnet status` show a vpc network as its host subnets (which host routes which
part of it), never as a segment number: the real CLI on the real embedded store, with records written
by the vpc driver's own membership code. No dockerd (the network goes by its id) and no OVS: status
says so and still lists the host's subnets."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import netaddr

from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS, SegmentEndpoint, SegmentNetwork
from acsnet.plugins.vpc.membership import Membership
from acsnet.plugins.vpc.model import record_group
from acsnet.store import open_store

NETWORK = netaddr.IPNetwork("100.64.0.0/16")
NETWORK_ID = "c" * 64
NOWHERE = "unix:///run/acsnet-test-no-dockerd.sock"


def acsnet(url: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acsnet.cli", *argv, "--store", url, "--host-id", "h1"],
                          capture_output=True, text=True, timeout=60)


def test_inspect_and_status_print_a_vpc_network_as_its_host_subnets(embedded_url, tmp_path):
    store = open_store(embedded_url)
    try:
        store.register_host("h1", "vpc", {"host_id": "h1"})
        store.register_host("h2", "vpc", {"host_id": "h2"})
        h1 = Membership(store, "h1", "10.0.0.1").claim(NETWORK, 26, 8)
        h2 = Membership(store, "h2", "10.0.0.2").claim(NETWORK, 26, 8)
        layout = LAYOUTS["vpc"]
        network = SegmentNetwork(NETWORK_ID, record_group(NETWORK), NETWORK, str(h1.gateway), None, 1500)
        state.write_host_network(store, layout, "h1", network)
        ip = str(netaddr.IPNetwork(h1.subnet).network + 2)
        state.write_host_endpoint(store, layout, "h1", SegmentEndpoint("e" * 64, NETWORK_ID, network.segment, ip, 26,
                                                                       "02:42:64:40:00:02", time.time()))

        shown = acsnet(embedded_url, "inspect", "network", NETWORK_ID, "--docker", NOWHERE)
        assert shown.returncode == 0, shown.stderr
        assert f"host subnet {h1.subnet} on h1 (via 10.0.0.1)" in shown.stdout, shown.stdout
        assert f"host subnet {h2.subnet} on h2 (via 10.0.0.2)" in shown.stdout, shown.stdout
        assert "VNI" not in shown.stdout and str(record_group(NETWORK)) not in shown.stdout, shown.stdout

        report = json.loads(acsnet(embedded_url, "inspect", "network", NETWORK_ID, "--json", "--docker", NOWHERE).stdout)
        assert report["segment"] is None
        assert [(h["subnet"], h["host"]) for h in report["host_subnets"]] == [(h1.subnet, "h1"), (h2.subnet, "h2")]

        host = acsnet(embedded_url, "inspect", "host", "h1")
        assert host.returncode == 0, host.stderr
        assert f"host subnet {h1.subnet}" in host.stdout and str(record_group(NETWORK)) not in host.stdout, host.stdout

        status = acsnet(embedded_url, "status", "--docker", NOWHERE, "--ovsdb", f"unix:{tmp_path}/no-ovsdb.sock",
                        "--plugin-dir", str(tmp_path))
        assert f"vpc network {NETWORK}: host subnet {h1.subnet} on h1" in status.stdout, status.stdout + status.stderr
        assert h2.subnet not in status.stdout
    finally:
        store.close()


def test_inspect_shows_a_dual_stack_vpc_networks_ipv6_slices(embedded_url):
    network6, network_id = netaddr.IPNetwork("fd00:64::/64"), "d" * 64
    store = open_store(embedded_url)
    try:
        store.register_host("h1", "vpc", {"host_id": "h1"})
        network4 = netaddr.IPNetwork("100.65.0.0/16")
        h1 = Membership(store, "h1", "10.0.0.1").claim(network4, 24, 8, network6, 80)
        network = SegmentNetwork(network_id, record_group(network4), network4, str(h1.gateway), None, 1500,
                                 subnet6=network6, gateway6=str(h1.gateway6))
        state.write_host_network(store, LAYOUTS["vpc"], "h1", network)
    finally:
        store.close()
    shown = acsnet(embedded_url, "inspect", "network", network_id, "--docker", NOWHERE)
    assert shown.returncode == 0, shown.stderr
    assert f"host subnet {h1.subnet} and {h1.subnet6} on h1 (via 10.0.0.1)" in shown.stdout, shown.stdout
    report = json.loads(acsnet(embedded_url, "inspect", "network", network_id, "--json", "--docker", NOWHERE).stdout)
    assert [h["subnet6"] for h in report["host_subnets"]] == ["fd00:64::/80"]
