"""Linux links through netlink (pyroute2): veth pairs for endpoints, and moving a NIC's addresses and
routes onto the OVS bridge (host setup); a named network namespace entered without a fork."""

from __future__ import annotations

import array
import ctypes
import dataclasses
import errno
import fcntl
import os
import socket
import struct
import threading
from typing import Callable, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD
from pyroute2.netlink.rtnl.ifinfmsg import IFF_NOARP, IFF_UP

from acsnet.errors import DatapathError
from acsnet.ovsctl.command import check_interface_name

MAIN_TABLE = 254
SIOCETHTOOL, ETHTOOL_STXCSUM, ETHTOOL_GTSO = 0x8946, 0x17, 0x1e  # linux/sockios.h, linux/ethtool.h
KERNEL_PROTO = 2  # routes the kernel made for an address; they come back with the address
CLONE_NEWNET = 0x40000000  # linux/sched.h
NETNS_DIR = "/run/netns"  # where `ip netns` and pyroute2 keep named namespaces
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Route:
    dst: str | None  # None: default route
    dst_len: int
    gateway: str | None
    metric: int | None


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=check_interface_name(name))
    return found[0] if found else None


def exists(name: str) -> bool:
    with IPRoute() as ipr:
        return _index(ipr, name) is not None


def names() -> set[str]:
    """Every link name in this namespace, in one dump."""
    with IPRoute() as ipr:
        return {link.get("IFLA_IFNAME") for link in ipr.get_links()}


def _attribute(name: str, attribute: str):
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            raise DatapathError(f"no interface {name}")
        return ipr.get_links(index)[0].get(attribute)


def mac_of(name: str) -> str:
    return _attribute(name, "address")


def mtu_of(name: str) -> int:
    return _attribute(name, "mtu")


def create_veth(host_end: str, container_end: str, *, mtu: int, container_mac: str | None) -> None:
    """Create the pair (replacing a leftover of the same name) with both ends' MTU set and the host end up,
    out of the host's ARP: one netlink request, the flags set as the link is made (a lookup first and a
    `set` after cost 2.6 ms more of a CreateEndpoint on a lab host). A leftover is looked for only when
    the name is taken."""
    peer = {"ifname": check_interface_name(container_end), "mtu": mtu}
    if container_mac:
        peer["address"] = container_mac
    # NOARP: the host end is OVS's port only. The host's kernel sees its frames too, and without this
    # answers a container's ARP for the host's own addresses (a vpc gateway) with this veth's MAC;
    # the container then sends to it, and the kernel forwards each packet as OVS does (measured: ping
    # replies duplicated tenfold, vpc bandwidth at 0.30 of native).
    link = {"ifname": check_interface_name(host_end), "kind": "veth", "mtu": mtu, "peer": peer,
            "flags": IFF_UP | IFF_NOARP, "change": IFF_UP | IFF_NOARP}
    with IPRoute() as ipr:
        try:
            ipr.link("add", **link)
            return
        except NetlinkError as e:
            stale = _index(ipr, host_end) if e.code == errno.EEXIST else None
            if stale is None:
                raise DatapathError(f"cannot create veth {host_end}/{container_end}: {e}") from None
        ipr.link("del", index=stale)
        try:
            ipr.link("add", **link)
        except NetlinkError as e:
            raise DatapathError(f"cannot create veth {host_end}/{container_end}: {e}") from None


def set_mtu(names: list[str], mtu: int) -> None:
    """Give these links this MTU, in one netlink socket."""
    with IPRoute() as ipr:
        for name in names:
            index = _index(ipr, name)
            if index is None:
                raise DatapathError(f"no interface {name}")
            try:
                ipr.link("set", index=index, mtu=mtu)
            except NetlinkError as e:
                raise DatapathError(f"cannot set the MTU of {name} to {mtu}: {e}") from None


def index_of(name: str) -> int | None:
    with IPRoute() as ipr:
        return _index(ipr, name)


def delete_index(index: int) -> None:
    """Delete the link with this index if it still exists (indexes are not reused soon, names may be)."""
    with IPRoute() as ipr:
        try:
            ipr.link("del", index=index)
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise DatapathError(f"cannot delete link {index}: {e}") from None


def delete(name: str) -> None:
    """Delete the link if it exists (a veth's peer goes with it)."""
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            return
        try:
            ipr.link("del", index=index)
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise DatapathError(f"cannot delete {name}: {e}") from None


def disable_tx_checksum(name: str) -> None:
    """OVS's userspace datapath without TCP segmentation offload does not complete checksums a veth
    offloads: without this, ping works and TCP does not. It is `ethtool -K NAME tx off` as one SIOCETHTOOL
    ioctl (ETHTOOL_STXCSUM, which the kernel maps to every TX checksum feature, TSO with them): 0.1 ms,
    where a fork of ethtool costs 3-5 ms and pyroute2's Ethtool (which reads and writes the whole
    feature set) 3-4 ms per device."""
    _ethtool(name, ETHTOOL_STXCSUM, 0, "turn off TX checksum offload on")


def enable_tx_checksum(name: str) -> None:
    """`ethtool -K NAME tx on`: what `disable_tx_checksum` turned off is back (a veth's TSO with it:
    the kernel kept it asked for, and only held it off without checksums)."""
    _ethtool(name, ETHTOOL_STXCSUM, 1, "turn on TX checksum offload on")


def segmentation_offload(name: str) -> bool:
    """Whether the device hands TCP segmentation to its receiver (`ethtool -k NAME`'s
    tcp-segmentation-offload). On an OVS bridge's own port with the userspace datapath this tells whether
    ovs-vswitchd opened it with userspace TSO: its tap then takes whole segments, and otherwise keeps
    TSO off whatever was requested. Except after a restart without it: the tap (persistent) keeps what the
    ovs-vswitchd before set, which is why `host-setup --no-userspace-tso` turns it off."""
    return bool(_ethtool(name, ETHTOOL_GTSO, 0, "read TCP segmentation offload of"))


def _ethtool(name: str, command: int, data: int, what: str) -> int:
    value = array.array("I", [command, data])  # struct ethtool_value {cmd, data}
    request = struct.pack("16sP", check_interface_name(name).encode(), value.buffer_info()[0])  # struct ifreq
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock, SIOCETHTOOL, request)
    except OSError as e:
        raise DatapathError(f"cannot {what} {name}: {e}") from None
    return value[1]


def in_namespace(name: str, action: Callable[[], T]) -> T:
    """`action()` inside the named network namespace, on a thread of its own that enters it (setns
    changes only the calling thread's namespace, and this one ends with the thread): sockets it opens,
    ioctls and /proc/sys/net are the namespace's. `ip netns exec ... CMD` forks twice for the same."""
    outcome: list = []

    def inside() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, check_interface_name(name)), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise DatapathError(f"cannot enter network namespace {name}: {os.strerror(code)}")
            finally:
                os.close(fd)
            outcome.append((True, action()))
        except FileNotFoundError:
            outcome.append((False, DatapathError(f"network namespace {name} does not exist")))
        except BaseException as e:  # handed to the caller's thread
            outcome.append((False, e))

    thread = threading.Thread(target=inside, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def enable_ipv4_forwarding() -> None:
    """net.ipv4.ip_forward=1 in the caller's network namespace (a write to /proc/sys, not a sysctl fork)."""
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")


def enable_route_localnet(name: str) -> None:
    """Let packets from 127.0.0.0/8 be routed out of link `name` (net.ipv4.conf.NAME.route_localnet)."""
    with open(f"/proc/sys/net/ipv4/conf/{check_interface_name(name)}/route_localnet", "w") as f:
        f.write("1")


def has_ipv6() -> bool:
    """Whether the kernel has IPv6 in the caller's network namespace (not booted with ipv6.disable=1)."""
    return os.path.exists("/proc/sys/net/ipv6/conf/all/forwarding")


def enable_ipv6_forwarding() -> None:
    """IPv6 forwarding on in the caller's network namespace. A host that forwards ignores router
    advertisements where accept_ra is 1, and would lose the default route it learned from them: such
    interfaces are set to 2 (accept them while forwarding) first, as they were meant to accept them
    (interfaces made later keep the default: a router's links need no advertisements)."""
    with open("/proc/sys/net/ipv6/conf/all/forwarding") as f:
        if f.read().strip() == "1":
            return
    for name in sorted(set(os.listdir("/proc/sys/net/ipv6/conf")) - {"all", "default"}):
        path = f"/proc/sys/net/ipv6/conf/{name}/accept_ra"
        try:
            with open(path) as f:
                if f.read().strip() != "1":
                    continue
            with open(path, "w") as f:
                f.write("2")
        except OSError:  # an interface gone meanwhile
            continue
    with open("/proc/sys/net/ipv6/conf/all/forwarding", "w") as f:
        f.write("1")


def set_up(name: str, mtu: int | None = None) -> None:
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            raise DatapathError(f"no interface {name}")
        ipr.link("set", index=index, state="up", **({"mtu": mtu} if mtu else {}))


def add_address(name: str, address: str, prefixlen: int) -> None:
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            raise DatapathError(f"no interface {name}")
        # An IPv6 address without duplicate address detection: each is this host's by a claim in the
        # store (a vpc host's slice), and DAD only delays it, or fails it for good on a looped-back
        # probe (seen on a vpc host whose slice arrived after its bridge was up: "dadfailed tentative").
        flags = {"flags": IFA_F_NODAD} if ":" in address else {}
        try:
            ipr.addr("add", index=index, address=address, prefixlen=prefixlen, **flags)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise DatapathError(f"cannot add {address}/{prefixlen} to {name}: {e}") from None


def delete_address(name: str, address: str, prefixlen: int) -> None:
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            return
        try:
            ipr.addr("del", index=index, address=address, prefixlen=prefixlen)
        except NetlinkError as e:
            if e.code != errno.EADDRNOTAVAIL:
                raise DatapathError(f"cannot remove {address}/{prefixlen} from {name}: {e}") from None


def addresses(name: str, *, ipv6: bool = False) -> list[tuple[str, int]]:
    """The link's IPv4 addresses, and with `ipv6` its IPv6 ones of global scope too (never link-local)."""
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            return []
        found = [(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)]
        if ipv6:
            found += [(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=10) if a["scope"] == 0]
        return found


def ipv4_addresses() -> set[str]:
    """The namespace's IPv4 addresses, on any link."""
    with IPRoute() as ipr:
        return {a.get("IFA_ADDRESS") for a in ipr.get_addr(family=2)}


def global_ipv6_addresses() -> set[str]:
    """The namespace's IPv6 addresses of global scope (not link-local, not loopback), on any link."""
    with IPRoute() as ipr:
        return {a.get("IFA_ADDRESS") for a in ipr.get_addr(family=10) if a["scope"] == 0}


def routes(name: str) -> list[Route]:
    """The routes through `name` that were not made by the kernel for an address."""
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            return []
        return [Route(r.get("dst"), r["dst_len"], r.get("gateway"), r.get("priority"))
                for r in ipr.get_routes(family=2, oif=index, table=MAIN_TABLE) if r["proto"] != KERNEL_PROTO]


def move_addresses_and_routes(source: str, target: str) -> list[str]:
    """Move every IPv4 address and route of `source` to `target`, addresses first (routes need them).
    Returns what was moved."""
    moved = []
    route_list = routes(source)
    with IPRoute() as ipr:
        src, dst = _index(ipr, source), _index(ipr, target)
        if src is None or dst is None:
            raise DatapathError(f"cannot move addresses from {source} to {target}: interface missing")
        for address, length in [(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=src, family=2)]:
            ipr.addr("del", index=src, address=address, prefixlen=length)
            try:
                ipr.addr("add", index=dst, address=address, prefixlen=length)
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
            moved.append(f"address {address}/{length}")
        for route in route_list:
            spec = {"dst": f"{route.dst}/{route.dst_len}" if route.dst else "0.0.0.0/0", "oif": dst}
            if route.gateway:
                spec["gateway"] = route.gateway
            if route.metric is not None:
                spec["priority"] = route.metric
            try:
                ipr.route("add", **spec)
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
            moved.append(f"route {spec['dst']}" + (f" via {route.gateway}" if route.gateway else ""))
    return moved
