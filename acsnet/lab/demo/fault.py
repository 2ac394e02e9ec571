"""The demo's fault scenario: a host's vlan plugin SIGKILLed while its containers talk to another host,
then started again. The datapath is OVS's, not the plugin's: traffic goes on, and the restarted plugin
rebuilds the same ports and flows and serves new containers."""

from __future__ import annotations

import json
import re
import signal

from acsnet.lab.demo.steps import DemoRun, check, container_ip, docker, ping_from, remove_scenario, wait_for
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.topology import Lab
from acsnet.ovsctl.vlan_pipeline import COOKIE

PING_LOG = "/tmp/demo-ping.log"  # inside the sending container
PINGS_PER_SECOND = 5


def vlan_datapath(lab: Lab, host: str) -> tuple[list[str], list[str]]:
    """The vlan driver's flows on the host bridge (without counters) and its endpoints' OVS ports (not
    its spares, which a restarted plugin makes anew)."""
    node = lab.node(host)
    flows = node.run(["ovs-ofctl", "--no-stats", "dump-flows", "ovsbr0", f"cookie={COOKIE}/-1"]).stdout.splitlines()
    listed = node.run(["ovs-vsctl", "--format=json", "--columns=name,external_ids", "find", "interface",
                       "external_ids:acsnet-driver=vlan"]).stdout
    ports = [name for name, ids in json.loads(listed)["data"] if "acsnet-endpoint" in dict(ids[1])]
    return sorted(f.strip() for f in flows if "cookie=" in f), sorted(ports)


def fault_scenario(lab: Lab, run: DemoRun) -> None:
    hosts = lab.hosts()[:2]
    victim, peer = hosts[0], hosts[-1]
    plugin = "vlan"
    network, subnet, gateway, vlan = "demo-fault", "203.0.113.0/24", "203.0.113.1", 218
    sender, receiver, newcomer = "demo-fault-a", "demo-fault-b", "demo-fault-c"
    containers: dict[str, list[str]] = {victim: [sender, newcomer]}
    containers.setdefault(peer, []).append(receiver)
    run.begin(f"fault: acsnet serve {plugin} on {victim} SIGKILLed and restarted while {victim} and {peer} talk")
    target: dict[str, str] = {}
    before: dict[str, tuple[list[str], list[str]]] = {}

    def clean():
        if not lab.plugin_pids(victim, plugin):  # a run killed between the kill and the restart
            lab.start_plugin(victim, plugin)
        remove_scenario(lab, containers, [network])

    run.prepare(clean)

    def replies() -> int:
        out = docker(lab, victim, "exec", sender, "cat", PING_LOG, check_ok=False).stdout
        return out.count(" bytes from ")

    def start_traffic():
        for host in containers:
            docker(lab, host, "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", subnet,
                   "--gateway", gateway, "-o", f"VlanId={vlan}", network)
        docker(lab, victim, "run", "-d", "--stop-timeout", "1", "--net", network, "--name", sender, IMAGE, "sleep", "3600")
        docker(lab, peer, "run", "-d", "--stop-timeout", "1", "--net", network, "--name", receiver, IMAGE, "sleep", "3600")
        target["address"] = container_ip(lab, peer, receiver, network)
        check(ping_from(lab, victim, sender, target["address"]), f"{sender} cannot reach {target['address']} before the fault")
        docker(lab, victim, "exec", "-d", sender, "sh", "-c",
               f"exec ping -i {1 / PINGS_PER_SECOND:g} {target['address']} > {PING_LOG} 2>&1")
        wait_for(lambda: replies() >= PINGS_PER_SECOND, 10, "the ping got no replies")
        before["datapath"] = vlan_datapath(lab, victim)
        return f"{sender} on {victim} pings {receiver} ({target['address']}) on {peer}, {PINGS_PER_SECOND} a second"

    def kill_plugin():
        pids = lab.plugin_pids(victim, plugin)
        lab.kill_plugin(victim, plugin, signal.SIGKILL)
        at_kill = replies()
        wait_for(lambda: replies() >= at_kill + 2 * PINGS_PER_SECOND, 10, f"no replies while {plugin} was down")
        check(not lab.plugin_pids(victim, plugin), f"acsnet serve {plugin} is still running")
        return f"pids {', '.join(map(str, pids))} killed; {replies() - at_kill} replies since, with no {plugin} plugin on {victim}"

    def restart_plugin():
        lab.start_plugin(victim, plugin)
        flows, ports = before["datapath"]
        wait_for(lambda: vlan_datapath(lab, victim) == before["datapath"], 15,
                 f"the restarted plugin did not rebuild the same {len(ports)} ports and {len(flows)} flows")
        return f"it answers again, with the same OVS ports ({len(ports)}) and flows ({len(flows)}) as before the kill"

    def traffic_kept_flowing():
        docker(lab, victim, "exec", sender, "sh", "-c", "kill -INT $(pidof ping)")
        wait_for(lambda: "packets received" in docker(lab, victim, "exec", sender, "cat", PING_LOG).stdout, 10,
                 "the ping printed no summary")
        summary = docker(lab, victim, "exec", sender, "cat", PING_LOG).stdout
        sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) packets received", summary).groups())
        # SIGINT may catch one request on its way: that one is not a loss of the fault's.
        check(sent - received <= 1 + sent // 20, f"{sent - received} of {sent} pings lost")
        return f"{received} of {sent} pings answered, over {sent / PINGS_PER_SECOND:.0f}s of kill and restart"

    def serves_new_containers():
        docker(lab, victim, "run", "-d", "--stop-timeout", "1", "--net", network, "--name", newcomer, IMAGE, "sleep", "3600")
        address = container_ip(lab, victim, newcomer, network)
        check(ping_from(lab, victim, newcomer, target["address"]), f"{newcomer} ({address}) cannot reach {target['address']}")
        check(ping_from(lab, peer, receiver, address), f"{receiver} cannot reach {newcomer} ({address})")
        return f"{newcomer} ({address}) on {victim} <-> {receiver} ({target['address']}) on {peer}"

    def remove_everything():
        clean()
        return "containers and networks removed"

    if run.step(f"traffic from {victim} to {peer} over VLAN {vlan}", start_traffic) and \
            run.step(f"SIGKILL acsnet serve {plugin} on {victim}: traffic goes on", kill_plugin):
        if run.step(f"acsnet serve {plugin} started again: same ports and flows", restart_plugin):
            run.step("the ping went on through kill and restart", traffic_kept_flowing)
            run.step("the restarted plugin serves new containers", serves_new_containers)
    run.step("clean up", remove_everything)
