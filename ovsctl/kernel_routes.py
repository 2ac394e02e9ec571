"""Kernel routes that acsnet owns in the host's main table, marked with their own protocol number so
that they are told apart from the host's (and found again after a restart)."""

from __future__ import annotations

import netaddr
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from acsnet.errors import DatapathError

PROTOCOL = 172  # rtnetlink protocol of acsnet's routes (`ip route show proto 172`)
MAIN_TABLE = 254


def owned() -> dict[str, str]:
    """destination CIDR -> next hop, of acsnet's routes."""
    found = {}
    with IPRoute() as ipr:
        for route in ipr.get_routes(family=2, table=MAIN_TABLE, proto=PROTOCOL):
            dst = f"{route.get('RTA_DST')}/{route['dst_len']}"
            found[str(netaddr.IPNetwork(dst).cidr)] = route.get("RTA_GATEWAY")
    return found


def replace(destination: str, via: str) -> None:
    with IPRoute() as ipr:
        try:
            ipr.route("replace", dst=destination, gateway=via, proto=PROTOCOL, table=MAIN_TABLE)
        except NetlinkError as e:
            raise DatapathError(f"route {destination} via {via}: {e}") from None


def delete(destination: str) -> None:
    with IPRoute() as ipr:
        try:
            ipr.route("del", dst=destination, proto=PROTOCOL, table=MAIN_TABLE)
        except NetlinkError as e:
            if e.code != 3:  # ESRCH: already gone
                raise DatapathError(f"route {destination}: {e}") from None
