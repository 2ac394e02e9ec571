"""ARP the host itself sends on a VLAN: gratuitous ARP for an address that appears here, and the probe
that learns a gateway's MAC. Frames are built with scapy (imported only when needed: it is slow to load)."""

from __future__ import annotations

import logging
import socket
import time

from acsnet.errors import DatapathError
from acsnet.ovsctl import links
from acsnet.ovsctl.ovsdb import Ovsdb

log = logging.getLogger(__name__)
BROADCAST = "ff:ff:ff:ff:ff:ff"
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100


def gratuitous_arp(ip: str, mac: str) -> bytes:
    """"<ip> is at <mac>", broadcast: neighbours with an entry for <ip> update it at once."""
    from scapy.layers.l2 import ARP, Ether

    return bytes(Ether(src=mac, dst=BROADCAST) / ARP(op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=ip))


def announce(uplink: str, vlan: int, ip: str, host_mac: str, count: int = 2) -> None:
    """Gratuitous ARP for <ip> with the host's MAC, tagged with the VLAN, sent straight out of the uplink
    through a packet socket: a packet-out through the bridge costs an ovs-ofctl fork per frame (about
    10 ms each, on the worker, while the container it announces is starting)."""
    announce_frame(uplink, vlan, gratuitous_arp(ip, host_mac), count)


def announce_frame(uplink: str, vlan: int, untagged: bytes, count: int = 2) -> None:
    """Send an announcement frame (a gratuitous ARP, an unsolicited neighbour advertisement) tagged with
    the VLAN straight out of the uplink."""
    frame = untagged[:12] + ETH_P_8021Q.to_bytes(2, "big") + (vlan & 0xFFF).to_bytes(2, "big") + untagged[12:]
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((uplink, 0))
        for _ in range(count):
            sock.send(frame)


def probe_mac(ovsdb: Ovsdb, bridge: str, vlan: int, ip: str, host_mac: str, timeout: float = 3.0) -> str | None:
    """Ask "who has <ip>?" on the VLAN from a short-lived internal port that carries the host's MAC (the
    only MAC the switch should see from this host), and return the answer's MAC, or None.
    The request's sender address is 0.0.0.0 (an RFC 5227 probe), so no neighbour caches anything.
    The socket is a plain AF_PACKET socket bound by name now: the port is a new device each time, and
    scapy's interface cache would still name the previous one."""
    from scapy.layers.l2 import ARP, Ether

    port = f"acsarp{vlan}"
    request = bytes(Ether(src=host_mac, dst=BROADCAST) / ARP(op=1, hwsrc=host_mac, psrc="0.0.0.0", pdst=ip))
    ovsdb.add_port(bridge, port, tag=vlan, interface_type="internal", mac=host_mac)
    try:
        _wait_for(lambda: links.exists(port), f"internal port {port} did not appear")
        links.set_up(port)
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
            sock.bind((port, 0))
            deadline = time.monotonic() + timeout
            for _attempt in range(3):
                sock.send(request)
                resend_at = min(deadline, time.monotonic() + timeout / 3)
                while (left := resend_at - time.monotonic()) > 0:
                    sock.settimeout(left)
                    try:
                        frame = sock.recv(2048)
                    except socket.timeout:
                        break
                    answer = Ether(frame)
                    if ARP in answer and answer[ARP].op == 2 and answer[ARP].psrc == ip:
                        return answer[ARP].hwsrc
        return None
    except OSError as e:
        log.warning("ARP probe for %s on VLAN %d failed: %s", ip, vlan, e)
        return None
    finally:
        ovsdb.delete_port(bridge, port)
        # The tap goes away asynchronously; the next probe must not find the old one.
        _wait_for(lambda: not links.exists(port), f"internal port {port} did not go away")


def _wait_for(condition, message: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise DatapathError(message)
        time.sleep(0.02)
