"""What a user would pick instead of acsnet, on the same lab: Docker's own `macvlan` (the peer of vlan)
and `overlay` (the peer of vxlan: the kernel's VXLAN, gossip between the engines). The datapath
benchmark (netperf.py) measures them beside acsnet's drivers, the control-plane one (controlplane.py)
times their `docker run --rm`.

How the lab hosts them:
- macvlan's parent is `ovsbr0`, the bridge's own port that holds the host's address (what a host
  without acsnet has as its NIC). The uplink itself cannot be one: its frames are OVS's alone (host-setup
  drops them for the kernel), and this kernel has no 8021q for a VLAN sub-interface, so the containers
  are on the untagged underlay, 192.0.2.0/24, as macvlan containers usually share their host's subnet.
- overlay needs a cluster: h1 starts a swarm (dockerd 20.10 and 26 alike; the acsnet drivers stay
  local-scope `acsnet serve` processes, which swarm mode leaves alone for local networks) and the other
  hosts join it; the network is attachable, so `docker run` takes it. Its VXLAN port is 7789: OVS's
  userspace tunnel port (acsnet vxlan's `acsvtep`) takes every VXLAN packet on 4789 addressed to the
  host, so on 4789 overlay's packets would end in acsnet's table and be dropped.
- overlay's VXLAN device gets `tx off` where the hosts' OVS takes whole TCP segments, as the kernel
  VXLAN reference path does (README, host setup: OVS 3.1 takes a checksum left to do as the outer one).
"""

from __future__ import annotations

from acsnet.lab.host import LabError
from acsnet.lab.layout import host_address
from acsnet.lab.topology import Lab

DATA_PATH_PORT = "7789"
MACVLAN_PARENT = "ovsbr0"
MACVLAN_SUBNET = ["--subnet", "192.0.2.0/24", "--gateway", "192.0.2.1"]


def macvlan_options(ip_range: str, subnet6: str | None = None) -> list[str]:
    """`docker network create` options of a macvlan network on the lab's underlay, its containers'
    addresses from `ip_range` (out of the lab's own addresses' way); dual-stack with `subnet6`, the
    prefix the hosts' own IPv6 addresses are in (containers then pinned with --ip6)."""
    ipv6 = ["--ipv6", "--subnet", subnet6] if subnet6 else []
    return ["-d", "macvlan", *MACVLAN_SUBNET, "--ip-range", ip_range, *ipv6, "-o", f"parent={MACVLAN_PARENT}"]


def overlay_options(subnet: str) -> list[str]:
    return ["-d", "overlay", "--attachable", "--subnet", subnet]


def _swarm_state(lab: Lab, host: str) -> str:
    return lab.docker(host, "info", "-f", "{{.Swarm.LocalNodeState}}").stdout.strip()


def ensure_swarm(lab: Lab, hosts: tuple[str, ...] = ("h1", "h2")) -> None:
    """The first of `hosts` manages a swarm (made unless there is one), the others are in it."""
    manager = hosts[0]
    if _swarm_state(lab, manager) != "active":
        lab.docker(manager, "swarm", "init", "--advertise-addr", host_address(int(manager[1:])),
                   "--data-path-port", DATA_PATH_PORT)
    token = lab.docker(manager, "swarm", "join-token", "-q", "worker").stdout.strip()
    for host in hosts[1:]:
        if _swarm_state(lab, host) != "active":
            lab.docker(host, "swarm", "join", "--advertise-addr", host_address(int(host[1:])), "--token", token,
                       f"{host_address(int(manager[1:]))}:2377")


def overlay_checksums_in_kernel(lab: Lab, host: str, network: str) -> None:
    """`tx off` on the overlay network's VXLAN device on `host` (it lives in the network's own namespace,
    made when the host's first container joined), where the host's OVS takes whole TCP segments."""
    node = lab.node(host)
    if "tcp-segmentation-offload: on" not in node.run(["ethtool", "-k", MACVLAN_PARENT]).stdout:
        return
    network_id = lab.docker(host, "network", "inspect", "-f", "{{.Id}}", network).stdout.strip()
    enter = ["nsenter", f"--net=/run/docker/netns/1-{network_id[:10]}", "--"]
    links = node.run([*enter, "ip", "-o", "link", "show", "type", "vxlan"]).stdout.splitlines()
    devices = [line.split(":")[1].strip().split("@")[0] for line in links if line.strip()]
    if not devices:
        raise LabError(f"no VXLAN device in overlay network {network}'s namespace on {host}")
    for device in devices:
        node.run([*enter, "ethtool", "-K", device, "tx", "off"])
