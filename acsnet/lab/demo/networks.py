"""The demo's network scenarios: the lab itself, the IPAM, and the vlan, vxlan and vpc drivers."""

from __future__ import annotations

import ipaddress
import json
import sys

from acsnet.lab.demo.steps import DemoRun, check, container_ip, docker, ping_from, remove_scenario, wait_for
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.topology import OUTSIDE_ADDRESS, SERVICES_ADDRESS, ZOOKEEPER_PORT, Lab, host_address


def underlay_scenario(lab: Lab, run: DemoRun) -> None:
    run.begin("lab: hosts, switch and services")
    hosts = lab.hosts()

    def ping_between_hosts():
        for i, host in enumerate(hosts, start=1):
            for j in range(1, len(hosts) + 1):
                if i != j:
                    lab.node(host).run(["ping", "-c", "1", "-W", "2", host_address(j)])
        return f"{len(hosts)} hosts reach each other over the switch"

    def reach_services():
        for host in hosts:
            lab.node(host).run(["ping", "-c", "1", "-W", "2", OUTSIDE_ADDRESS])
            lab.node(host).run(["ping", "-c", "1", "-W", "2", SERVICES_ADDRESS])
        return f"ZooKeeper at {SERVICES_ADDRESS}:{ZOOKEEPER_PORT}, outside host at {OUTSIDE_ADDRESS}"

    def plugins_running():
        # A demo killed in its fault scenario leaves a plugin down; every scenario after needs it.
        started = []
        for host in hosts:
            for plugin in lab.plugins():
                if not lab.plugin_pids(host, plugin):
                    lab.start_plugin(host, plugin)
                    started.append(f"{plugin} on {host}")
        running = f"{', '.join(lab.plugins())} on {', '.join(hosts)}"
        return running + (f" (started again: {', '.join(started)})" if started else "")

    run.step("every host reaches every other host", ping_between_hosts)
    run.step("every host reaches the services node and the outside host", reach_services)
    run.step("every host runs its acsnet plugins", plugins_running)


def ipam_scenario(lab: Lab, run: DemoRun) -> None:
    """The acsnet IPAM under Docker's bridge driver: one pool shared by every host through ZooKeeper."""
    run.begin("ipam: addresses from one ZooKeeper-backed pool on every host")
    hosts = lab.hosts()[:2]
    network, subnet, pinned = "demo-ipam", "100.96.0.0/24", "100.96.0.100"
    names = {host: [f"demo-{host}-{n}" for n in range(2)] for host in hosts}

    def clean():
        remove_scenario(lab, {host: [*names[host], f"demo-{host}-pinned"] for host in hosts}, [network])

    run.prepare(clean)

    def create_networks():
        for host in hosts:
            docker(lab, host, "network", "create", "-d", "bridge", "--ipam-driver", "acsnet", "--subnet", subnet, network)
        return f"{network} ({subnet}) on {', '.join(hosts)}"

    def distinct_addresses():
        seen = {}
        for host in hosts:
            for name in names[host]:
                docker(lab, host, "run", "-d", "--stop-timeout", "1", "--net", network, "--name", name, IMAGE, "sleep", "3600")
                seen[name] = container_ip(lab, host, name, network)
        check(len(set(seen.values())) == len(seen), f"an address was given twice: {seen}")
        return ", ".join(f"{n}={a}" for n, a in seen.items())

    def pin_on_first():
        host = hosts[0]
        docker(lab, host, "run", "-d", "--stop-timeout", "1", "--net", network, "--ip", pinned, "--name", f"demo-{host}-pinned",
               IMAGE, "sleep", "3600")
        got = container_ip(lab, host, f"demo-{host}-pinned", network)
        check(got == pinned, f"got {got}")
        return f"{host} holds {pinned}"

    def refused_on_second():
        host = hosts[-1]
        result = docker(lab, host, "run", "-d", "--net", network, "--ip", pinned, "--name", f"demo-{host}-pinned",
                        IMAGE, "sleep", "3600", check_ok=False)
        docker(lab, host, "rm", "-f", f"demo-{host}-pinned", check_ok=False)
        check(result.returncode != 0, "the second host got an address the first one holds")
        expected = f"address {pinned} is in use by an endpoint on host {hosts[0]}"
        check(expected in result.stderr, f"unclear error: {result.stderr.strip()}")
        return f"refused: {expected}"

    def moves_after_release():
        docker(lab, hosts[0], "rm", "-f", f"demo-{hosts[0]}-pinned")
        host = hosts[-1]
        docker(lab, host, "run", "-d", "--stop-timeout", "1", "--net", network, "--ip", pinned, "--name", f"demo-{host}-pinned",
               IMAGE, "sleep", "3600")
        check(container_ip(lab, host, f"demo-{host}-pinned", network) == pinned, "the released address was not given")
        return f"{pinned} now on {host}"

    def remove_everything():
        clean()
        return "containers and networks removed"

    ok = run.step("the same network is created on every host (one shared pool)", create_networks)
    if ok and run.step("containers on every host get distinct addresses", distinct_addresses):
        if run.step(f"--ip {pinned} on {hosts[0]}", pin_on_first) and len(hosts) > 1:
            run.step(f"the same --ip on {hosts[-1]} is refused, naming the holder", refused_on_second)
            run.step(f"after {hosts[0]} releases it, {hosts[-1]} gets it", moves_after_release)
    run.step("clean up", remove_everything)


def vlan_scenario(lab: Lab, run: DemoRun) -> None:
    """vlan-1.1: containers on the data center's VLANs, ARP answered by the hosts, one MAC per host."""
    run.begin("vlan: VLAN 217 and 218 across hosts, pinned IPs, isolation")
    hosts = lab.hosts()[:2]
    first, last = hosts[0], hosts[-1]
    nets = {"demo-vlan217": ("198.51.100.0/24", "198.51.100.1", 217), "demo-vlan218": ("203.0.113.0/24", "203.0.113.1", 218)}
    pinned = "198.51.100.110"
    containers = {first: ["demo-v217-a", "demo-v218-a"], last: ["demo-v217-b"]}

    def clean():
        remove_scenario(lab, containers, list(nets))

    run.prepare(clean)

    def create_networks():
        for host in hosts:
            for name, (subnet, gateway, vlan) in nets.items():
                docker(lab, host, "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", subnet,
                       "--gateway", gateway, "-o", f"VlanId={vlan}", name)
        return ", ".join(f"{n} (VLAN {v[2]}, {v[0]})" for n, v in nets.items())

    def start_containers():
        docker(lab, first, "run", "-d", "--stop-timeout", "1", "--net", "demo-vlan217", "--name", "demo-v217-a", IMAGE, "sleep", "3600")
        docker(lab, last, "run", "-d", "--stop-timeout", "1", "--net", "demo-vlan217", "--ip", pinned, "--name", "demo-v217-b",
               IMAGE, "sleep", "3600")
        docker(lab, first, "run", "-d", "--stop-timeout", "1", "--net", "demo-vlan218", "--name", "demo-v218-a", IMAGE, "sleep", "3600")
        got = container_ip(lab, last, "demo-v217-b", "demo-vlan217")
        check(got == pinned, f"--ip {pinned} gave {got}")
        return f"demo-v217-a on {first}, demo-v217-b on {last} with --ip {pinned}, demo-v218-a on {first}"

    def across_hosts():
        a = container_ip(lab, first, "demo-v217-a", "demo-vlan217")
        check(ping_from(lab, first, "demo-v217-a", pinned), f"{a} on {first} cannot reach {pinned} on {last}")
        check(ping_from(lab, last, "demo-v217-b", a), f"{pinned} on {last} cannot reach {a} on {first}")
        return f"{a} <-> {pinned}"

    def gateways():
        check(ping_from(lab, first, "demo-v217-a", "198.51.100.1"), "VLAN 217's gateway is unreachable")
        check(ping_from(lab, first, "demo-v218-a", "203.0.113.1"), "VLAN 218's gateway is unreachable")
        return "198.51.100.1 and 203.0.113.1 answer (their MACs learned by the hosts)"

    def isolated():
        check(not ping_from(lab, first, "demo-v218-a", pinned, wait=2), "VLAN 218 reached VLAN 217")
        return "VLAN 218 cannot reach VLAN 217"

    def remove_everything():
        clean()
        return "containers and networks removed"

    if run.step("VLAN networks on every host", create_networks) and run.step("containers on two hosts", start_containers):
        run.step("same VLAN talks across hosts", across_hosts)
        run.step("containers reach their gateways", gateways)
        run.step("different VLANs are isolated", isolated)
    run.step("clean up", remove_everything)


def vxlan_scenario(lab: Lab, run: DemoRun) -> None:
    """vxlan: two networks with one subnet across hosts, isolated; a published port and SNAT."""
    run.begin("vxlan: VNI 110 and 120 with the same subnet across hosts, -p 8080:80, SNAT")
    hosts = lab.hosts()[:2]
    first, last = hosts[0], hosts[-1]
    nets = {"demo-vxlan110": 110, "demo-vxlan120": 120}
    containers = {first: ["demo-n1-1", "demo-web"], last: ["demo-n1-2", "demo-n2-1"]}
    web = "mkdir /www && echo demo-web > /www/index.html && exec httpd -f -p 80 -h /www"

    def clean():
        remove_scenario(lab, containers, list(nets))

    run.prepare(clean)

    def create_networks():
        for host in hosts:
            for name, vni in nets.items():
                docker(lab, host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet",
                       "100.64.1.0/24", "--ipam-opt", f"vni={vni}", "-o", f"VxlanId={vni}", name)
        return "demo-vxlan110 and demo-vxlan120, both 100.64.1.0/24"

    def start_containers():
        for host, name, net, ip in ((first, "demo-n1-1", "demo-vxlan110", "100.64.1.10"),
                                    (last, "demo-n1-2", "demo-vxlan110", "100.64.1.11"),
                                    (last, "demo-n2-1", "demo-vxlan120", "100.64.1.10")):
            docker(lab, host, "run", "-d", "--stop-timeout", "1", "--net", net, "--ip", ip, "--name", name, IMAGE, "sleep", "3600")
        docker(lab, first, "run", "-d", "--stop-timeout", "1", "--net", "demo-vxlan110", "-p", "8080:80", "--name", "demo-web",
               IMAGE, "sh", "-c", web)
        return f"n1-1 (.10) on {first}, n1-2 (.11) and n2-1 (.10, other network) on {last}, demo-web -p 8080:80 on {first}"

    def across_hosts():
        check(ping_from(lab, first, "demo-n1-1", "100.64.1.11"), "n1-1 cannot reach n1-2 across hosts")
        return "100.64.1.10 on h1 <-> 100.64.1.11 on h2 over VXLAN"

    def through_relay():
        relay = lab.state()["relay"]
        for host in hosts:
            status = lab.node(host).run([sys.executable, "-m", "acsnet.cli", "status", "--json", "--store",
                                         lab.zookeeper_url, "--host-id", host], check=False).stdout
            vxlan = json.loads(status)["plugins"]["vxlan"]
            check(vxlan.get("healthy") and vxlan.get("relay") == relay,
                  f"{host}'s vxlan plugin follows through {vxlan.get('relay')!r}, not the relay {relay}")
        return f"{' and '.join(hosts)} follow VNI 110's records and the live hosts through the relay on svc ({relay})"

    def isolated():
        check(not ping_from(lab, last, "demo-n2-1", "100.64.1.11", wait=2), "VNI 120 reached VNI 110")
        return "n2-1 (VNI 120) cannot reach 100.64.1.11 of VNI 110"

    def published():
        address = host_address(hosts.index(first) + 1)
        script = f"import urllib.request; print(urllib.request.urlopen('http://{address}:8080/', timeout=5).read().decode())"
        got = lab.node("out").run([sys.executable, "-c", script], check=False).stdout.strip()
        check(got == "demo-web", f"http://{address}:8080/ from the outside host gave {got!r}")
        return f"the outside host gets demo-web at http://{address}:8080/"

    def snat():
        result = docker(lab, first, "exec", "demo-n1-1", "ping", "-c", "1", "-W", "2", OUTSIDE_ADDRESS, check_ok=False)
        check(result.returncode == 0, f"n1-1 cannot reach the outside host {OUTSIDE_ADDRESS}")
        return f"n1-1 reaches {OUTSIDE_ADDRESS} through its host's address"

    if run.step("VXLAN networks on every host", create_networks) and run.step("containers on two hosts", start_containers):
        run.step("same network talks across hosts", across_hosts)
        if (lab.state() or {}).get("relay"):
            run.step("the hosts follow the networks through the store relay", through_relay)
        run.step("same subnet, other network: isolated", isolated)
        run.step("a published port answers from outside", published)
        run.step("containers reach outside (SNAT)", snat)
    run.step("clean up", lambda: (clean(), "containers and networks removed")[1])


def host_address_in(lab: Lab, host: str, subnet: str) -> ipaddress.IPv4Interface | None:
    """The host's own address in `subnet` (on its bridge's own port), with the prefix of its slice."""
    out = lab.node(host).run(["ip", "-4", "-j", "addr", "show", "ovsbr0"]).stdout
    network = ipaddress.ip_network(subnet)
    for entry in json.loads(out or "[]"):
        for info in entry.get("addr_info", []):
            interface = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            if interface.ip in network:
                return interface
    return None


def vpc_routes(lab: Lab, host: str) -> dict[str, str]:
    """The routes the vpc driver put on a host (protocol 172): peer subnet -> peer's underlay address."""
    out = lab.node(host).run(["ip", "-4", "-j", "route", "show", "proto", "172"]).stdout
    return {route["dst"]: route.get("gateway", "") for route in json.loads(out or "[]")}


def vpc_scenario(lab: Lab, run: DemoRun) -> None:
    """vpc: each host owns a slice of the network and is its containers' gateway; hosts route each
    other's slices over the underlay, without a tunnel."""
    network, subnet = "demo-vpc", "100.80.0.0/16"
    run.begin(f"vpc: {subnet} in a /24 per host, the host as gateway, routed host to host without a tunnel")
    hosts = lab.hosts()[:2]
    containers = {host: [f"demo-vpc-{host}"] for host in hosts}
    slices: dict[str, ipaddress.IPv4Interface] = {}
    addresses: dict[str, str] = {}

    def clean():
        remove_scenario(lab, containers, [network])

    run.prepare(clean)

    def create_networks():
        for host in hosts:
            docker(lab, host, "network", "create", "-d", "vpc", "--ipam-driver", "acsnet", "--subnet", subnet,
                   "-o", "host_subnet_size=24", network)
        for host in hosts:
            wait_for(lambda: host_address_in(lab, host, subnet) is not None, 10, f"{host} has no address in {subnet}")
            slices[host] = host_address_in(lab, host, subnet)
        check(len({s.network for s in slices.values()}) == len(hosts), f"two hosts share a subnet: {slices}")
        return ", ".join(f"{host} owns {s.network} and is {s.ip} in it" for host, s in slices.items())

    def start_containers():
        for host in hosts:
            name = containers[host][0]
            docker(lab, host, "run", "-d", "--stop-timeout", "1", "--net", network, "--name", name, IMAGE, "sleep", "3600")
            settings = json.loads(docker(lab, host, "inspect", name).stdout)[0]["NetworkSettings"]["Networks"][network]
            address, gateway = settings["IPAddress"], settings["Gateway"]
            check(ipaddress.ip_address(address) in slices[host].network,
                  f"{name} on {host} got {address}, outside its host's {slices[host].network}")
            check(gateway == str(slices[host].ip), f"{name}'s gateway is {gateway}, not its host's {slices[host].ip}")
            addresses[host] = address
        return ", ".join(f"{containers[h][0]}={addresses[h]}/{slices[h].network.prefixlen} via {slices[h].ip} ({h})"
                         for h in hosts)

    def gateway_is_the_host():
        for host in hosts:
            check(ping_from(lab, host, containers[host][0], str(slices[host].ip)), f"{host}'s containers cannot reach it")
        return "each container reaches its host, its gateway"

    def routed_by_the_hosts():
        wanted = {host: {str(slices[peer].network): host_address(lab.hosts().index(peer) + 1) for peer in hosts if peer != host}
                  for host in hosts}
        for host in hosts:
            wait_for(lambda: vpc_routes(lab, host) == wanted[host], 10,
                     f"{host}'s routes are {vpc_routes(lab, host)}, not {wanted[host]}")
        return "; ".join(f"{h}: " + ", ".join(f"{dst} via {via}" for dst, via in wanted[h].items()) for h in hosts)

    def across_hosts():
        first, last = hosts
        check(ping_from(lab, first, containers[first][0], addresses[last]), f"{addresses[first]} cannot reach {addresses[last]}")
        check(ping_from(lab, last, containers[last][0], addresses[first]), f"{addresses[last]} cannot reach {addresses[first]}")
        return f"{addresses[first]} on {first} <-> {addresses[last]} on {last}"

    if run.step("the vpc network on every host: each host claims a subnet", create_networks) and \
            run.step("containers take addresses of their host's subnet, the host as gateway", start_containers):
        run.step("containers reach their gateway, the host", gateway_is_the_host)
        if len(hosts) > 1:
            run.step("each host routes the other's subnet to its underlay address", routed_by_the_hosts)
            run.step("containers talk across hosts", across_hosts)
    run.step("clean up", lambda: (clean(), "containers and networks removed")[1])
