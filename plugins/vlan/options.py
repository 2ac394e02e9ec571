"""The vlan driver's network options (`docker network create -d vlan -o ...`), validated."""

from __future__ import annotations

import dataclasses

import netaddr

from acsnet.errors import InvalidRequest
from acsnet.plugins.protocol import NetworkCreate
from acsnet.plugins.options import integer_option

VLAN_ID_KEYS = ("VlanId", "vlanid", "vlan_id")
GATEWAY_MAC_KEY = "gateway_mac"
IPV6_RA_KEY = "ipv6_ra"
IPV6_RA_VALUES = ("accept", "drop")


@dataclasses.dataclass(frozen=True)
class VlanOptions:
    vlan: int
    gateway_mac: str | None
    # -o ipv6_ra=accept: the VLAN's router's advertisements reach the containers (default drop: Docker's
    # static IPv6 gateway is their only router)
    accept_ra: bool = False


def parse_vlan_options(request: NetworkCreate) -> VlanOptions:
    given = [k for k in VLAN_ID_KEYS if k in request.generic]
    if not given:
        raise InvalidRequest("the vlan driver needs a VLAN: -o VlanId=N (1-4094)")
    if len({str(request.generic[k]) for k in given}) > 1:
        raise InvalidRequest(f"conflicting VLAN options: {', '.join(f'{k}={request.generic[k]}' for k in given)}")
    vlan = integer_option(request.generic[given[0]], "VlanId", 1, 4094)
    gateway_mac = request.generic.get(GATEWAY_MAC_KEY)
    if gateway_mac is not None:
        try:
            gateway_mac = str(netaddr.EUI(gateway_mac, dialect=netaddr.mac_unix_expanded))
        except (netaddr.AddrFormatError, ValueError, TypeError):
            raise InvalidRequest(f"{GATEWAY_MAC_KEY} {gateway_mac!r} is not a valid MAC address") from None
    ipv6_ra = request.generic.get(IPV6_RA_KEY, "drop")
    if ipv6_ra not in IPV6_RA_VALUES:
        raise InvalidRequest(f"{IPV6_RA_KEY} must be accept or drop, got {ipv6_ra!r}")
    if ipv6_ra == "accept" and not request.ipv6:
        raise InvalidRequest(f"{IPV6_RA_KEY}=accept is for dual-stack networks (--ipv6 with an IPv6 --subnet): "
                             "this network has no IPv6 subnet")
    return VlanOptions(vlan, gateway_mac, ipv6_ra == "accept")
