"""Swarm-mode services on acsnet networks: a lab of three Docker 26 hosts (h1 the manager, h2 and h3
workers) running the managed plugins (`acsnet lab up --engine 26 --plugins managed --swarm`), real
dockerd, OVS and ZooKeeper. One lab for the module; each test removes what it makes and checks that
nothing is left on any node: no address, pool, record, OVS port or flow."""

from __future__ import annotations

import json
import sys
import time
import uuid

import pytest

from acsnet.lab.dockerd import IMAGE
from acsnet.lab.topology import Lab
from acsnet.managed_plugins import PLUGINS

VXLAN, VLAN, VPC, IPAM = (PLUGINS[p].reference for p in ("vxlan", "vlan", "vpc", "ipam"))
MANAGER = "h1"

STORED = """
import json, sys
from acsnet.ipam.state import PoolRecords
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.store import open_store
store = open_store(sys.argv[1])
found = {"pools": sorted(PoolRecords.read_all(store))}
for driver, layout in LAYOUTS.items():
    hosts = state.hosts(store, layout)
    found[driver] = sorted(state.global_network_ids(store, layout)
                           + [n for h in hosts for n in state.host_network_ids(store, layout, h)]
                           + [e for h in hosts for e in state.host_endpoint_ids(store, layout, h)])
print(json.dumps(found))
store.close()
"""


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp("swarm") / "lab"), f"acsnet-w{uuid.uuid4().hex[:4]}")
    lab.up(hosts=3, engine="26", plugins="managed", swarm=True)
    yield lab
    lab.down()
    assert lab.leftovers() == []


def stored(lab: Lab) -> dict:
    return json.loads(lab.node("svc").run([sys.executable, "-c", STORED, lab.zookeeper_url]).stdout)


def tasks(lab: Lab, service: str) -> dict[str, tuple[str, str]]:
    """Running tasks of `service`: container name -> (node, address on the service's network)."""
    found = {}
    for host in lab.hosts():
        names = lab.docker(host, "ps", "--filter", f"label=com.docker.swarm.service.name={service}",
                           "--format", "{{.Names}}").stdout.split()
        for name in names:
            info = json.loads(lab.docker(host, "inspect", name).stdout)[0]
            networks = info["NetworkSettings"]["Networks"]
            found[name] = (host, next(iter(networks.values()))["IPAddress"])
    return found


def wait_for_tasks(lab: Lab, service: str, count: int, timeout: float = 120) -> dict[str, tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        running = tasks(lab, service)
        if len(running) == count and all(address for _, address in running.values()):
            return running
        if time.monotonic() > deadline:
            states = lab.docker(MANAGER, "service", "ps", "--no-trunc", service, check=False).stdout
            raise AssertionError(f"{service}: {len(running)} of {count} tasks running\n{states}")
        time.sleep(1)


def pings(lab: Lab, host: str, container: str, address: str) -> bool:
    return lab.docker(host, "exec", container, "ping", "-c", "2", "-W", "2", address, check=False).returncode == 0


def assert_nothing_left(lab: Lab, network: str, prefix: str = "100.80.0.") -> None:
    deadline = time.monotonic() + 60
    while True:  # workers remove the network once their last task is gone
        left = [h for h in lab.hosts() if network in lab.docker(h, "network", "ls", "--format", "{{.Name}}").stdout.split()]
        records = stored(lab)
        if not left and records == {"pools": [], "vlan": [], "vxlan": [], "vpc": []}:
            break
        assert time.monotonic() < deadline, f"left: network on {left}; stored {records}"
        time.sleep(1)
    for host in lab.hosts():
        node = lab.node(host)
        ports = node.run(["ovs-vsctl", "list-ports", "ovsbr0"]).stdout.split()
        ports += node.run(["ovs-vsctl", "list-ports", "acsvx0"], check=False).stdout.split()
        assert [p for p in ports if p.startswith("vh")] == [], f"endpoint ports left on {host}: {ports}"
        flows = node.run(["ovs-ofctl", "--no-stats", "dump-flows", "acsvx0"], check=False).stdout
        assert prefix not in flows, f"flows of the removed network left on {host}:\n{flows}"


def test_a_service_on_a_vxlan_network_spans_the_swarm_and_leaves_nothing(swarm):
    lab, tag = swarm, uuid.uuid4().hex[:4]
    network, service, pinned = f"web-{tag}", f"web-{tag}", f"pinned-{tag}"
    try:
        lab.docker(MANAGER, "network", "create", "-d", VXLAN, "--ipam-driver", IPAM, "--scope", "swarm", "--attachable",
                   "--subnet", "100.80.0.0/24", "-o", "VxlanId=800", network)
        lab.docker(MANAGER, "service", "create", "--detach", "--name", service, "--network", network, "--replicas", "6",
                   "--endpoint-mode", "dnsrr", IMAGE, "httpd", "-f", "-p", "80", timeout=180)
        running = wait_for_tasks(lab, service, 6)
        addresses = [address for _, address in running.values()]
        assert len(set(addresses)) == 6 and all(a.startswith("100.80.0.") for a in addresses), running
        assert {node for node, _ in running.values()} == set(lab.hosts()), f"not on every node: {running}"
        # Across hosts: each node's first task reaches the next node's.
        by_node = {node: (name, address) for name, (node, address) in running.items()}
        for host, peer in zip(lab.hosts(), lab.hosts()[1:] + lab.hosts()[:1]):
            assert pings(lab, host, by_node[host][0], by_node[peer][1]), f"{host} does not reach {peer}\n{lab.log_tail(host)}"

        # Attachable: a standalone container pinned to an address, reached by a task on another node.
        lab.docker("h2", "run", "-d", "--stop-timeout", "1", "--net", network, "--ip", "100.80.0.50", "--name", pinned,
                   IMAGE, "sleep", "600")
        assert pings(lab, "h3", by_node["h3"][0], "100.80.0.50")

        lab.docker(MANAGER, "service", "scale", "--detach", f"{service}=12")
        running = wait_for_tasks(lab, service, 12)
        addresses = [address for _, address in running.values()] + ["100.80.0.50"]
        assert len(set(addresses)) == 13, f"an address handed out twice: {sorted(addresses)}"
        lab.docker(MANAGER, "service", "scale", "--detach", f"{service}=2")
        wait_for_tasks(lab, service, 2)
    finally:
        lab.docker("h2", "rm", "-f", pinned, check=False)
        lab.docker(MANAGER, "service", "rm", service, check=False)
        deadline = time.monotonic() + 60
        while lab.docker(MANAGER, "network", "rm", network, check=False).returncode != 0 and time.monotonic() < deadline:
            time.sleep(1)  # until the tasks' endpoints are gone
    assert_nothing_left(lab, network)


def test_bad_options_are_refused_by_the_manager_allocation(swarm):
    """Docker 26 allocates a swarm network after `docker network create` returned: the driver's refusal
    leaves the network unallocated (no driver, its tasks never start) with the reason in the manager's
    log, and nothing in the IPAM."""
    lab, name = swarm, f"bad-{uuid.uuid4().hex[:4]}"
    try:
        lab.docker(MANAGER, "network", "create", "-d", VLAN, "--ipam-driver", IPAM, "--scope", "swarm",
                   "--subnet", "198.51.100.0/24", "-o", "VlanId=5000", name)
        network_id = lab.docker(MANAGER, "network", "inspect", name, "--format", "{{.Id}}").stdout.strip()
        expected = f"Failed allocation for network {network_id}"
        deadline = time.monotonic() + 60
        while True:
            refusals = [line for line in open(f"{lab.node(MANAGER).workdir}/dockerd.log", errors="replace")
                        if expected in line]
            if refusals or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert refusals and "VlanId must be an integer from 1 to 4094, got 5000" in refusals[-1], refusals
        assert lab.docker(MANAGER, "network", "inspect", name, "--format", "{{.Driver}}").stdout.strip() == ""
        assert stored(lab)["pools"] == [], "a refused network kept its pool"
    finally:
        lab.docker(MANAGER, "network", "rm", name, check=False)


def test_vip_mode_resolves_to_a_vip_that_docker_cannot_serve_without_ipvs(swarm):
    """VIP mode: the manager takes the service's VIP from the acsnet IPAM and the embedded DNS answers it,
    but dockerd balances VIPs with IPVS through a load-balancing endpoint it makes only for its own
    overlay networks: it logs that it found none (this kernel has no IPVS either). What Docker does,
    shown: use --endpoint-mode dnsrr."""
    lab, tag = swarm, uuid.uuid4().hex[:4]
    network, service = f"vipnet-{tag}", f"vip-{tag}"
    try:
        lab.docker(MANAGER, "network", "create", "-d", VXLAN, "--ipam-driver", IPAM, "--scope", "swarm",
                   "--subnet", "100.85.0.0/24", network)
        lab.docker(MANAGER, "service", "create", "--detach", "--name", service, "--network", network, "--replicas", "1",
                   "--constraint", f"node.hostname=={MANAGER}", IMAGE, "httpd", "-f", "-p", "80", timeout=180)
        running = wait_for_tasks(lab, service, 1)
        vips = json.loads(lab.docker(MANAGER, "service", "inspect", service, "--format", "{{json .Endpoint.VirtualIPs}}").stdout)
        vip = vips[0]["Addr"].split("/")[0]
        assert vip.startswith("100.85.0.") and vip not in [a for _, a in running.values()]
        task = next(iter(running))
        answer = lab.docker(MANAGER, "exec", task, "nslookup", service, "127.0.0.11", check=False).stdout
        assert vip in answer, answer
        log = open(f"{lab.node(MANAGER).workdir}/dockerd.log", errors="replace").read()
        assert "Unable to find load balancing endpoint for network" in log
    finally:
        lab.docker(MANAGER, "service", "rm", service, check=False)
        deadline = time.monotonic() + 60
        while lab.docker(MANAGER, "network", "rm", network, check=False).returncode != 0 and time.monotonic() < deadline:
            time.sleep(1)
    assert_nothing_left(lab, network, "100.85.0.")

