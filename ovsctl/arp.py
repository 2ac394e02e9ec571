"""ARP the host itself sends on a VLAN: gratuitous ARP for an address that appears here, and the probe
that learns a gateway's MAC. Frames are built with scapy (imported only when needed: it is slow to load)."""

from __future__ import annotations

import logging
import time

from ovsctl import links, openflow
from ovsctl.command import OvsError
from ovsctl.ovsdb import Ovsdb

log = logging.getLogger(__name__)
BROADCAST = "ff:ff:ff:ff:ff:ff"


def gratuitous_arp(ip: str, mac: str) -> bytes:
    """"<ip> is at <mac>", broadcast: neighbours with an entry for <ip> update it at once."""
    from scapy.layers.l2 import ARP, Ether

    return bytes(Ether(src=mac, dst=BROADCAST) / ARP(op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=ip))


def announce(bridge: str, uplink: str, vlan: int, ip: str, host_mac: str, count: int = 2) -> None:
    frame = gratuitous_arp(ip, host_mac)
    for _ in range(count):
        openflow.packet_out(bridge, f"mod_vlan_vid:{vlan},output:{uplink}", frame)


def probe_mac(ovsdb: Ovsdb, bridge: str, vlan: int, ip: str, host_mac: str, timeout: float = 2.0) -> str | None:
    """Ask "who has <ip>?" on the VLAN from a short-lived internal port that carries the host's MAC (the
    only MAC the switch should see from this host), and return the answer's MAC, or None.
    The request's sender address is 0.0.0.0 (an RFC 5227 probe), so no neighbour caches anything."""
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp1

    port = f"acsarp{vlan}"
    ovsdb.add_port(bridge, port, tag=vlan, interface_type="internal")
    try:
        ovsdb.vsctl("set", "interface", port, f'mac="{host_mac}"')
        deadline = time.monotonic() + 5
        while not links.exists(port):  # the userspace datapath creates the tap asynchronously
            if time.monotonic() > deadline:
                raise OvsError(f"internal port {port} did not appear")
            time.sleep(0.05)
        links.set_up(port)
        request = Ether(src=host_mac, dst=BROADCAST) / ARP(op=1, hwsrc=host_mac, psrc="0.0.0.0", pdst=ip)
        for _attempt in range(2):
            reply = srp1(request, iface=port, timeout=timeout / 2, verbose=0)
            if reply is not None and ARP in reply and reply[ARP].psrc == ip:
                return reply[ARP].hwsrc
        return None
    finally:
        ovsdb.delete_port(bridge, port)
