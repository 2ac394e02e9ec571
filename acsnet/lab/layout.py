"""Where everything of a lab is: addresses, VLANs, names (see topology.py for the picture)."""

from __future__ import annotations

from typing import Callable

DEFAULT_PREFIX = "acsnet-lab"
DEFAULT_WORKDIR = "/var/lib/acsnet/lab"
UNDERLAY_PREFIXLEN = 24
SERVICES_ADDRESS = "192.0.2.2"
ZOOKEEPER_ADDRESSES = ("192.0.2.2", "192.0.2.3", "192.0.2.4")  # an ensemble's members, on the services node
QUORUM_PORT = 2888
OUTSIDE_ADDRESS = "192.0.2.200"
ZOOKEEPER_PORT = 2181
ETCD_PORT = 2379
VLANS = {217: ("198.51.100.1", 24), 218: ("203.0.113.1", 24)}  # VLAN → router address, prefix length
SWITCH_BRIDGE = "labsw"
UPLINK = "uplink0"
INFRASTRUCTURE = ("sw", "svc", "out", "gw")

Progress = Callable[[str], None]


def host_address(index: int) -> str:
    return f"192.0.2.{10 + index}"


def quiet(_message: str) -> None:
    pass
