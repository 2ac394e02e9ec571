"""The demo's front scenario: `acsnet front` before a host's dockerd, with the stock docker CLI pointed at
it: an address pinned by a container label, and an application's addresses kept while it is away."""

from __future__ import annotations

import json
import os
import sys

from acsnet.lab.demo.steps import DemoRun, StepFailed, check, docker
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.topology import Lab

FRONT = "unix:///run/acsnet/demo-front.sock"  # the host's own /run: a front a user started stays apart
IP_LABEL = "com.docker.network.endpoint.ipv4address"
APP_LABEL = "acsnet.app"


def via_front(lab: Lab, host: str, *args: str):
    """The docker CLI on `host` with DOCKER_HOST pointed at the demo's front."""
    result = lab.node(host).run([lab.docker_cli, *args], check=False, timeout=120, env={**os.environ, "DOCKER_HOST": FRONT})
    if result.returncode != 0:
        raise StepFailed(f"on {host}, through the front: docker {' '.join(args)}: {result.stderr.strip()}")
    return result


def acsnet_ip(lab: Lab, host: str, *args: str):
    """`acsnet ip ... --json` on `host`, against the lab's store."""
    argv = [sys.executable, "-m", "acsnet.cli", "ip", *args, "--json", "--store", lab.zookeeper_url]
    result = lab.node(host).run(argv, check=False)
    if result.returncode != 0:
        raise StepFailed(f"acsnet ip {' '.join(args)}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def front_scenario(lab: Lab, run: DemoRun) -> None:
    """acsnet front: what stock dockerd does not give a plugin, container labels, turned into IPAM config."""
    host = lab.hosts()[0]
    network, subnet, gateway, vlan = "demo-front", "198.51.100.0/24", "198.51.100.1", 217
    pinned, app = "198.51.100.120", "demo-web"
    labelled, replicas = "demo-front-pinned", [f"demo-front-web{n}" for n in range(2)]
    run.begin(f"front: acsnet front before {host}'s dockerd; label {IP_LABEL}, label {APP_LABEL} (IP retention)")
    kept: set[str] = set()

    def addresses(names: list[str]) -> dict[str, str]:
        found = {}
        for name in names:
            info = json.loads(via_front(lab, host, "inspect", name).stdout)[0]
            found[name] = info["NetworkSettings"]["Networks"][network]["IPAddress"]
        return found

    def clean():
        docker(lab, host, "rm", "-f", labelled, *replicas, check_ok=False)
        acsnet_ip(lab, host, "release", "--app", app)  # what a killed run left retained
        docker(lab, host, "network", "rm", network, check_ok=False)
        lab.stop_front(host, FRONT)

    run.prepare(clean)

    def start_front():
        lab.start_front(host, FRONT, "--retention", "600")
        version = via_front(lab, host, "version", "--format", "{{.Server.Version}}").stdout.strip()
        return f"DOCKER_HOST={FRONT}: dockerd {version} answers through it"

    def create_network():
        via_front(lab, host, "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", subnet,
                  "--gateway", gateway, "-o", f"VlanId={vlan}", network)
        return f"{network} (VLAN {vlan}, {subnet}), created through the front"

    def pinned_by_label():
        via_front(lab, host, "run", "-d", "--stop-timeout", "1", "--net", network, "--label", f"{IP_LABEL}={pinned}",
                  "--name", labelled, IMAGE, "sleep", "3600")
        got = addresses([labelled])[labelled]
        check(got == pinned, f"the label asked for {pinned}, the container got {got}")
        return f"{labelled} has {pinned}, from its label alone"

    def start_replicas() -> dict[str, str]:
        for name in replicas:
            via_front(lab, host, "run", "-d", "--stop-timeout", "1", "--net", network, "--label", f"{APP_LABEL}={app}",
                      "--name", name, IMAGE, "sleep", "3600")
        return addresses(replicas)

    def deploy_application():
        given = start_replicas()
        check(len(set(given.values())) == len(replicas), f"an address was given twice: {given}")
        kept.update(given.values())
        listed = {(a["ip"], a["state"]) for a in acsnet_ip(lab, host, "list", "--app", app)}
        check(listed == {(ip, f"in use by {host}") for ip in kept}, f"acsnet ip list --app {app}: {sorted(listed)}")
        return ", ".join(f"{n}={a}" for n, a in given.items()) + f"; acsnet ip list --app {app}: in use by {host}"

    def removed_and_kept():
        via_front(lab, host, "rm", "-f", *replicas)
        listed = acsnet_ip(lab, host, "list", "--app", app)
        check({a["ip"] for a in listed} == kept and all(a["state"].startswith("retained until") for a in listed),
              f"acsnet ip list --app {app}: {listed}")
        return f"{', '.join(sorted(kept))} {listed[0]['state']}"

    def redeployed():
        # Nothing else starts in between: this shows an application getting its own addresses back.
        given = start_replicas()
        check(set(given.values()) == kept, f"redeployed with {sorted(given.values())}, had {sorted(kept)}")
        return ", ".join(f"{n}={a}" for n, a in given.items()) + ": the same addresses"

    def remove_everything():
        clean()
        return f"containers, {app}'s addresses, network and front removed"

    if run.step(f"acsnet front on {host}", start_front) and run.step("a vlan network through the front", create_network):
        run.step(f"--label {IP_LABEL}={pinned} pins the address", pinned_by_label)
        if run.step(f"{len(replicas)} containers of application {app} ({APP_LABEL}={app})", deploy_application) and \
                run.step(f"{app} removed: its addresses are kept for it", removed_and_kept):
            run.step(f"{app} redeployed: it gets its addresses back", redeployed)
    run.step("clean up", remove_everything)
