"""The demo's swarm scenario, on a lab brought up with `--plugins managed --swarm`: a swarm-scope acsnet
network, a service whose tasks land on every node and reach each other across hosts, then nothing left."""

from __future__ import annotations

import json
import time

from acsnet.lab.demo.steps import DemoRun, check, docker, ping_from, wait_for
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.topology import Lab
from acsnet.managed_plugins import PLUGINS

NETWORK, SERVICE, SUBNET = "demo-web", "demo-web", "100.86.0.0/24"


def _tasks(lab: Lab) -> dict[str, tuple[str, str]]:
    found = {}
    for host in lab.hosts():
        names = docker(lab, host, "ps", "--filter", f"label=com.docker.swarm.service.name={SERVICE}",
                       "--format", "{{.Names}}").stdout.split()
        for name in names:
            networks = json.loads(docker(lab, host, "inspect", name).stdout)[0]["NetworkSettings"]["Networks"]
            if NETWORK in networks and networks[NETWORK]["IPAddress"]:
                found[name] = (host, networks[NETWORK]["IPAddress"])
    return found


def swarm_scenario(lab: Lab, run: DemoRun) -> None:
    manager = lab.hosts()[0]
    replicas = 2 * len(lab.hosts())
    run.begin(f"swarm: a service on an acsnet vxlan network, {manager} the manager")

    def clean():
        docker(lab, manager, "service", "rm", SERVICE, check_ok=False)
        deadline = time.monotonic() + 60
        while docker(lab, manager, "network", "rm", NETWORK, check_ok=False).returncode != 0:
            if NETWORK not in docker(lab, manager, "network", "ls", "--format", "{{.Name}}").stdout.split():
                break
            if time.monotonic() > deadline:
                break
            time.sleep(1)

    run.prepare(clean)

    def create_network():
        docker(lab, manager, "network", "create", "-d", PLUGINS["vxlan"].reference, "--ipam-driver",
               PLUGINS["ipam"].reference, "--scope", "swarm", "--attachable", "--subnet", SUBNET, "-o", "VxlanId=860",
               NETWORK)
        return f"docker network create -d {PLUGINS['vxlan'].reference} --scope swarm --subnet {SUBNET} -o VxlanId=860"

    def create_service():
        docker(lab, manager, "service", "create", "--detach", "--name", SERVICE, "--network", NETWORK, "--replicas",
               str(replicas), "--endpoint-mode", "dnsrr", IMAGE, "httpd", "-f", "-p", "80")
        wait_for(lambda: len(_tasks(lab)) == replicas, 120, f"{replicas} tasks running")
        tasks = _tasks(lab)
        nodes = sorted({node for node, _ in tasks.values()})
        addresses = sorted(address for _, address in tasks.values())
        check(len(set(addresses)) == replicas, f"an address handed out twice: {addresses}")
        check(nodes == sorted(lab.hosts()), f"tasks only on {nodes}")
        return f"{replicas} tasks on {', '.join(nodes)}: {', '.join(addresses)}"

    def across_hosts():
        by_node = {node: (name, address) for name, (node, address) in _tasks(lab).items()}
        hosts = lab.hosts()
        for host, peer in zip(hosts, hosts[1:] + hosts[:1]):
            check(ping_from(lab, host, by_node[host][0], by_node[peer][1]),
                  f"the task on {host} does not reach {by_node[peer][1]} on {peer}")
        return "each node's task reaches the next node's (VXLAN tunnels between the hosts)"

    def remove():
        clean()

        def left() -> list[str]:
            return [h for h in lab.hosts() if NETWORK in docker(lab, h, "network", "ls", "--format", "{{.Name}}").stdout.split()]

        # The manager forgets the network at once; each node removes it when its last task is gone.
        wait_for(lambda: not left(), 60, "the network removed on every node")
        return "service and network removed on every node"

    if run.step("a swarm-scope vxlan network, validated and allocated by the manager", create_network):
        if run.step(f"a service of {replicas} tasks (endpoint mode dnsrr) spread over every node", create_service):
            run.step("tasks reach each other across hosts", across_hosts)
        run.step("docker service rm, docker network rm", remove)
