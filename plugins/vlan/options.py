"""The vlan driver's network options (`docker network create -d vlan -o ...`), validated."""

from __future__ import annotations

import dataclasses

import netaddr

from acsnet.errors import InvalidRequest
from acsnet.plugins.protocol import NetworkCreate
from acsnet.plugins.options import integer_option

VLAN_ID_KEYS = ("VlanId", "vlanid", "vlan_id")
GATEWAY_MAC_KEY = "gateway_mac"


@dataclasses.dataclass(frozen=True)
class VlanOptions:
    vlan: int
    gateway_mac: str | None


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
    return VlanOptions(vlan, gateway_mac)
