"""The vxlan driver's per-network routers on one host, and the host's NAT for them (I/O only).

Networks may share a subnet, so the host cannot route for them: each network with a gateway gets a
router namespace `acsvx-<vni>` on every host where it has containers (a distributed gateway: the same
address and MAC everywhere, answered locally). The router has two links:

    gw0  <-> vg<vni> on the vxlan bridge   the network's gateway address and MAC
    up0  <-> vr<vni> on the host           a /30 from 169.254.0.0/16 (the "transfer" link)

Outbound (SNAT): the router masquerades to its transfer address and routes to the host, which
masquerades the transfer range to its own address. Inbound (DNAT, `-p HOSTPORT:PORT`): the host
sends HOSTPORT to the router's transfer address, the router to the container's address and port.
Rules are nftables tables rebuilt whole from the desired state (`nft -f`, atomic like a bundle).
"""

from __future__ import annotations

import dataclasses
import subprocess

import netaddr
from pyroute2 import IPRoute, NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

from acsnet.errors import DatapathError
from acsnet.ovsctl.command import run

TRANSFER = netaddr.IPNetwork("169.254.0.0/16")
HOST_TABLE = "acsnet_vxlan"
ROUTER_TABLE = "acsnet_router"
GATEWAY_LINK, UPLINK_LINK = "gw0", "up0"
PROTOCOLS = {6: "tcp", 17: "udp", 132: "sctp"}


def namespace(vni: int) -> str:
    return f"acsvx-{vni}"


def gateway_port(vni: int) -> str:
    """The router's port on the vxlan bridge."""
    return f"vg{vni}"


def transfer_link(vni: int) -> str:
    return f"vr{vni}"


@dataclasses.dataclass(frozen=True)
class Publication:
    """One published port: HOSTPORT on the host's address to PORT of a container."""

    proto: int
    host_port: int
    ip: str
    port: int

    @property
    def protocol(self) -> str:
        return PROTOCOLS[self.proto]


@dataclasses.dataclass(frozen=True)
class Router:
    vni: int
    host_address: str  # host side of the transfer link
    router_address: str


def _transfer_pair(index: int) -> tuple[str, str]:
    base = TRANSFER.first + 4 * index
    return str(netaddr.IPAddress(base + 1)), str(netaddr.IPAddress(base + 2))


def routers() -> dict[int, Router]:
    """The routers on this host, found by their transfer links."""
    found = {}
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get("IFLA_IFNAME") or ""
            if not (name.startswith("vr") and name[2:].isdigit()):
                continue
            for address in ipr.get_addr(index=link["index"], family=2):
                ip = netaddr.IPAddress(address.get("IFA_ADDRESS"))
                if ip in TRANSFER:
                    vni = int(name[2:])
                    found[vni] = Router(vni, str(ip), str(ip + 1))
    return found


def _in_namespace(name: str, argv: list[str], input_text: str | None = None) -> str:
    return run(["ip", "netns", "exec", name, *argv], input_text=input_text, timeout=15)


def ensure_router(vni: int, gateway: str, prefixlen: int, gateway_mac: str, mtu: int, *, userspace_datapath: bool) -> Router:
    """Make the router of a network, or leave the one there (idempotent); returns its transfer addresses."""
    existing = routers()
    name = namespace(vni)
    if vni in existing and name in netns.listnetns():
        return existing[vni]
    remove_router(vni)  # a half-made one from a crash
    taken = {int((netaddr.IPAddress(r.host_address).value - TRANSFER.first) // 4) for r in existing.values()}
    index = next(i for i in range(TRANSFER.size // 4) if i not in taken)
    host_address, router_address = _transfer_pair(index)
    netns.create(name)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=gateway_port(vni), kind="veth", mtu=mtu, peer={"ifname": f"vgp{vni}", "mtu": mtu})
            ipr.link("add", ifname=transfer_link(vni), kind="veth", peer={"ifname": f"vrp{vni}"})
            for host_end, router_end in ((gateway_port(vni), f"vgp{vni}"), (transfer_link(vni), f"vrp{vni}")):
                ipr.link("set", index=ipr.link_lookup(ifname=router_end)[0], net_ns_fd=name)
                ipr.link("set", index=ipr.link_lookup(ifname=host_end)[0], state="up")
            ipr.addr("add", index=ipr.link_lookup(ifname=transfer_link(vni))[0], address=host_address, prefixlen=30)
        with NetNS(name) as ns:
            lo = ns.link_lookup(ifname="lo")[0]
            ns.link("set", index=lo, state="up")
            gw = ns.link_lookup(ifname=f"vgp{vni}")[0]
            ns.link("set", index=gw, ifname=GATEWAY_LINK, address=gateway_mac)
            ns.addr("add", index=gw, address=gateway, prefixlen=prefixlen)
            ns.link("set", index=gw, state="up")
            up = ns.link_lookup(ifname=f"vrp{vni}")[0]
            ns.link("set", index=up, ifname=UPLINK_LINK)
            ns.addr("add", index=up, address=router_address, prefixlen=30)
            ns.link("set", index=up, state="up")
            ns.route("add", dst="0.0.0.0/0", gateway=host_address)
    except NetlinkError as e:
        remove_router(vni)
        raise DatapathError(f"cannot make the router of VNI {vni}: {e}") from None
    _in_namespace(name, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    if userspace_datapath:  # see links.disable_tx_checksum
        run(["ethtool", "-K", gateway_port(vni), "tx", "off"])
        _in_namespace(name, ["ethtool", "-K", GATEWAY_LINK, "tx", "off"])
    return Router(vni, host_address, router_address)


def remove_router(vni: int) -> None:
    with IPRoute() as ipr:
        for link in (gateway_port(vni), transfer_link(vni)):
            found = ipr.link_lookup(ifname=link)
            if found:
                ipr.link("del", index=found[0])
    if namespace(vni) in netns.listnetns():
        netns.remove(namespace(vni))


def apply_router_nat(router: Router, publications: list[Publication]) -> None:
    rules = [f"{p.protocol} dport {p.host_port} dnat to {p.ip}:{p.port}" for p in publications]
    _in_namespace(namespace(router.vni), ["nft", "-f", "-"], input_text=_table(ROUTER_TABLE, {
        "prerouting": ("type nat hook prerouting priority dstnat", [f'iifname "{UPLINK_LINK}" {r}' for r in rules]),
        "postrouting": ("type nat hook postrouting priority srcnat", [f'oifname "{UPLINK_LINK}" masquerade']),
    }))


def apply_host_nat(host_addresses: list[str], routed: list[tuple[Router, Publication]]) -> None:
    """The host's table: published ports to their routers (from outside and from the host itself),
    and the transfer range masqueraded to the host's own address on the way out."""
    dnat = [f"ip daddr {{ {', '.join(host_addresses)} }} {p.protocol} dport {p.host_port} dnat to {r.router_address}"
            for r, p in routed] if host_addresses else []
    script = _table(HOST_TABLE, {
        "prerouting": ("type nat hook prerouting priority dstnat", dnat),
        "output": ("type nat hook output priority -100", dnat),
        "postrouting": ("type nat hook postrouting priority srcnat",
                        [f'ip saddr {TRANSFER.cidr} oifname != "vr*" masquerade']),
    })
    run(["nft", "-f", "-"], input_text=script, timeout=15)
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:  # routers reach the world through the host
        f.write("1")


def remove_host_nat() -> None:
    subprocess.run(["nft", "delete", "table", "ip", HOST_TABLE], capture_output=True, timeout=15)


def _table(name: str, chains: dict[str, tuple[str, list[str]]]) -> str:
    """An nft script that replaces table `name` whole: declared (so the delete cannot fail), deleted,
    and made again, in one transaction."""
    lines = [f"table ip {name} {{}}", f"delete table ip {name}", f"table ip {name} {{"]
    for chain, (hook, rules) in chains.items():
        lines += [f"  chain {chain} {{", f"    {hook}; policy accept;", *[f"    {r}" for r in rules], "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"
