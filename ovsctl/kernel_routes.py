"""Kernel routes that acsnet owns in the host's main table, marked with their own protocol number so
that they are told apart from the host's (and found again after a restart). IPv4 and IPv6 alike."""

from __future__ import annotations

import netaddr
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from acsnet.errors import DatapathError

PROTOCOL = 172  # rtnetlink protocol of acsnet's routes (`ip route show proto 172`)
MAIN_TABLE = 254
RTNH_F_ONLINK = 4
FAMILIES = {4: 2, 6: 10}  # AF_INET, AF_INET6


def owned() -> dict[str, str]:
    """destination CIDR -> next hop, of acsnet's routes (both families)."""
    found = {}
    with IPRoute() as ipr:
        for family in FAMILIES.values():
            for route in ipr.get_routes(family=family, table=MAIN_TABLE, proto=PROTOCOL):
                dst = f"{route.get('RTA_DST')}/{route['dst_len']}"
                found[str(netaddr.IPNetwork(dst).cidr)] = route.get("RTA_GATEWAY")
    return found


def replace(destination: str, via: str, *, onlink_device: str | None = None) -> None:
    """`destination` via `via`; with `onlink_device`, `via` is taken as on that link whatever its
    address (an IPv6 next hop in another prefix, resolved by neighbour discovery there)."""
    network = netaddr.IPNetwork(destination)
    with IPRoute() as ipr:
        spec = {"dst": str(network.cidr), "gateway": via, "proto": PROTOCOL, "table": MAIN_TABLE, "family": FAMILIES[network.version]}
        if onlink_device is not None:
            index = ipr.link_lookup(ifname=onlink_device)
            if not index:
                raise DatapathError(f"route {destination} via {via}: no interface {onlink_device}")
            spec.update(oif=index[0], flags=RTNH_F_ONLINK)
        try:
            ipr.route("replace", **spec)
        except NetlinkError as e:
            raise DatapathError(f"route {destination} via {via}: {e}") from None


def delete(destination: str) -> None:
    network = netaddr.IPNetwork(destination)
    with IPRoute() as ipr:
        try:
            ipr.route("del", dst=str(network.cidr), proto=PROTOCOL, table=MAIN_TABLE, family=FAMILIES[network.version])
        except NetlinkError as e:
            if e.code != 3:  # ESRCH: already gone
                raise DatapathError(f"route {destination}: {e}") from None
