"""The vxlan driver's per-network routers on one host, and the host's NAT for them (I/O only).

Networks may share a subnet, so the host cannot route for them: each network with a gateway gets a
router namespace `acsvx-<vni>` on every host where it has containers (a distributed gateway: the same
address and MAC everywhere, answered locally). The router has two links:

    gw0  <-> vg<vni> on the vxlan bridge   the network's gateway address and MAC
    up0  <-> vr<vni> on the host           a /30 from 169.254.0.0/16 (the "transfer" link)

Outbound (SNAT): the router masquerades to its transfer address and routes to the host, which
masquerades the transfer range to its own address. Inbound (DNAT, `-p HOSTPORT:PORT`): the host
sends HOSTPORT to the router's transfer address, the router to the container's address and port.
Rules are nftables tables written from the desired state (`nft -f`, atomic like a bundle), and only
where they differ from what this process last wrote: `-p` on one network rewrites that network's
router table and its own chain of the host's table (`published_<vni>`), not every router's table and
the host's whole one. Setting a router up forks nothing: netlink, /proc/sys and an ethtool ioctl, in
the namespace through `links.in_namespace`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading

import netaddr
from pyroute2 import IPRoute, NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

from acsnet.errors import DatapathError
from acsnet.ovsctl import links
from acsnet.ovsctl.command import run

TRANSFER = netaddr.IPNetwork("169.254.0.0/16")
HOST_TABLE = "acsnet_vxlan"
ROUTER_TABLE = "acsnet_router"
GATEWAY_LINK, UPLINK_LINK = "gw0", "up0"
PROTOCOLS = {6: "tcp", 17: "udp", 132: "sctp"}
IFA_F_NODAD = 0x02  # linux/if_addr.h


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


def ensure_router(vni: int, gateway: str, prefixlen: int, gateway_mac: str, mtu: int, *, userspace_datapath: bool,
                  gateway6: str | None = None, prefixlen6: int = 64) -> Router:
    """Make the router of a network, or leave the one there (idempotent); returns its transfer addresses.
    A dual-stack network's router holds its IPv6 gateway too (`gateway6`), so that containers reach it;
    it routes no IPv6 beyond the network yet."""
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
            if gateway6:
                # No duplicate address detection: the flows drop its probe, and the IPAM holds the address once.
                ns.addr("add", index=gw, address=gateway6, prefixlen=prefixlen6, flags=IFA_F_NODAD)
            ns.link("set", index=gw, state="up")
            up = ns.link_lookup(ifname=f"vrp{vni}")[0]
            ns.link("set", index=up, ifname=UPLINK_LINK)
            ns.addr("add", index=up, address=router_address, prefixlen=30)
            ns.link("set", index=up, state="up")
            ns.route("add", dst="0.0.0.0/0", gateway=host_address)
    except NetlinkError as e:
        remove_router(vni)
        raise DatapathError(f"cannot make the router of VNI {vni}: {e}") from None
    if userspace_datapath:  # see links.disable_tx_checksum
        links.disable_tx_checksum(gateway_port(vni))
    try:
        links.in_namespace(name, lambda: _configure_inside(userspace_datapath))
    except (OSError, DatapathError) as e:
        remove_router(vni)
        raise DatapathError(f"cannot make the router of VNI {vni}: {e}") from None
    _applied.forget_router(vni)  # a new namespace has no table yet
    return Router(vni, host_address, router_address)


def _configure_inside(userspace_datapath: bool) -> None:
    """In the router's namespace: it forwards, and its gateway end, like the bridge end, leaves no
    checksum for the userspace datapath to finish."""
    links.enable_ipv4_forwarding()
    if userspace_datapath:
        links.disable_tx_checksum(GATEWAY_LINK)


def remove_router(vni: int) -> None:
    with IPRoute() as ipr:
        for link in (gateway_port(vni), transfer_link(vni)):
            found = ipr.link_lookup(ifname=link)
            if found:
                ipr.link("del", index=found[0])
    if namespace(vni) in netns.listnetns():
        netns.remove(namespace(vni))
    _applied.forget_router(vni)


class _AppliedNat:
    """What this process last wrote to each nftables table, per network namespace (the caller's, by
    its inode: a host's and a test's processes each have their own), so that only a difference is
    written. Forgotten when a router's namespace is made or removed; a restarted plugin starts empty
    and writes everything once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.routers: dict[tuple[int, int], tuple[Router, tuple[str, ...]]] = {}
        self.hosts: dict[int, tuple[tuple[str, ...], dict[int, tuple[str, ...]]]] = {}

    def forget_router(self, vni: int) -> None:
        with self.lock:
            self.routers.pop((_namespace_id(), vni), None)


_applied = _AppliedNat()


def _namespace_id() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def apply_router_nat(router: Router, publications: list[Publication]) -> None:
    """The router's table: published ports to their containers, and masquerade to the host. Written
    only if it differs from what this process last wrote there."""
    rules = tuple(f"{p.protocol} dport {p.host_port} dnat to {p.ip}:{p.port}" for p in publications)
    key = (_namespace_id(), router.vni)
    with _applied.lock:
        if _applied.routers.get(key) == (router, rules):
            return
        script = _table(ROUTER_TABLE, {
            "prerouting": ("type nat hook prerouting priority dstnat", [f'iifname "{UPLINK_LINK}" {r}' for r in rules]),
            "postrouting": ("type nat hook postrouting priority srcnat", [f'oifname "{UPLINK_LINK}" masquerade']),
        })
        # nft forked from a thread inside the namespace: one fork, where `ip netns exec` made two
        links.in_namespace(namespace(router.vni), lambda: run(["nft", "-f", "-"], input_text=script, timeout=15))
        _applied.routers[key] = (router, rules)


def published_chain(vni: int) -> str:
    """The host table's chain of one network's published ports (prerouting and output jump to it)."""
    return f"published_{vni}"


def apply_host_nat(host_addresses: list[str], routed: list[tuple[Router, Publication]]) -> None:
    """The host's table: published ports to their routers (from outside and from the host itself),
    one chain per network, and the transfer range masqueraded to the host's own address on the way
    out. What this process wrote before is changed chain by chain: a network whose ports did not
    change is not rewritten."""
    addresses = tuple(host_addresses)
    chains: dict[int, tuple[str, ...]] = {}
    for r, p in routed:
        rule = f"ip daddr {{ {', '.join(addresses)} }} {p.protocol} dport {p.host_port} dnat to {r.router_address}"
        chains.setdefault(r.vni, ())
        if addresses:
            chains[r.vni] += (rule,)
    key = _namespace_id()
    with _applied.lock:
        last = _applied.hosts.get(key)
        if last is None or last[0] != addresses:
            script, written = _host_table(chains), chains
        else:
            script, written = _host_chain_changes(last[1], chains), dict(last[1])
            written.update({vni: chains.get(vni, ()) for vni in set(last[1]) | set(chains)})
        if script:
            run(["nft", "-f", "-"], input_text=script, timeout=15)
        _applied.hosts[key] = (addresses, written)
    links.enable_ipv4_forwarding()  # routers reach the world through the host


def _host_table(chains: dict[int, tuple[str, ...]]) -> str:
    jumps = [f"jump {published_chain(vni)}" for vni in sorted(chains)]
    return _table(HOST_TABLE, {
        "prerouting": ("type nat hook prerouting priority dstnat", jumps),
        "output": ("type nat hook output priority -100", jumps),
        "postrouting": ("type nat hook postrouting priority srcnat", [f'ip saddr {TRANSFER.cidr} oifname != "vr*" masquerade']),
        **{published_chain(vni): (None, list(rules)) for vni, rules in sorted(chains.items())},
    })


def _host_chain_changes(written: dict[int, tuple[str, ...]], chains: dict[int, tuple[str, ...]]) -> str:
    """An nft script (one transaction) that brings the host's chains from `written` to `chains`: a
    new network's chain is added with its jumps; a chain whose rules differ is flushed and refilled; a
    network without published ports keeps an empty chain."""
    lines = []
    for vni in sorted(set(chains) - set(written)):
        chain = published_chain(vni)
        lines += [f"add chain ip {HOST_TABLE} {chain}", f"add rule ip {HOST_TABLE} prerouting jump {chain}",
                  f"add rule ip {HOST_TABLE} output jump {chain}"]
    for vni in sorted(set(chains) | set(written)):
        wanted = chains.get(vni, ())
        if written.get(vni) == wanted:
            continue
        chain = published_chain(vni)
        lines.append(f"flush chain ip {HOST_TABLE} {chain}")
        lines += [f"add rule ip {HOST_TABLE} {chain} {rule}" for rule in wanted]
    return "\n".join(lines) + "\n" if lines else ""


def remove_host_nat() -> None:
    subprocess.run(["nft", "delete", "table", "ip", HOST_TABLE], capture_output=True, timeout=15)
    with _applied.lock:
        _applied.hosts.pop(_namespace_id(), None)


def _table(name: str, chains: dict[str, tuple[str | None, list[str]]]) -> str:
    """An nft script that replaces table `name` whole: declared (so the delete cannot fail), deleted,
    and made again, in one transaction."""
    lines = [f"table ip {name} {{}}", f"delete table ip {name}", f"table ip {name} {{"]
    for chain, (hook, rules) in chains.items():  # hook None: a regular chain, jumped to
        head = [f"    {hook}; policy accept;"] if hook else []
        lines += [f"  chain {chain} {{", *head, *[f"    {r}" for r in rules], "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"
