"""Swarm-mode services on acsnet networks: a lab of three Docker 26 hosts (h1 the manager, h2 and h3
workers) running the managed plugins (`acsnet lab up --engine 26 --plugins managed --swarm`), real
dockerd, OVS and ZooKeeper. One lab for the module; each test removes what it makes and checks that
nothing is left on any node: no address, pool, record, OVS port or flow."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid

import pytest

from acsnet.lab.dockerd import IMAGE
from acsnet.lab.layout import host_address
from acsnet.lab.topology import Lab
from acsnet.managed_plugins import PLUGINS
from tests.test_lab import lab_cli
from tests.test_vlan import acsnet_ports

VXLAN, VLAN, VPC, IPAM = (PLUGINS[p].reference for p in ("vxlan", "vlan", "vpc", "ipam"))
MANAGER = "h1"

STORED = """
import json, sys
from acsnet.ipam.state import PoolRecords
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.plugins.vxlan.vni import generated_vnis
from acsnet.store import open_store
store = open_store(sys.argv[1])
found = {"pools": sorted(PoolRecords.read_all(store)), "vnis": generated_vnis(store)}
wanted = sys.argv[2].split(",")
for driver, layout in LAYOUTS.items():
    hosts = [h for h in state.hosts(store, layout) if h in wanted]
    found[driver] = sorted(state.global_network_ids(store, layout)
                           + [n for h in hosts for n in state.host_network_ids(store, layout, h)]
                           + [e for h in hosts for e in state.host_endpoint_ids(store, layout, h)])
print(json.dumps(found))
store.close()
"""


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp("swarm") / "lab"), f"acsnet-w{uuid.uuid4().hex[:4]}")
    # Through a store relay (`lab up --relay`: the managed plugins' ACSNET_RELAY), as a swarm of many
    # nodes would follow its segments: every test of the module runs on it, one checks it is used.
    lab.up(hosts=3, engine="26", plugins="managed", swarm=True, relay=True)
    yield lab
    lab.down()
    assert lab.leftovers() == []


def stored(lab: Lab, hosts: list[str] | None = None) -> dict:
    """What the store holds: pools, generated VNIs, and each driver's networks, endpoints and segment
    records (those of `hosts`, all by default)."""
    hosts = hosts or lab.hosts()
    return json.loads(lab.node("svc").run([sys.executable, "-c", STORED, lab.zookeeper_url, ",".join(hosts)]).stdout)


def tasks(lab: Lab, service: str, hosts: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """Running tasks of `service` on `hosts` (all): container name -> (node, address on the service's network)."""
    found = {}
    for host in hosts or lab.hosts():
        names = lab.docker(host, "ps", "--filter", f"label=com.docker.swarm.service.name={service}",
                           "--format", "{{.Names}}").stdout.split()
        for name in names:
            info = json.loads(lab.docker(host, "inspect", name).stdout)[0]
            networks = info["NetworkSettings"]["Networks"]
            found[name] = (host, next(iter(networks.values()))["IPAddress"])
    return found


def wait_for_tasks(lab: Lab, service: str, count: int, timeout: float = 120,
                   hosts: list[str] | None = None) -> dict[str, tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        running = tasks(lab, service, hosts)
        if len(running) == count and all(address for _, address in running.values()):
            return running
        if time.monotonic() > deadline:
            states = lab.docker(MANAGER, "service", "ps", "--no-trunc", service, check=False).stdout
            raise AssertionError(f"{service}: {len(running)} of {count} tasks running\n{states}")
        time.sleep(1)


def service(lab: Lab, name: str, network: str, *args: str) -> None:
    lab.docker(MANAGER, "service", "create", "--detach", "--name", name, "--network", network, "--endpoint-mode", "dnsrr",
               *args, IMAGE, "httpd", "-f", "-p", "80", timeout=180)


def remove(lab: Lab, services: list[str], networks: list[str]) -> None:
    """A test's cleanup, also after it failed: the services and networks go, and it returns once every node
    that is up has dropped its copies (or after a minute). The manager's `network rm` returns before the
    workers' teardown, and calls still coming from it would land in the next test's captured calls.
    Never raises, so a failure it follows stays the one reported."""
    for name in services:
        lab.docker(MANAGER, "service", "rm", name, check=False)
    deadline = time.monotonic() + 60
    for network in networks:
        while lab.docker(MANAGER, "network", "rm", network, check=False).returncode != 0 and time.monotonic() < deadline:
            time.sleep(1)  # until the tasks' endpoints are gone
    up = [host for host in lab.hosts() if lab.docker(host, "version", check=False).returncode == 0]
    for host in up:
        while time.monotonic() < deadline:
            copies = lab.network_names(host, check=False)
            if not set(networks) & set(copies):
                break
            time.sleep(1)


def network_gone_from(lab: Lab, host: str, network: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while network in lab.network_names(host):
        assert time.monotonic() < deadline, f"{host} kept its copy of {network}"
        time.sleep(1)


def pings(lab: Lab, host: str, container: str, address: str) -> bool:
    return lab.docker(host, "exec", container, "ping", "-c", "2", "-W", "2", address, check=False).returncode == 0


def assert_nothing_left(lab: Lab, network: str, prefix: str = "100.80.0.", hosts: list[str] | None = None,
                        pool_may_stay=lambda pool_id: False) -> None:
    """Nothing of the network on `hosts` (all), nor stored for them, nor any pool (but those `pool_may_stay`
    says) or generated VNI."""
    hosts = hosts or lab.hosts()
    deadline = time.monotonic() + 60
    while True:  # workers remove the network once their last task is gone
        left = [h for h in hosts if network in lab.network_names(h)]
        records = stored(lab, hosts)
        records["pools"] = [pool for pool in records["pools"] if not pool_may_stay(pool)]
        if not left and records == {"pools": [], "vnis": {}, "vlan": [], "vxlan": [], "vpc": []}:
            break
        assert time.monotonic() < deadline, f"left: network on {left}; stored {records}"
        time.sleep(1)
    for host in hosts:
        node = lab.node(host)
        ports = node.run(["ovs-vsctl", "list-ports", "ovsbr0"]).stdout.split()
        ports += node.run(["ovs-vsctl", "list-ports", "acsvx0"], check=False).stdout.split()
        assert acsnet_ports(lab, host) == [], f"endpoint ports left on {host}: {ports}"  # spares may stay
        for bridge in ("ovsbr0", "acsvx0"):
            flows = node.run(["ovs-ofctl", "--no-stats", "dump-flows", bridge], check=False).stdout
            assert prefix not in flows, f"flows of the removed network left on {host}'s {bridge}:\n{flows}"


def managed_plugin_health(lab: Lab, host: str, plugin: str, name: str) -> dict:
    """The /healthz of a managed plugin on `host`, read by `acsnet status` from the folder of its socket."""
    plugin_id = lab.docker(host, "plugin", "inspect", "--format", "{{.Id}}", plugin).stdout.strip()
    status = lab.node(host).run([sys.executable, "-m", "acsnet.cli", "status", "--json", "--store", lab.zookeeper_url,
                                 "--host-id", host, "--plugin-dir", f"/run/docker/plugins/{plugin_id}"], check=False)
    return json.loads(status.stdout)["plugins"][name]


def test_every_nodes_vxlan_driver_follows_its_segments_through_the_labs_relay(swarm):
    """The managed vxlan drivers installed with ACSNET_RELAY (`lab up --relay`) follow through the relay
    on the services node, healthy, on every node (the module's other vxlan tests run through it)."""
    for host in swarm.hosts():
        health = managed_plugin_health(swarm, host, VXLAN, "vxlan")
        assert health["healthy"] and health["relay"] == swarm.state()["relay"], (host, health)


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
        remove(lab, [service], [network])
    assert_nothing_left(lab, network)


@pytest.mark.parametrize("driver, options, reason", [
    (VLAN, ["-o", "VlanId=5000"], "VlanId must be an integer from 1 to 4094, got 5000"),
    # The manager takes every task's address before the task has a node: no host holds a part of it.
    (VPC, ["-o", "host_subnet_size=26"], "host_subnet_size does not apply to a swarm vpc network"),
], ids=["vlan-VlanId", "vpc-host_subnet_size"])
def test_bad_options_are_refused_by_the_manager_allocation(swarm, driver, options, reason):
    """Docker 26 allocates a swarm network after `docker network create` returned: the driver's refusal
    leaves the network unallocated (no driver, its tasks never start) with the reason in the manager's
    log, and nothing in the IPAM."""
    lab, name = swarm, f"bad-{uuid.uuid4().hex[:4]}"
    try:
        lab.docker(MANAGER, "network", "create", "-d", driver, "--ipam-driver", IPAM, "--scope", "swarm",
                   "--subnet", "198.51.100.0/24", *options, name)
        network_id = lab.docker(MANAGER, "network", "inspect", name, "--format", "{{.Id}}").stdout.strip()
        expected = f"Failed allocation for network {network_id}"
        deadline = time.monotonic() + 60
        while True:
            refusals = [line for line in open(f"{lab.node(MANAGER).workdir}/dockerd.log", errors="replace")
                        if expected in line]
            if refusals or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert refusals and reason in refusals[-1], refusals
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
        remove(lab, [service], [network])
    assert_nothing_left(lab, network, "100.85.0.")



def test_a_generated_vni_is_the_swarm_networks_until_it_is_removed_not_until_a_worker_drops_its_copy(swarm):
    """A worker deletes its copy of a swarm network when its last task leaves; the network goes on on the
    other nodes, with its VNI (generated by the manager's AllocateNetwork) still held, until `docker
    network rm` (FreeNetwork) frees it."""
    lab, tag = swarm, uuid.uuid4().hex[:4]
    network, other, keep, leave = f"gen-{tag}", f"gen2-{tag}", f"keep-{tag}", f"leave-{tag}"
    try:
        lab.docker(MANAGER, "network", "create", "-d", VXLAN, "--ipam-driver", IPAM, "--scope", "swarm",
                   "--subnet", "100.81.0.0/24", network)
        network_id = lab.docker(MANAGER, "network", "inspect", network, "--format", "{{.Id}}").stdout.strip()
        service(lab, keep, network, "--mode", "global", "--constraint", "node.hostname!=h2")
        service(lab, leave, network, "--constraint", "node.hostname==h2")
        kept = {node: (name, address) for name, (node, address) in wait_for_tasks(lab, keep, 2).items()}
        (leaving, (_, leaving_address)), = wait_for_tasks(lab, leave, 1).items()
        vni = stored(lab)["vnis"][network_id]
        assert pings(lab, "h1", kept["h1"][0], leaving_address)

        lab.docker(MANAGER, "service", "rm", leave)
        network_gone_from(lab, "h2", network)  # its last task left: h2 deleted its copy
        time.sleep(3)  # what the other nodes' plugins would do with that, done
        assert stored(lab)["vnis"].get(network_id) == vni, "the VNI was freed while the network is in use"
        assert pings(lab, "h1", kept["h1"][0], kept["h3"][1]), f"h1's task lost h3's\n{lab.log_tail('h1')}"
        assert pings(lab, "h3", kept["h3"][0], kept["h1"][1])

        lab.docker(MANAGER, "network", "create", "-d", VXLAN, "--ipam-driver", IPAM, "--scope", "swarm",
                   "--subnet", "100.82.0.0/24", other)
        other_id = lab.docker(MANAGER, "network", "inspect", other, "--format", "{{.Id}}").stdout.strip()
        deadline = time.monotonic() + 60
        while other_id not in (vnis := stored(lab)["vnis"]):  # Docker 26 allocates after create returned
            assert time.monotonic() < deadline, f"no VNI generated for {other}: {vnis}"
            time.sleep(1)
        assert vnis[other_id] != vni and vnis[network_id] == vni, vnis

        remove(lab, [keep], [network])
        assert network_id not in stored(lab)["vnis"], "network rm (FreeNetwork) left the VNI held"
    finally:
        remove(lab, [keep, leave], [network, other])
    assert_nothing_left(lab, network, "100.81.0.")


def test_a_service_on_a_vlan_network_spans_the_swarm_reaches_the_vlans_router_and_leaves_nothing(swarm):
    lab, tag = swarm, uuid.uuid4().hex[:4]
    network, name = f"v217-{tag}", f"v217-{tag}"
    try:
        lab.docker(MANAGER, "network", "create", "-d", VLAN, "--ipam-driver", IPAM, "--scope", "swarm", "--attachable",
                   "--subnet", "198.51.100.0/24", "--gateway", "198.51.100.1", "-o", "VlanId=217", network)
        service(lab, name, network, "--mode", "global")
        running = wait_for_tasks(lab, name, 3)
        addresses = [address for _, address in running.values()]
        assert len(set(addresses)) == 3 and all(a.startswith("198.51.100.") for a in addresses), running
        by_node = {node: (task, address) for task, (node, address) in running.items()}
        assert set(by_node) == set(lab.hosts()), running
        for host, peer in zip(lab.hosts(), lab.hosts()[1:] + lab.hosts()[:1]):
            assert pings(lab, host, by_node[host][0], by_node[peer][1]), f"{host} does not reach {peer}\n{lab.log_tail(host)}"
            assert pings(lab, host, by_node[host][0], "198.51.100.1"), f"{host}'s task does not reach VLAN 217's router"
    finally:
        remove(lab, [name], [network])
    assert_nothing_left(lab, network, "198.51.100.")


def test_the_demos_swarm_scenario_passes_and_leaves_nothing(swarm):
    result = lab_cli(swarm, "demo", "--engine", "26", "--swarm", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a swarm of managed plugins" in result.stdout and "FAIL" not in result.stdout, result.stdout
    assert re.findall(r"^== (\w+):", result.stdout, re.M) == ["lab", "swarm"], result.stdout
    assert_nothing_left(swarm, "demo-web", "100.86.0.")


HELD = """
import json, sys
from acsnet.ipam.state import AddressRecords
from acsnet.store import open_store
store = open_store(sys.argv[1])
held = {}
for pool_id, address, record in AddressRecords.read_all(store):
    if address.startswith(sys.argv[2]):
        held.setdefault(pool_id.split("-")[0], {})[address] = list(record.holders)
print(json.dumps(held))
store.close()
"""


def held(lab: Lab, prefix: str) -> dict[str, dict[str, list[str]]]:
    """The IPAM's address records starting with `prefix`: pool kind (global, local) -> address -> holders."""
    return json.loads(lab.node("svc").run([sys.executable, "-c", HELD, lab.zookeeper_url, prefix]).stdout)


def routes_to(lab: Lab, host: str, prefix: str) -> dict[str, str]:
    """acsnet's kernel routes on `host` to addresses starting with `prefix`: destination -> next hop."""
    found = {}
    for line in lab.node(host).run(["ip", "-4", "route", "show", "proto", "172"]).stdout.splitlines():
        fields = line.split()
        if fields and fields[0].startswith(prefix) and "via" in fields:
            found[fields[0]] = fields[fields.index("via") + 1]
    return found


def test_a_service_on_a_vpc_network_spans_the_swarm_each_address_routed_to_its_node_and_leaves_nothing(swarm):
    """A swarm vpc network has no host subnets: the manager hands out its addresses, each node takes the
    manager's address again, and every node routes each address of another node to it by a /32 (hostroutes:
    a kernel route, and a flow to its MAC). The route limit counts those addresses."""
    lab, tag = swarm, uuid.uuid4().hex[:4]
    network, name, prefix = f"vpc-{tag}", f"vpc-{tag}", "100.87.0."
    underlay = {host: host_address(int(host[1:])) for host in lab.hosts()}
    try:
        lab.docker(MANAGER, "network", "create", "-d", VPC, "--ipam-driver", IPAM, "--scope", "swarm", "--attachable",
                   "--subnet", "100.87.0.0/24", "-o", "max_routes=8", network)
        service(lab, name, network, "--replicas", "6", "--stop-grace-period", "1s")
        running = wait_for_tasks(lab, name, 6)
        addresses = [address for _, address in running.values()]
        assert len(set(addresses)) == 6 and all(a.startswith(prefix) for a in addresses), running
        assert {node for node, _ in running.values()} == set(lab.hosts()), f"not on every node: {running}"
        by_node = {node: (task, address) for task, (node, address) in running.items()}
        for host, (task, _) in by_node.items():  # the whole range on the link, the manager's gateway on every node
            attached = next(iter(json.loads(lab.docker(host, "inspect", task).stdout)[0]["NetworkSettings"]["Networks"].values()))
            assert (attached["IPPrefixLen"], attached["Gateway"]) == (24, "100.87.0.1"), attached
        for host, peer in zip(lab.hosts(), lab.hosts()[1:] + lab.hosts()[:1]):
            assert pings(lab, host, by_node[host][0], by_node[peer][1]), f"{host} does not reach {peer}\n{lab.log_tail(host)}"
        deadline = time.monotonic() + 30
        for host in lab.hosts():  # each other node's address: a /32 via that node
            wanted = {address: underlay[node] for node, address in running.values() if node != host}
            while routes_to(lab, host, prefix) != wanted:
                assert time.monotonic() < deadline, f"{host}: {routes_to(lab, host, prefix)}, not {wanted}"
                time.sleep(1)

        lab.docker(MANAGER, "service", "scale", "--detach", f"{name}=8")
        running = wait_for_tasks(lab, name, 8)
        assert len({address for _, address in running.values()}) == 8, running
        lab.docker(MANAGER, "service", "scale", "--detach", f"{name}=9")  # one address more than max_routes=8
        deadline = time.monotonic() + 60
        while "has reached its route limit (max_routes=8)" not in (
                states := lab.docker(MANAGER, "service", "ps", "--no-trunc", name).stdout):
            assert time.monotonic() < deadline, f"the 9th task was not refused for the route limit:\n{states}"
            time.sleep(2)
        assert len(tasks(lab, name)) == 8

        lab.docker(MANAGER, "service", "scale", "--detach", f"{name}=3")
        running = wait_for_tasks(lab, name, 3)
        lab.docker(MANAGER, "node", "update", "--availability", "drain", "h2")
        try:
            deadline = time.monotonic() + 120
            while True:
                moved = tasks(lab, name)
                if len(moved) == 3 and "h2" not in {node for node, _ in moved.values()} and all(a for _, a in moved.values()):
                    break
                assert time.monotonic() < deadline, f"h2's tasks did not move: {moved}"
                time.sleep(1)
            network_gone_from(lab, "h2", network)
            assert len({address for _, address in moved.values()}) == 3, moved
            for task, (node, address) in moved.items():  # every task answers every other, wherever it landed
                for other, (other_node, _) in moved.items():
                    if other != task:
                        assert pings(lab, other_node, other, address), f"{task} on {node} does not answer {other}"
            assert routes_to(lab, "h2", prefix) == {}, "h2 has no task left, and keeps no route of the network"
        finally:
            lab.docker(MANAGER, "node", "update", "--availability", "active", "h2")
    finally:
        remove(lab, [name], [network])
    assert_nothing_left(lab, network, prefix)
    for host in lab.hosts():
        assert routes_to(lab, host, prefix) == {}, f"routes left on {host}"
        bridge = lab.node(host).run(["ip", "-4", "address", "show", "ovsbr0"]).stdout
        assert prefix not in bridge, f"the network's gateway left on {host}'s bridge:\n{bridge}"
    assert held(lab, prefix) == {}, "addresses left in the IPAM"


def test_a_drained_nodes_tasks_answer_on_their_new_node_and_a_killed_workers_are_rescheduled(swarm):
    """Last in the module: h3 stays dead. A drained node's tasks stop there and start on the others with
    new addresses from the IPAM; a worker powered off: its tasks start elsewhere; its addresses come back
    once the swarm forgets the node (`docker node rm --force`: until then its tasks' state is unknown to
    the manager, which keeps their addresses) and `acsnet gc --dead-hosts` releases what the dead host's
    plugin held."""
    lab, tag = swarm, uuid.uuid4().hex[:4]
    network, name, subnet = f"move-{tag}", f"move-{tag}", "100.84.0.0/24"
    live = ["h1", "h2"]
    try:
        lab.docker(MANAGER, "network", "create", "-d", VXLAN, "--ipam-driver", IPAM, "--scope", "swarm",
                   "--subnet", subnet, network)
        service(lab, name, network, "--replicas", "6", "--stop-grace-period", "1s")
        running = wait_for_tasks(lab, name, 6)
        assert {node for node, _ in running.values()} == set(lab.hosts()), running

        lab.docker(MANAGER, "node", "update", "--availability", "drain", "h2")
        deadline = time.monotonic() + 120
        while True:
            moved = tasks(lab, name)
            if len(moved) == 6 and "h2" not in {node for node, _ in moved.values()}:
                break
            assert time.monotonic() < deadline, f"h2's tasks did not move: {moved}"
            time.sleep(1)
        assert len({address for _, address in moved.values()}) == 6, moved
        new = {task: where for task, where in moved.items() if task not in running}
        on_h2 = [task for task, (node, _) in running.items() if node == "h2"]
        assert {node for node, _ in new.values()} <= {"h1", "h3"} and len(new) == len(on_h2), (running, moved)
        on_h1 = next(task for task, (node, _) in moved.items() if node == "h1")
        on_h3 = next(task for task, (node, _) in moved.items() if node == "h3")
        for task, (node, address) in new.items():
            asker = on_h3 if node == "h1" else on_h1
            assert pings(lab, "h3" if node == "h1" else "h1", asker, address), f"{task} on {node} does not answer"
        network_gone_from(lab, "h2", network)
        lab.docker(MANAGER, "node", "update", "--availability", "active", "h2")

        before = tasks(lab, name)
        on_h3 = {task: address for task, (node, address) in before.items() if node == "h3"}
        assert on_h3, before
        lab.power_off("h3")
        deadline = time.monotonic() + 120
        while True:  # the manager marks h3 down after missed heartbeats, then starts its tasks elsewhere
            after = tasks(lab, name, live)
            if len(after) == 6:
                break
            assert time.monotonic() < deadline, f"h3's tasks were not rescheduled: {after}"
            time.sleep(2)
        addresses = {address for _, address in after.values()}
        assert len(addresses) == 6 and not addresses & set(on_h3.values()), (on_h3, after)
        by_node = {node: (task, address) for task, (node, address) in after.items()}
        assert pings(lab, "h1", by_node["h1"][0], by_node["h2"][1]) and pings(lab, "h2", by_node["h2"][0], by_node["h1"][1])
        dead = set(on_h3.values())
        records = held(lab, "100.84.0.")  # the manager has h3's tasks as Running still: it keeps their addresses
        assert dead <= set(records["global"]) and dead <= set(records["local"]), records

        lab.docker(MANAGER, "node", "rm", "--force", "h3")  # the swarm forgets it: its tasks are orphaned
        deadline = time.monotonic() + 60
        while dead & set((records := held(lab, "100.84.0."))["global"]):
            assert time.monotonic() < deadline, f"the manager kept h3's task addresses: {records}"
            time.sleep(1)
        # --grace 0: the task that moved onto h3 at the drain holds an address younger than gc's default grace.
        collected = lab.node("h1").run([sys.executable, "-m", "acsnet.cli", "gc", "--dead-hosts", "--apply", "--grace", "0",
                                        "--host-id", "h1", "--docker", "unix:///run/docker.sock", "--store", lab.zookeeper_url])
        assert all("dead-host-address local-100.84.0.0_24-" in collected.stdout and f"/{address}:" in collected.stdout
                   for address in dead), collected.stdout
        assert "dead-host-pool-reference local-100.84.0.0_24-" in collected.stdout and "/h3:" in collected.stdout, collected.stdout
        records = held(lab, "100.84.0.")
        assert not dead & set(records["local"]), records
        running = {address for _, address in after.values()}
        assert set(records["global"]) - {"100.84.0.1"} == running, records
        assert set(records["local"]) - {"100.84.0.1"} == running, (records, collected.stdout)
    finally:
        remove(lab, [name], [network])
    # gc dropped dead h3's reference to the nodes' shared local pool too (its dockerd never sends
    # ReleasePool), so the pool goes with the live nodes' copies of the network.
    assert_nothing_left(lab, network, "100.84.0.", hosts=live)


# -- what swarm sends the plugins, captured -------------------------------------------------------

# Each plugin logs every call it answers (acsnet/plugins/server.py), and dockerd copies a managed
# plugin's output into its own log: a host's plugin calls, with the plugin's clock to the millisecond.
PLUGIN_CALL = re.compile(r"ts=(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) level=INFO logger=acsnet\.server "
                         r"plugin=\S+ method=\w+\.(\w+) status=(\d+)")
# dockerd asks EndpointOperInfo one to three times per endpoint, and announces each node that joins or
# leaves the swarm (DiscoverNew, DiscoverDelete) as it learns of it, seconds after the join.
ASKED_AS_NEEDED = {"EndpointOperInfo", "DiscoverNew", "DiscoverDelete"}

# The calls of each step, by role, as the test below captures them (the README's protocol notes).
# Docker 26 asks GetDefaultAddressSpaces before every RequestPool (20.10 once, at activation).
POOL_REQUESTED = {"20.10": ["RequestPool"], "26": ["GetDefaultAddressSpaces", "RequestPool"]}
COPY_CREATED = ["RequestAddress", "CreateNetwork"]  # after the local pool: the manager's gateway, the copy
TASK_STARTED = ["RequestAddress", "CreateEndpoint", "Join", "ProgramExternalConnectivity"]
TASK_STOPPED = ["RevokeExternalConnectivity", "Leave", "DeleteEndpoint", "ReleaseAddress"]
COPY_DELETED = ["ReleaseAddress", "ReleasePool", "DeleteNetwork"]  # the gateway, the local pool, the copy
NETWORK_ALLOCATED = ["RequestAddress", "AllocateNetwork"]  # after the global pool: the gateway, the driver
NETWORK_FREED = ["FreeNetwork", "ReleaseAddress", "ReleasePool"]


def log_marks(lab: Lab, hosts: list[str]) -> dict[str, int]:
    """Where each host's dockerd log ends now: calls_since reads from there."""
    return {host: os.path.getsize(f"{lab.node(host).workdir}/dockerd.log") for host in hosts}


def calls_since(lab: Lab, marks: dict[str, int]) -> dict[str, list[str]]:
    """Each host's plugin calls since its mark, by method (`Method!status` if not 200), in the order the
    plugins answered them. The IPAM's and the driver's lines reach dockerd's log through two pipes, so
    they are ordered by the plugins' own times: dockerd waits for each reply before its next call of a
    task or a network, and a call's line is written before its reply."""
    found = {}
    for host, mark in marks.items():
        with open(f"{lab.node(host).workdir}/dockerd.log", errors="replace") as log:
            log.seek(mark)
            calls = [match.groups() for match in map(PLUGIN_CALL.search, log) if match]
        calls.sort(key=lambda call: call[0])  # stable: one plugin's calls keep their order
        found[host] = [method + ("" if status == "200" else f"!{status}") for _, method, status in calls
                       if method not in ASKED_AS_NEEDED]
    return found


def expect_calls(lab: Lab, marks: dict[str, int], expected: dict[str, list[str]], step: str, timeout: float = 60) -> None:
    """Wait until the hosts' calls since `marks` are `expected` (none for a host it does not name)."""
    expected = {host: expected.get(host, []) for host in marks}
    deadline = time.monotonic() + timeout
    while (seen := calls_since(lab, marks)) != expected:
        assert time.monotonic() < deadline, f"{step}: the plugins were called\n{json.dumps(seen, indent=1)}\n" \
                                            f"where the README records\n{json.dumps(expected, indent=1)}"
        time.sleep(1)


def ready_workers(lab: Lab) -> list[str]:
    rows = lab.docker(MANAGER, "node", "ls", "--filter", "role=worker", "--format", "{{.Hostname}} {{.Status}}").stdout
    return sorted(host for host, status in (row.split() for row in rows.splitlines()) if status == "Ready")


def test_what_swarm_sends_the_manager_and_the_workers_plugins(swarm):
    """The calls each step brings on the manager (no task on it: it only allocates) and on each worker,
    captured from the plugins' logs: a worker makes its copy of the network with its first task and
    deletes it (DeleteNetwork) when its last task leaves, here as its node is drained; the manager frees
    the network (FreeNetwork) at `docker network rm`. Runs on the workers that are up (the test that
    kills h3 comes first in this module)."""
    lab, tag = swarm, uuid.uuid4().hex[:4]
    network, name = f"calls-{tag}", f"calls-{tag}"
    workers = ready_workers(lab)
    drained, hosts = workers[-1], [MANAGER, *workers]
    pool = POOL_REQUESTED[lab.engine]
    try:
        marks = log_marks(lab, hosts)
        lab.docker(MANAGER, "network", "create", "-d", VXLAN, "--ipam-driver", IPAM, "--scope", "swarm",
                   "--subnet", "100.87.0.0/24", network)
        expect_calls(lab, marks, {MANAGER: pool + NETWORK_ALLOCATED}, "network create")

        marks = log_marks(lab, hosts)
        service(lab, name, network, "--mode", "global", "--constraint", "node.role==worker", "--stop-grace-period", "1s")
        wait_for_tasks(lab, name, len(workers), hosts=workers)
        expect_calls(lab, marks, {MANAGER: ["RequestAddress"] * len(workers),
                                  **{worker: pool + COPY_CREATED + TASK_STARTED for worker in workers}}, "service create")

        marks = log_marks(lab, hosts)  # the drained worker's only task leaves: it deletes its copy
        lab.docker(MANAGER, "node", "update", "--availability", "drain", drained)
        expect_calls(lab, marks, {MANAGER: ["ReleaseAddress"], drained: TASK_STOPPED + COPY_DELETED}, f"drain {drained}")
        network_gone_from(lab, drained, network)

        marks = log_marks(lab, hosts)
        lab.docker(MANAGER, "node", "update", "--availability", "active", drained)
        expect_calls(lab, marks, {MANAGER: ["RequestAddress"], drained: pool + COPY_CREATED + TASK_STARTED}, f"activate {drained}")

        marks = log_marks(lab, hosts)
        lab.docker(MANAGER, "service", "rm", name)
        expect_calls(lab, marks, {MANAGER: ["ReleaseAddress"] * len(workers),
                                  **{worker: TASK_STOPPED + COPY_DELETED for worker in workers}}, "service rm")

        marks = log_marks(lab, hosts)
        lab.docker(MANAGER, "network", "rm", network)
        expect_calls(lab, marks, {MANAGER: NETWORK_FREED}, "network rm")
    finally:
        lab.docker(MANAGER, "node", "update", "--availability", "active", drained, check=False)
        remove(lab, [name], [network])
    assert_nothing_left(lab, network, "100.87.0.", hosts=hosts)


def test_a_nodes_own_packets_reach_another_nodes_task_on_a_swarm_vpc_network(swarm):
    """The node itself (not a container) to a task on another node: its kernel routes the task's address
    by its /32 via that node, out of the bridge's own port; the address is in the swarm range, which the
    vpc pipeline takes from the host to table 50 (this node's containers only), where it was dropped. A
    flow above that sends it out of the uplink, as the kernel routed it. Runs on the nodes that are up."""
    lab, tag = swarm, uuid.uuid4().hex[:4]
    network, name, prefix = f"own-{tag}", f"own-{tag}", "100.88.0."
    hosts = [MANAGER, *ready_workers(lab)]
    try:
        lab.docker(MANAGER, "network", "create", "-d", VPC, "--ipam-driver", IPAM, "--scope", "swarm", "--attachable",
                   "--subnet", "100.88.0.0/24", network)
        service(lab, name, network, "--mode", "global", "--stop-grace-period", "1s")
        running = wait_for_tasks(lab, name, len(hosts), hosts=hosts)
        by_node = {node: address for node, address in running.values()}
        assert set(by_node) == set(hosts), running
        underlay = {host: host_address(int(host[1:])) for host in hosts}
        deadline = time.monotonic() + 30
        for host in hosts:  # the kernel routes each other node's task by its /32 via that node
            wanted = {address: underlay[node] for node, address in by_node.items() if node != host}
            while routes_to(lab, host, prefix) != wanted:
                assert time.monotonic() < deadline, f"{host}: {routes_to(lab, host, prefix)}, not {wanted}"
                time.sleep(1)
        for host in hosts:
            for node, address in by_node.items():
                if node != host:
                    reached = lab.node(host).run(["ping", "-c", "2", "-W", "2", address], check=False)
                    assert reached.returncode == 0, f"{host} itself does not reach {node}'s task {address}:\n{reached.stdout}"
    finally:
        remove(lab, [name], [network])
    assert_nothing_left(lab, network, prefix, hosts=hosts)
