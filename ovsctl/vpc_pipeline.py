"""The vpc driver's OpenFlow pipeline, on the host bridge (ovsbr0) beside the vlan driver's.

vpc containers are ports of the host bridge, and their packets are routed by these flows: to a
container of this host, straight to its port; to another host's subnet, rewritten to that host's MAC
and out of the uplink; to anything else (the host itself, the outside), to the bridge's own port, where
the host's kernel routes it. So a packet crosses OVS once per host, as on a VLAN, instead of going
through the kernel's routing between two bridges' taps (measured before: 0.53 of native bandwidth).
The kernel keeps the same routes (`<peer host subnet> via <peer underlay>`, the gateway address on the
bridge): the host's own traffic uses them, and a peer whose MAC is not known (or a route provider whose
peers are not on the link, like a cloud VPC's route table) is reached through them.

A dual-stack network's IPv6 takes the same ways, by `ipv6_dst` where IPv4 goes by `nw_dst`: each host
holds an IPv6 slice of the network's prefix beside its IPv4 subnet, with its IPv6 gateway address on the
bridge. Neighbour solicitations (NS), from containers and from the host's kernel for its slice, are
answered here as ARP is (table 65, finished in 66: `acsnet.ovsctl.neighbour`): the gateway with the
host's MAC (as a router), a container with its own; duplicate address detection probes are dropped
unanswered (the IPAM holds each address once, and the host's own probe for its gateway address must not
meet the answer the containers get). A peer's slice is off the containers' link, so they never solicit
its addresses.

An internal network (`--internal`) carries traffic between its own containers only, on any host: its
containers are marked (reg2 = the network's first address, as a number) and may only reach a host
subnet (and, dual-stack, an IPv6 slice) of the same network; nothing from the host's kernel reaches
them, and from the uplink only the network's own addresses.

Every flow has cookie 0xac7 (`COOKIE`) and is installed with the flows of this cookie only
(`openflow.FlowTable`): the vlan driver's flows (0xac5, tables 0-30) are never touched. Table 0 is
shared: the vlan pipeline uses priorities 300 and 0 there, this one 400, 399, 260, 255, 251 and 250.

The tables (0 classify, 40 from a container, 45 from an internal network's container, 50 to a
container, 60 ARP responder, 65 and 66 neighbour advertisement), each flow as a lab host dumps it, and packet walks: docs/pipeline.md,
"The host bridge `ovsbr0`". tests/test_pipeline_doc.py fails when this code emits a kind of flow that
document does not show, or stops emitting one it shows.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress

from acsnet.ovsctl import openflow
from acsnet.ovsctl.neighbour import (ICMPV6_NS, arp_reply_actions, nd_advert_actions, nd_advert_finish_actions,
                                     nd_advert_finish_match, nd_dad_probe_match, nd_solicitation_match)

COOKIE = "0xac7"
CLASSIFY, FROM_CONTAINER, FROM_INTERNAL, TO_CONTAINER, ARP_RESPONDER, ND_RESPONDER, ND_FINISH = 0, 40, 45, 50, 60, 65, 66
_flow = functools.partial(openflow.flow, COOKIE)


@dataclasses.dataclass(frozen=True)
class VpcPort:
    port: str
    ip: str
    mac: str
    internal_network: int | None = None  # the mark of its network (its first address), if internal
    ip6: str = ""  # its IPv6 address on a dual-stack network


@dataclasses.dataclass(frozen=True)
class OwnSubnet:
    subnet: str  # CIDR
    gateway: str
    internal: "InternalNetwork | None" = None  # the network, if it is internal
    subnet6: str = ""  # a dual-stack network's IPv6 slice of this host ("" if IPv4 only)
    gateway6: str = ""


@dataclasses.dataclass(frozen=True)
class InternalNetwork:
    cidr: str
    mark: int  # its first address as a number: what reg2 carries
    members: tuple[str, ...]  # its host subnets: this host's and the live peers'
    # A dual-stack one's IPv6 prefix and its hosts' slices: this host's and the live peers'.
    cidr6: str = ""
    members6: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PeerSubnet:
    subnet: str  # CIDR
    mac: str  # the peer host's underlay MAC
    subnet6: str = ""  # its IPv6 slice, on a dual-stack network


@dataclasses.dataclass(frozen=True)
class VpcDatapath:
    uplink: str
    host_mac: str
    own: tuple[OwnSubnet, ...]
    peers: tuple[PeerSubnet, ...]  # peers reached on the link; others go through the kernel
    local: tuple[VpcPort, ...]
    # Swarm networks' addresses on other hosts: this host's containers see the whole range on their link
    # and ask for them by ARP; answered with this host's MAC, which routes them (their peers' /32s).
    routed: tuple[str, ...] = ()
    routed6: tuple[str, ...] = ()  # their IPv6 addresses, on a dual-stack swarm network: answered to solicitations


def vpc_flows(dp: VpcDatapath) -> list[str]:
    flows = [_flow(FROM_CONTAINER, 200, "arp,arp_op=1", f"resubmit(,{ARP_RESPONDER})"),
             _flow(FROM_CONTAINER, 190, "arp", "drop"),
             _flow(FROM_CONTAINER, 0, "", f"set_field:{dp.host_mac}->eth_dst,output:LOCAL"),
             _flow(TO_CONTAINER, 0, "", "drop"),
             _flow(ARP_RESPONDER, 0, "", "drop")]
    if any(own.subnet6 for own in dp.own):
        flows += [_flow(FROM_CONTAINER, 200, f"icmp6,icmp_type={ICMPV6_NS}", f"resubmit(,{ND_RESPONDER})"),
                  _flow(ND_RESPONDER, 110, nd_dad_probe_match(), "drop"),
                  _flow(ND_RESPONDER, 0, "", "drop"),
                  _flow(ND_FINISH, 100, nd_advert_finish_match(), nd_advert_finish_actions())]
    if any(own.internal for own in dp.own):
        flows += [_flow(FROM_INTERNAL, 200, "arp", f"resubmit(,{FROM_CONTAINER})"),
                  _flow(FROM_INTERNAL, 0, "", "drop")]
    if any(own.internal and own.subnet6 for own in dp.own):
        flows.append(_flow(FROM_INTERNAL, 200, f"icmp6,icmp_type={ICMPV6_NS}", f"resubmit(,{FROM_CONTAINER})"))
    for own in dp.own:
        from_uplink = f"in_port={dp.uplink},ip,vlan_tci=0x0000/0x1fff,dl_dst={dp.host_mac}"
        inbound = f"resubmit(,{TO_CONTAINER})"
        if own.internal:
            flows.append(_flow(CLASSIFY, 260, f"{from_uplink},nw_src={own.internal.cidr},nw_dst={own.subnet}", inbound))
            flows.append(_flow(FROM_INTERNAL, 110, f"ip,nw_dst={own.gateway}", "drop"))
            flows += [_flow(FROM_INTERNAL, 100, f"reg2={own.internal.mark},ip,nw_dst={member}", f"resubmit(,{FROM_CONTAINER})")
                      for member in own.internal.members]
        flows.append(_flow(CLASSIFY, 250, f"{from_uplink},nw_dst={own.subnet}", "drop" if own.internal else inbound))
        flows.append(_flow(CLASSIFY, 250, f"in_port=LOCAL,ip,nw_dst={own.subnet}", "drop" if own.internal else inbound))
        flows.append(_flow(CLASSIFY, 250, f"in_port=LOCAL,arp,arp_op=1,arp_tpa={own.subnet}", f"resubmit(,{ARP_RESPONDER})"))
        flows.append(_flow(ARP_RESPONDER, 100, f"arp,arp_tpa={own.gateway}", arp_reply_actions(dp.host_mac, own.gateway)))
        if own.subnet6:
            flows += _own_slice_flows(dp, own) if own.internal is None else _internal_slice_flows(dp, own, own.internal)
    for peer in dp.peers:
        to_peer = f"set_field:{dp.host_mac}->eth_src,set_field:{peer.mac}->eth_dst,dec_ttl,output:{dp.uplink}"
        flows.append(_flow(FROM_CONTAINER, 90, f"ip,nw_dst={peer.subnet}", to_peer))
        if peer.subnet6:
            flows.append(_flow(FROM_CONTAINER, 90, f"ipv6,ipv6_dst={_v6(peer.subnet6)}", to_peer))
    for p in dp.local:
        if p.internal_network is None:
            flows.append(_flow(CLASSIFY, 400, f"in_port={p.port},dl_src={p.mac}", f"resubmit(,{FROM_CONTAINER})"))
            flows.append(_flow(FROM_CONTAINER, 100, f"ip,nw_dst={p.ip}", f"set_field:{p.mac}->eth_dst,output:{p.port}"))
        else:
            flows.append(_flow(CLASSIFY, 400, f"in_port={p.port},dl_src={p.mac}",
                               f"set_field:{p.internal_network}->reg2,resubmit(,{FROM_INTERNAL})"))
            flows.append(_flow(FROM_CONTAINER, 100, f"reg2={p.internal_network},ip,nw_dst={p.ip}",
                               f"set_field:{p.mac}->eth_dst,output:{p.port}"))
        flows.append(_flow(CLASSIFY, 399, f"in_port={p.port}", "drop"))
        flows.append(_flow(TO_CONTAINER, 100, f"ip,nw_dst={p.ip}",
                           f"set_field:{dp.host_mac}->eth_src,set_field:{p.mac}->eth_dst,output:{p.port}"))
        flows.append(_flow(ARP_RESPONDER, 100, f"arp,arp_tpa={p.ip}", arp_reply_actions(p.mac, p.ip)))
        if p.ip6:
            ip6 = _v6(p.ip6)
            marked = "" if p.internal_network is None else f"reg2={p.internal_network},"
            flows.append(_flow(FROM_CONTAINER, 100, f"{marked}ipv6,ipv6_dst={ip6}", f"set_field:{p.mac}->eth_dst,output:{p.port}"))
            flows.append(_flow(TO_CONTAINER, 100, f"ipv6,ipv6_dst={ip6}",
                               f"set_field:{dp.host_mac}->eth_src,set_field:{p.mac}->eth_dst,output:{p.port}"))
            flows.append(_flow(ND_RESPONDER, 100, nd_solicitation_match(ip6), nd_advert_actions(p.mac, ip6, ND_FINISH)))
    # The host's own packets to another node's address (routed by the kernel, `<ip>/32 via <node>`) are
    # in the swarm range, which goes to table 50 from the host: out of the uplink above it, as routed.
    # (IPv4 only, as swarm vpc networks are for now: their AllocateNetwork refuses an IPv6 subnet.)
    local = {p.ip for p in dp.local}
    for ip in dp.routed:
        if ip not in local:  # a stale record of an address that is now this host's: its port answers
            flows.append(_flow(ARP_RESPONDER, 100, f"arp,arp_tpa={ip}", arp_reply_actions(dp.host_mac, ip)))
            flows.append(_flow(CLASSIFY, 251, f"in_port=LOCAL,ip,nw_dst={ip}", f"output:{dp.uplink}"))
    local6 = {_v6(p.ip6) for p in dp.local if p.ip6}
    for ip6 in map(_v6, dp.routed6):
        if ip6 not in local6:
            flows.append(_flow(ND_RESPONDER, 100, nd_solicitation_match(ip6), nd_advert_actions(dp.host_mac, ip6, ND_FINISH)))
    return flows


def _own_slice_flows(dp: VpcDatapath, own: OwnSubnet) -> list[str]:
    """This host's IPv6 slice: in from the uplink and from the host to table 50 (where its gateway
    address goes to the host's own port: a peer's kernel answering the host), and the host's kernel's
    solicitations for it answered here; the gateway answered to containers with the host's MAC."""
    slice6, gateway6 = _v6(own.subnet6), _v6(own.gateway6)
    inbound = f"resubmit(,{TO_CONTAINER})"
    return [
        _flow(CLASSIFY, 250, f"in_port={dp.uplink},ipv6,vlan_tci=0x0000/0x1fff,dl_dst={dp.host_mac},ipv6_dst={slice6}", inbound),
        _flow(CLASSIFY, 250, f"in_port=LOCAL,ipv6,ipv6_dst={slice6}", inbound),
        # Above the line before: a unicast solicitation from the host matches both.
        _flow(CLASSIFY, 255, f"in_port=LOCAL,icmp6,icmp_type={ICMPV6_NS},nd_target={slice6}", f"resubmit(,{ND_RESPONDER})"),
        _flow(TO_CONTAINER, 100, f"ipv6,ipv6_dst={gateway6}", "LOCAL"),
        _flow(ND_RESPONDER, 100, nd_solicitation_match(gateway6), nd_advert_actions(dp.host_mac, gateway6, ND_FINISH, router=True)),
    ]


def _internal_slice_flows(dp: VpcDatapath, own: OwnSubnet, network: InternalNetwork) -> list[str]:
    """An internal network's IPv6 slice, as its IPv4 subnet: in from the uplink only from the network's
    prefix, nothing from the host; its containers reach the network's slices only, not the host's
    gateway address (answered to their solicitations all the same: their route to the network's prefix
    goes through it), which has no way to the host's port either (so a peer's kernel, whose source
    towards this slice is its own gateway address, never learns this host's MAC for it)."""
    slice6, gateway6 = _v6(own.subnet6), _v6(own.gateway6)
    from_uplink = f"in_port={dp.uplink},ipv6,vlan_tci=0x0000/0x1fff,dl_dst={dp.host_mac}"
    return [
        _flow(CLASSIFY, 260, f"{from_uplink},ipv6_src={_v6(network.cidr6)},ipv6_dst={slice6}", f"resubmit(,{TO_CONTAINER})"),
        _flow(CLASSIFY, 250, f"{from_uplink},ipv6_dst={slice6}", "drop"),
        _flow(CLASSIFY, 250, f"in_port=LOCAL,ipv6,ipv6_dst={slice6}", "drop"),
        _flow(CLASSIFY, 255, f"in_port=LOCAL,icmp6,icmp_type={ICMPV6_NS},nd_target={slice6}", f"resubmit(,{ND_RESPONDER})"),
        _flow(FROM_INTERNAL, 110, f"ipv6,ipv6_dst={gateway6}", "drop"),
        *(_flow(FROM_INTERNAL, 100, f"reg2={network.mark},ipv6,ipv6_dst={_v6(member)}", f"resubmit(,{FROM_CONTAINER})")
          for member in network.members6),
        _flow(ND_RESPONDER, 100, nd_solicitation_match(gateway6), nd_advert_actions(dp.host_mac, gateway6, ND_FINISH, router=True)),
    ]


def _v6(text: str) -> str:
    """An IPv6 address or prefix as OVS prints it (compressed), so that flows compare equal to dumps."""
    return str(ipaddress.IPv6Network(text, strict=False)) if "/" in text else ipaddress.IPv6Address(text).compressed
