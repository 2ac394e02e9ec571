"""The vxlan driver's per-network routers on one host, and the host's NAT for them (I/O only).

Networks may share a subnet, so the host cannot route for them: each network with a gateway gets a
router namespace `acsvx-<vni>` on every host where it has containers (a distributed gateway: the same
address and MAC everywhere, answered locally). The router has two links:

    gw0  <-> vg<vni> on the vxlan bridge   the network's gateway address and MAC
    up0  <-> vr<vni> on the host           a /30 from 169.254.0.0/16 (the "transfer" link)

Outbound (SNAT): the router masquerades to its transfer address and routes to the host, which
masquerades the transfer range to its own address. Inbound (DNAT, `-p HOSTPORT:PORT`): the host
sends HOSTPORT to the router's transfer address, the router to the container's address and port.
A dual-stack network's router does the same for IPv6: its transfer link has IPv6 twins of the
/30's addresses in TRANSFER6 (a /126), and `ip6` tables beside the `ip` ones masquerade to the
host's IPv6 address on the way out and send `-p [HOST_IPV6]:HOSTPORT:PORT` in.
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
# The IPv6 twins of the transfer addresses: a unique local /96 whose last 32 bits are the IPv4
# transfer address (169.254.0.2 -> fdac:5e7:a9fe::a9fe:2), so each follows from its router's /30.
TRANSFER6 = netaddr.IPNetwork("fdac:5e7:a9fe::/96")
LOOPBACK = netaddr.IPNetwork("127.0.0.0/8")
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
    """One published port: HOSTPORT on the host's address to PORT of a container. `host_ip` is the
    host address asked for (`-p HOST_IP:HOSTPORT:PORT`): "" (none asked) publishes on the host's IPv4
    address and, for a container with an IPv6 address (`ip6`), on the host's IPv6 ones; 0.0.0.0 or ::
    on that family's only; any other on that address alone."""

    proto: int
    host_port: int
    ip: str
    port: int
    host_ip: str = ""
    ip6: str = ""

    @property
    def protocol(self) -> str:
        return PROTOCOLS[self.proto]

    @property
    def ipv4(self) -> bool:
        return self.host_ip == "" or ":" not in self.host_ip

    @property
    def ipv6(self) -> bool:
        return bool(self.ip6) and (self.host_ip == "" or ":" in self.host_ip)

    def host_addresses(self, family: str, defaults: tuple[str, ...]) -> tuple[str, ...]:
        """The host addresses of `family` ("ip" or "ip6") it is published on: `defaults` unless one was asked."""
        if self.host_ip in ("", "0.0.0.0", "::"):
            return defaults
        return (self.host_ip,)


@dataclasses.dataclass(frozen=True)
class Router:
    vni: int
    host_address: str  # host side of the transfer link
    router_address: str
    ipv6: bool = False  # its transfer link has the IPv6 twins (a dual-stack network's)

    @property
    def host_address6(self) -> str:
        return str(_twin6(self.host_address))

    @property
    def router_address6(self) -> str:
        return str(_twin6(self.router_address))


def _twin6(address: str) -> netaddr.IPAddress:
    return netaddr.IPAddress(TRANSFER6.first + netaddr.IPAddress(address).value)


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
            ipv6 = any(netaddr.IPAddress(a.get("IFA_ADDRESS")) in TRANSFER6 for a in ipr.get_addr(index=link["index"], family=10))
            for address in ipr.get_addr(index=link["index"], family=2):
                ip = netaddr.IPAddress(address.get("IFA_ADDRESS"))
                if ip in TRANSFER:
                    vni = int(name[2:])
                    found[vni] = Router(vni, str(ip), str(ip + 1), ipv6)
    return found


def host_ipv6_addresses() -> tuple[str, ...]:
    """The host's global IPv6 addresses that ports may be published on and containers masqueraded to:
    not the routers' transfer addresses."""
    return tuple(sorted(a for a in links.global_ipv6_addresses() if netaddr.IPAddress(a) not in TRANSFER6))


def ensure_router(vni: int, gateway: str, prefixlen: int, gateway_mac: str, mtu: int, *, userspace_datapath: bool,
                  gateway6: str | None = None, prefixlen6: int = 64) -> Router:
    """Make the router of a network, or leave the one there (idempotent); returns its transfer addresses.
    A dual-stack network's router holds its IPv6 gateway too (`gateway6`) and routes IPv6 to the
    host over the transfer link's IPv6 twins; one made without them (by an older plugin) is made again."""
    existing = routers()
    name = namespace(vni)
    if vni in existing and name in netns.listnetns() and existing[vni].ipv6 == bool(gateway6):
        links.enable_route_localnet(transfer_link(vni))  # one made by a plugin from before -p 127.0.0.1 was honoured
        return existing[vni]
    remove_router(vni)  # a half-made one from a crash
    taken = {int((netaddr.IPAddress(r.host_address).value - TRANSFER.first) // 4) for r in existing.values() if r.vni != vni}
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
            if gateway6:
                ipr.addr("add", index=ipr.link_lookup(ifname=transfer_link(vni))[0], address=str(_twin6(host_address)),
                         prefixlen=126, flags=IFA_F_NODAD)
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
            if gateway6:
                ns.addr("add", index=up, address=str(_twin6(router_address)), prefixlen=126, flags=IFA_F_NODAD)
                ns.route("add", dst="::/0", gateway=str(_twin6(host_address)), family=10)
    except NetlinkError as e:
        remove_router(vni)
        raise DatapathError(f"cannot make the router of VNI {vni}: {e}") from None
    if userspace_datapath:  # see links.disable_tx_checksum
        links.disable_tx_checksum(gateway_port(vni))
    # A port published on 127.0.0.1 is sent from the host itself with that source to the router (and
    # masqueraded on its way out: `_host_table`).
    links.enable_route_localnet(transfer_link(vni))
    try:
        links.in_namespace(name, lambda: _configure_inside(userspace_datapath, ipv6=bool(gateway6)))
    except (OSError, DatapathError) as e:
        remove_router(vni)
        raise DatapathError(f"cannot make the router of VNI {vni}: {e}") from None
    _applied.forget_router(vni)  # a new namespace has no table yet
    return Router(vni, host_address, router_address, bool(gateway6))


def _configure_inside(userspace_datapath: bool, *, ipv6: bool) -> None:
    """In the router's namespace: it forwards, and its gateway end, like the bridge end, leaves no
    checksum for the userspace datapath to finish."""
    links.enable_ipv4_forwarding()
    if ipv6:
        links.enable_ipv6_forwarding()
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
        self.hosts: dict[tuple[int, str], tuple[tuple[str, ...], dict[int, tuple[str, ...]]]] = {}  # (netns, family)

    def forget_router(self, vni: int) -> None:
        with self.lock:
            self.routers.pop((_namespace_id(), vni), None)


_applied = _AppliedNat()


def _namespace_id() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def apply_router_nat(router: Router, publications: list[Publication]) -> None:
    """The router's tables: published ports to their containers, and masquerade to the host (IPv4,
    and IPv6 for a dual-stack network's). Written only if they differ from what this process last
    wrote there."""
    rules = tuple(f"{p.protocol} dport {p.host_port} dnat to {p.ip}:{p.port}" for p in publications if p.ipv4)
    rules6 = tuple(f"{p.protocol} dport {p.host_port} dnat to [{p.ip6}]:{p.port}" for p in publications if p.ipv6)
    key = (_namespace_id(), router.vni)
    with _applied.lock:
        if _applied.routers.get(key) == (router, rules + rules6):
            return
        script = "".join(_table(family, ROUTER_TABLE, {
            "prerouting": ("type nat hook prerouting priority dstnat", [f'iifname "{UPLINK_LINK}" {r}' for r in family_rules]),
            "postrouting": ("type nat hook postrouting priority srcnat", [f'oifname "{UPLINK_LINK}" masquerade']),
        }) for family, family_rules in (("ip", rules), ("ip6", rules6)) if family == "ip" or router.ipv6)
        # nft forked from a thread inside the namespace: one fork, where `ip netns exec` made two
        links.in_namespace(namespace(router.vni), lambda: run(["nft", "-f", "-"], input_text=script, timeout=15))
        _applied.routers[key] = (router, rules + rules6)


def published_chain(vni: int) -> str:
    """The host table's chain of one network's published ports (prerouting and output jump to it)."""
    return f"published_{vni}"


def apply_host_nat(host_addresses: list[str], routed: list[tuple[Router, Publication]],
                   host_addresses6: list[str] | tuple[str, ...] = (), *, ipv6: bool = False) -> None:
    """The host's tables (`ip`, and `ip6` once a router is dual-stack): published ports to their
    routers (from outside and from the host itself), one chain per network, and the transfer range
    masqueraded to the host's own address on the way out. `host_addresses` (and `host_addresses6`)
    are where a port published without a host address goes; `ipv6`: a router is dual-stack, so the
    `ip6` table masquerades, with or without published ports. What this process wrote before is changed
    chain by chain: a network whose ports did not change is not rewritten. One `nft` for both."""
    key = _namespace_id()
    families = [("ip", tuple(host_addresses), [(r, p) for r, p in routed if p.ipv4])]
    if ipv6 or any(r.ipv6 for r, _ in routed) or (key, "ip6") in _applied.hosts:
        families.append(("ip6", tuple(host_addresses6), [(r, p) for r, p in routed if p.ipv6 and r.ipv6]))
    script, written_now = "", {}
    with _applied.lock:
        for family, addresses, family_routed in families:
            chains: dict[int, tuple[str, ...]] = {}
            for r, p in family_routed:
                chains.setdefault(r.vni, ())
                daddrs = p.host_addresses(family, addresses)
                target = r.router_address if family == "ip" else f"{r.router_address6}"
                if daddrs:
                    chains[r.vni] += (f"{family} daddr {{ {', '.join(daddrs)} }} {p.protocol} dport {p.host_port} dnat to {target}",)
            last = _applied.hosts.get((key, family))
            if last is None or last[0] != addresses:
                script, written = script + _host_table(family, chains), chains
            else:
                script, written = script + _host_chain_changes(family, last[1], chains), dict(last[1])
                written.update({vni: chains.get(vni, ()) for vni in set(last[1]) | set(chains)})
            written_now[(key, family)] = (addresses, written)
        if script:
            run(["nft", "-f", "-"], input_text=script, timeout=15)
        _applied.hosts.update(written_now)
    links.enable_ipv4_forwarding()  # routers reach the world through the host
    if len(families) > 1:
        links.enable_ipv6_forwarding()


def _host_table(family: str, chains: dict[int, tuple[str, ...]]) -> str:
    jumps = [f"jump {published_chain(vni)}" for vni in sorted(chains)]
    if family == "ip":
        # A port published on a loopback address (-p 127.0.0.1:...) is reached from the host itself: its
        # source, 127.0.0.1, may not leave the host (route_localnet lets it be routed), so it is the
        # transfer address the router sees.
        masquerade = [f'ip saddr {TRANSFER.cidr} oifname != "vr*" masquerade', f'ip saddr {LOOPBACK.cidr} oifname "vr*" masquerade']
    else:
        masquerade = [f'ip6 saddr {TRANSFER6.cidr} oifname != "vr*" masquerade']
    return _table(family, HOST_TABLE, {
        "prerouting": ("type nat hook prerouting priority dstnat", jumps),
        "output": ("type nat hook output priority -100", jumps),
        "postrouting": ("type nat hook postrouting priority srcnat", masquerade),
        **{published_chain(vni): (None, list(rules)) for vni, rules in sorted(chains.items())},
    })


def _host_chain_changes(family: str, written: dict[int, tuple[str, ...]], chains: dict[int, tuple[str, ...]]) -> str:
    """An nft script (one transaction) that brings the host's chains of `family` from `written` to
    `chains`: a new network's chain is added with its jumps; a chain whose rules differ is flushed and
    refilled; a network without published ports keeps an empty chain."""
    lines = []
    for vni in sorted(set(chains) - set(written)):
        chain = published_chain(vni)
        lines += [f"add chain {family} {HOST_TABLE} {chain}", f"add rule {family} {HOST_TABLE} prerouting jump {chain}",
                  f"add rule {family} {HOST_TABLE} output jump {chain}"]
    for vni in sorted(set(chains) | set(written)):
        wanted = chains.get(vni, ())
        if written.get(vni) == wanted:
            continue
        chain = published_chain(vni)
        lines.append(f"flush chain {family} {HOST_TABLE} {chain}")
        lines += [f"add rule {family} {HOST_TABLE} {chain} {rule}" for rule in wanted]
    return "\n".join(lines) + "\n" if lines else ""


def remove_host_nat() -> None:
    for family in ("ip", "ip6"):
        subprocess.run(["nft", "delete", "table", family, HOST_TABLE], capture_output=True, timeout=15)
    with _applied.lock:
        for family in ("ip", "ip6"):
            _applied.hosts.pop((_namespace_id(), family), None)


def _table(family: str, name: str, chains: dict[str, tuple[str | None, list[str]]]) -> str:
    """An nft script that replaces table `name` of `family` whole: declared (so the delete cannot
    fail), deleted, and made again, in one transaction."""
    lines = [f"table {family} {name} {{}}", f"delete table {family} {name}", f"table {family} {name} {{"]
    for chain, (hook, rules) in chains.items():  # hook None: a regular chain, jumped to
        head = [f"    {hook}; policy accept;"] if hook else []
        lines += [f"  chain {chain} {{", *head, *[f"    {r}" for r in rules], "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"
