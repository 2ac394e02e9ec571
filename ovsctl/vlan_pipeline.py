"""The vlan driver's OpenFlow pipeline on the host bridge (ovsbr0), built whole from the desired state.

The uplink is a trunk port; each container is a veth whose traffic never reaches OVS's NORMAL switching:
flows carry it, so that the ARP proxy and MAC NAT hold for every frame. Its VLAN is the flows' (reg0,
the tag pushed toward the uplink and popped toward it); its port's OVSDB tag, which NORMAL alone reads,
is the reserved 4095 (`acsnet.plugins.vlan.agent`).
NORMAL only serves the host's own untagged traffic (LOCAL <-> uplink) and the answer to the host's
gateway probe. reg0 carries the packet's VLAN through the tables. Every flow has cookie 0xac5 (`COOKIE`),
and only flows of that cookie are installed or removed (`openflow.FlowTable`): table 0 is shared with
the vpc pipeline.

IPv6 (a dual-stack network) gets the same: neighbour solicitations from containers are answered by
flows (35, finished in 36: `acsnet.ovsctl.neighbour`), those from the VLAN for a local container with
the host's MAC, and IPv6 to a local container's address is rewritten to its MAC. Container NDP that
would carry a container's MAC in a link-layer option (router solicitations, advertisements, redirects)
never leaves the host: dropped, as OVS cannot rewrite the option (below). Router advertisements from the
VLAN are dropped too (containers keep Docker's static gateway), except on a VLAN whose network asks for
them (`-o ipv6_ra=accept`): there those from the router's MAC (the gateway's, once learned) go to the
VLAN's containers — to all nodes, to every container; to one container's address (the answer to a
solicitation), to that container with its MAC — and a solicitation for a link-local address (the
router's, which the advertisements name as the next hop) is answered with the router's MAC.

A router solicitation is not rewritten but sent again by the host: OVS (3.1, tried on a lab host) parses
NDP options only in neighbour solicitations and advertisements, so on a flow matching icmp_type=133 it
refuses `set_field:...->nd_sll` and `nd_options_type` ("lacks correct prerequisites"), and its datapath
would not find the option of a 16-byte RS either (packet_set_nd wants 24). Nor can a flow strip the
option (IPv6's payload length is no field). So a container's own solicitation is dropped, and on an
accepting network the host solicits for each container that joins, once dockerd runs it, with the
host's MAC in both places and the container's address as source (`acsnet.plugins.vlan.agent`).

The tables (0 classify, 10 from a container, 20 from the uplink, 30 ARP proxy, 35 and 36 neighbour
advertisement), each flow as a lab host dumps it, and packet walks: docs/pipeline.md, "The host bridge `ovsbr0`". tests/test_pipeline_doc.py
fails when this code emits a kind of flow that document does not show, or stops emitting one it shows.
"""

from __future__ import annotations

import dataclasses
import functools

from acsnet.ovsctl import openflow
from acsnet.ovsctl.neighbour import (ALL_NODES, ICMPV6_NA, ICMPV6_NS, arp_reply_actions, nd_advert_actions,
                                     nd_advert_finish_actions, nd_advert_finish_match, nd_dad_probe_match,
                                     nd_solicitation_match)

COOKIE = "0xac5"
CLASSIFY, FROM_CONTAINER, FROM_UPLINK, ARP_PROXY, ND_PROXY, ND_FINISH = 0, 10, 20, 30, 35, 36
# NDP a container may send but that must not leave the host: each carries the sender's MAC in a
# link-layer option (router solicitation and advertisement, neighbour advertisement, redirect).
ICMPV6_RS, ICMPV6_RA, ICMPV6_REDIRECT = 133, 134, 137
LINK_LOCAL6 = "fe80::/10"
CONTAINER_NDP_DROPPED = (ICMPV6_RS, ICMPV6_RA, ICMPV6_NA, ICMPV6_REDIRECT)
_flow = functools.partial(openflow.flow, COOKIE)


@dataclasses.dataclass(frozen=True)
class LocalPort:
    port: str
    vlan: int
    ip: str
    mac: str
    ip6: str = ""  # "" on an IPv4-only network


@dataclasses.dataclass(frozen=True)
class ArpAnswer:
    """An address on a VLAN and the MAC the proxy answers for it."""

    vlan: int
    ip: str
    mac: str
    ip6: str = ""  # its IPv6 twin (answered to neighbour solicitations with the same MAC), if any


@dataclasses.dataclass(frozen=True)
class VlanDatapath:
    uplink: str
    host_mac: str
    vlans: frozenset[int]  # VLANs with a network on this host
    local: tuple[LocalPort, ...]
    remote: tuple[ArpAnswer, ...]  # containers on other hosts: answered with their host's MAC
    gateways: tuple[ArpAnswer, ...]
    accept_ra: frozenset[int] = frozenset()  # VLANs whose network takes its router's advertisements


def vlan_flows(dp: VlanDatapath) -> list[str]:
    flows = [_flow(CLASSIFY, 0, "", "NORMAL"),
             _flow(FROM_CONTAINER, 200, "arp,arp_op=1", f"resubmit(,{ARP_PROXY})"),
             _flow(FROM_CONTAINER, 190, "arp", "drop"),
             _flow(FROM_UPLINK, 150, f"arp,arp_op=2,dl_dst={dp.host_mac}", "NORMAL"),
             _flow(FROM_UPLINK, 0, "", "drop"),
             _flow(ARP_PROXY, 0, "", "drop"),
             _flow(FROM_CONTAINER, 210, nd_dad_probe_match(), "drop"),
             _flow(FROM_CONTAINER, 200, f"icmp6,icmp_type={ICMPV6_NS}", f"resubmit(,{ND_PROXY})"),
             *[_flow(FROM_CONTAINER, 190, f"icmp6,icmp_type={t}", "drop") for t in CONTAINER_NDP_DROPPED],
             _flow(FROM_UPLINK, 210, nd_dad_probe_match(), "drop"),
             # Advertisements not let in below (another sender, a VLAN that does not accept them), unicast
             # ones too: without it, one to a container's address would pass as its IPv6 (priority 100).
             _flow(FROM_UPLINK, 190, f"icmp6,icmp_type={ICMPV6_RA}", "drop"),
             _flow(ND_PROXY, 0, "", "drop"),
             _flow(ND_FINISH, 100, nd_advert_finish_match(), nd_advert_finish_actions())]
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
        if p.ip6:
            flows.append(_flow(FROM_UPLINK, 200, f"{nd_solicitation_match(p.ip6)},reg0={p.vlan}",
                               nd_advert_actions(dp.host_mac, p.ip6, ND_FINISH)))
            flows.append(_flow(FROM_UPLINK, 100, f"ipv6,dl_vlan={p.vlan},reg0={p.vlan},ipv6_dst={p.ip6}",
                               f"pop_vlan,set_field:{p.mac}->eth_dst,output:{p.port}"))
    for g in dp.gateways:
        ports = [p for p in dp.local if p.vlan == g.vlan]
        if g.vlan in dp.accept_ra and g.ip6 and ports:
            from_router = f"icmp6,icmp_type={ICMPV6_RA},dl_vlan={g.vlan},reg0={g.vlan},dl_src={g.mac}"
            flows.append(_flow(FROM_UPLINK, 200, f"{from_router},ipv6_dst={ALL_NODES}",
                               "pop_vlan," + ",".join(f"output:{p.port}" for p in ports)))
            # A solicited advertisement may come unicast (RFC 7772 asks routers to) to the address the
            # host solicited from, at the host's MAC: to that container only, at its own MAC.
            for p in ports:
                if p.ip6:
                    flows.append(_flow(FROM_UPLINK, 200, f"{from_router},ipv6_dst={p.ip6}",
                                       f"pop_vlan,set_field:{p.mac}->eth_dst,output:{p.port}"))
            flows.append(_flow(ND_PROXY, 90, f"icmp6,icmp_type={ICMPV6_NS},nd_target={LINK_LOCAL6},reg0={g.vlan}",
                               nd_advert_actions(g.mac, None, ND_FINISH, router=True)))
    gateways = {(g.vlan, g.ip6) for g in dp.gateways if g.ip6}
    answers = [ArpAnswer(p.vlan, p.ip, p.mac, p.ip6) for p in dp.local] + list(dp.remote) + list(dp.gateways)
    seen, seen6 = set(), set()
    for a in answers:  # a local endpoint wins over a stale remote record of the same address
        if (a.vlan, a.ip) not in seen:
            seen.add((a.vlan, a.ip))
            flows.append(_flow(ARP_PROXY, 100, f"arp,reg0={a.vlan},arp_tpa={a.ip}", arp_reply_actions(a.mac, a.ip)))
        if a.ip6 and (a.vlan, a.ip6) not in seen6:
            seen6.add((a.vlan, a.ip6))
            flows.append(_flow(ND_PROXY, 100, f"{nd_solicitation_match(a.ip6)},reg0={a.vlan}",
                               nd_advert_actions(a.mac, a.ip6, ND_FINISH, router=(a.vlan, a.ip6) in gateways)))
    return flows
