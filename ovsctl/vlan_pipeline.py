"""The vlan driver's OpenFlow pipeline on the host bridge (ovsbr0), built whole from the desired state.

The uplink is a trunk port; each container is a veth with an OVSDB `tag` (its VLAN) whose traffic never
reaches OVS's NORMAL switching: flows carry it, so that the ARP proxy and MAC NAT hold for every frame.
NORMAL only serves the host's own untagged traffic (LOCAL <-> uplink) and the answer to the host's
gateway probe. reg0 carries the packet's VLAN through the tables. Every flow has cookie 0xac5 (`COOKIE`),
and only flows of that cookie are installed or removed (`openflow.FlowTable`): table 0 is shared with
the vpc pipeline.

The tables (0 classify, 10 from a container, 20 from the uplink, 30 ARP proxy), each flow as a lab host
dumps it, and packet walks: docs/pipeline.md, "The host bridge `ovsbr0`". tests/test_pipeline_doc.py
fails when this code emits a kind of flow that document does not show, or stops emitting one it shows.
"""

from __future__ import annotations

import dataclasses
import functools

from acsnet.ovsctl import openflow
from acsnet.ovsctl.neighbour import arp_reply_actions

COOKIE = "0xac5"
CLASSIFY, FROM_CONTAINER, FROM_UPLINK, ARP_PROXY = 0, 10, 20, 30
_flow = functools.partial(openflow.flow, COOKIE)


@dataclasses.dataclass(frozen=True)
class LocalPort:
    port: str
    vlan: int
    ip: str
    mac: str


@dataclasses.dataclass(frozen=True)
class ArpAnswer:
    """An address on a VLAN and the MAC the proxy answers for it."""

    vlan: int
    ip: str
    mac: str


@dataclasses.dataclass(frozen=True)
class VlanDatapath:
    uplink: str
    host_mac: str
    vlans: frozenset[int]  # VLANs with a network on this host
    local: tuple[LocalPort, ...]
    remote: tuple[ArpAnswer, ...]  # containers on other hosts: answered with their host's MAC
    gateways: tuple[ArpAnswer, ...]


def vlan_flows(dp: VlanDatapath) -> list[str]:
    flows = [_flow(CLASSIFY, 0, "", "NORMAL"),
             _flow(FROM_CONTAINER, 200, "arp,arp_op=1", f"resubmit(,{ARP_PROXY})"),
             _flow(FROM_CONTAINER, 190, "arp", "drop"),
             _flow(FROM_UPLINK, 150, f"arp,arp_op=2,dl_dst={dp.host_mac}", "NORMAL"),
             _flow(FROM_UPLINK, 0, "", "drop"),
             _flow(ARP_PROXY, 0, "", "drop")]
    for vlan in sorted(dp.vlans):
        flows.append(_flow(CLASSIFY, 300, f"in_port={dp.uplink},dl_vlan={vlan}", f"set_field:{vlan}->reg0,resubmit(,{FROM_UPLINK})"))
        flows.append(_flow(FROM_CONTAINER, 10, f"reg0={vlan}",
                           f"set_field:{dp.host_mac}->eth_src,mod_vlan_vid:{vlan},output:{dp.uplink}"))
    for p in dp.local:
        flows.append(_flow(CLASSIFY, 300, f"in_port={p.port}", f"set_field:{p.vlan}->reg0,resubmit(,{FROM_CONTAINER})"))
        flows.append(_flow(FROM_CONTAINER, 100, f"reg0={p.vlan},dl_dst={p.mac}", f"output:{p.port}"))
        flows.append(_flow(FROM_UPLINK, 200, f"arp,arp_op=1,reg0={p.vlan},arp_tpa={p.ip}", arp_reply_actions(dp.host_mac, p.ip)))
        flows.append(_flow(FROM_UPLINK, 100, f"ip,dl_vlan={p.vlan},reg0={p.vlan},nw_dst={p.ip}",
                           f"pop_vlan,set_field:{p.mac}->eth_dst,output:{p.port}"))
    answers = [ArpAnswer(p.vlan, p.ip, p.mac) for p in dp.local] + list(dp.remote) + list(dp.gateways)
    seen = set()
    for a in answers:  # a local endpoint wins over a stale remote record of the same address
        if (a.vlan, a.ip) in seen:
            continue
        seen.add((a.vlan, a.ip))
        flows.append(_flow(ARP_PROXY, 100, f"arp,reg0={a.vlan},arp_tpa={a.ip}", arp_reply_actions(a.mac, a.ip)))
    return flows
