"""`acsnet host-setup`: the host layout the OVS drivers need, made idempotently.

The uplink NIC becomes a trunk port of the bridge; the bridge's own (internal) port takes the uplink's
MAC, addresses and routes, so the host keeps its connectivity and presents one MAC on the wire. The
bridge records its uplink in `external_ids:acsnet-uplink`, which is how the drivers find it.
"""

from __future__ import annotations

import dataclasses
import subprocess

from acsnet.errors import DatapathError, HostNotSetUp
from acsnet.ovsctl import links
from acsnet.ovsctl.command import check_interface_name, run
from acsnet.ovsctl.ovsdb import Ovsdb

UPLINK_ID = "acsnet-uplink"
DATAPATH_ID = "acsnet-datapath"
UPLINK_TABLE = "acsnet_uplink"  # nftables (netdev family): the uplink's frames are OVS's alone


@dataclasses.dataclass(frozen=True)
class HostLayout:
    bridge: str
    uplink: str
    datapath: str


def setup_host(ovsdb: Ovsdb, uplink: str, bridge: str = "ovsbr0", datapath: str = "system", *,
               userspace_tso: bool = True) -> list[str]:
    """Make the layout; returns what was done (nothing on a host already set up). `userspace_tso`: with
    the netdev datapath, OVS's TCP segmentation offload on, or off (whether it is in effect is read from
    the bridge's port, here and by the drivers)."""
    check_interface_name(uplink)
    check_interface_name(bridge)
    if not links.exists(uplink):
        raise DatapathError(f"uplink {uplink} does not exist on this host")
    done = []
    mac, mtu = links.mac_of(uplink), links.mtu_of(uplink)
    if datapath == "netdev" and ovsdb.set_userspace_tso(userspace_tso):  # before the bridge and uplink are opened
        done.append("userspace TCP segmentation offload on (other_config:userspace-tso-enable)" if userspace_tso else
                    "userspace TCP segmentation offload off (other_config:userspace-tso-enable): "
                    "ovs-vswitchd keeps it until it restarts")
    if not ovsdb.bridge_exists(bridge):
        ovsdb.add_bridge(bridge, datapath)
        done.append(f"bridge {bridge} ({datapath} datapath)")
    ovsdb.set_bridge_mac(bridge, mac)
    if uplink not in ovsdb.ports(bridge):
        ovsdb.add_port(bridge, uplink)
        done.append(f"uplink {uplink} is a trunk port of {bridge}")
    ovsdb.set_bridge_external_ids(bridge, {UPLINK_ID: uplink, DATAPATH_ID: datapath})
    if datapath == "netdev":
        if keep_kernel_off_uplink(uplink):
            done.append(f"frames of {uplink} go to OVS only (nftables table netdev {UPLINK_TABLE})")
    wait_for_link(bridge)
    if datapath == "netdev" and not userspace_tso and links.segmentation_offload(bridge):
        # ovs-vswitchd keeps TSO until it restarts, and then opens the bridge's port again as it was (a
        # persistent tap: measured on OVS 3.1, offloads and all): the host's own packets would leave it with
        # checksums left to do, which nothing does any more (ping works, TCP does not), and the drivers,
        # which read the port, would go on giving veths their offloads. Off now: until the restart OVS
        # takes whole packets as well.
        links.disable_tx_checksum(bridge)
        done.append(f"{bridge}'s TX checksum and segmentation offloads off")
    if datapath == "netdev" and not links.segmentation_offload(bridge):
        # ovs-vswitchd opened the bridge before TSO was on: it and the uplink stay without it (and the
        # drivers keep checksums in the containers) until ovs-vswitchd restarts.
        links.disable_tx_checksum(uplink)
        if userspace_tso:
            done.append(f"{bridge} was opened without TCP segmentation offload: restart ovs-vswitchd to have it")
    links.set_up(bridge, mtu=mtu)
    done += links.move_addresses_and_routes(uplink, bridge)
    return done


def keep_kernel_off_uplink(uplink: str) -> bool:
    """With the userspace datapath OVS reads the uplink through a packet socket, and the host's kernel
    receives every frame of it too: each frame for the host came in twice (again through the bridge's own
    port), and with forwarding on, the kernel forwarded what OVS forwards (measured: every ping to the
    host or through it answered two and three times). An nftables ingress hook on the uplink drops its
    frames for the kernel only: packet sockets (OVS) see them before that hook. Returns whether the rule
    was new (it is installed again either way, for the uplink given)."""
    present = subprocess.run(["nft", "list", "table", "netdev", UPLINK_TABLE], capture_output=True, timeout=15).returncode == 0
    run(["nft", "-f", "-"], timeout=15, input_text=(
        f"table netdev {UPLINK_TABLE}\ndelete table netdev {UPLINK_TABLE}\n"
        f"table netdev {UPLINK_TABLE} {{\n"
        f'  chain ingress {{ type filter hook ingress device "{check_interface_name(uplink)}" priority 0; policy drop; }}\n'
        "}\n"))
    return not present


def wait_for_link(name: str, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not links.exists(name):
        if time.monotonic() > deadline:
            raise DatapathError(f"the bridge's internal port {name} did not appear")
        time.sleep(0.05)


def host_layout(ovsdb: Ovsdb, bridge: str = "ovsbr0") -> HostLayout:
    """The layout `setup_host` made, or a clear error saying how to make it."""
    ids = ovsdb.bridge_external_ids(bridge) if ovsdb.bridge_exists(bridge) else {}
    if UPLINK_ID not in ids:
        raise HostNotSetUp(f"this host is not set up for acsnet (no bridge {bridge} with an uplink): "
                           f"run 'acsnet host-setup --uplink IFACE --bridge {bridge}' first")
    return HostLayout(bridge, ids[UPLINK_ID], ids.get(DATAPATH_ID, "system"))
