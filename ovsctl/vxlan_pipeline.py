"""The vxlan driver's OpenFlow pipeline on its own bridge (acsvx0), built whole from the desired state.

The bridge holds the containers' veths and one flow-based VXLAN port (remote_ip=flow, key=flow): the
remote VTEP and the VNI are set per destination by these flows, so there is no mesh of per-host tunnel
ports. The encapsulated packets leave through the host bridge (ovsbr0), which holds the VTEP address
(Open vSwitch's userspace tunnelling routes them there). reg1 carries the packet's VNI through the
tables. Nothing is flooded: ARP is answered here from the known routes, and a frame to a MAC no route
names is dropped. IPv6 (a dual-stack network) rides the same MAC routes: neighbour solicitations are
answered here too, from the same records (`acsnet.ovsctl.neighbour`), and duplicate address detection
probes are dropped. A network with a gateway has a router on every host with its containers
(`acsnet.ovsctl.router`), on port vg<VNI>, with a MAC made from the VNI (the same on every host, so a moved
container keeps its neighbour entry). Every flow has cookie 0xac6 (`openflow.FlowTable` installs them).

The tables (0 classify, 10 from a container or router, 20 from the tunnel, 30 ARP responder, 40 neighbour
advertisement, 45 its second step), each flow
as a lab host dumps it, and packet walks: docs/pipeline.md, "The vxlan bridge `acsvx0`".
tests/test_pipeline_doc.py fails when this code emits a kind of flow that document does not show, or
stops emitting one it shows.
"""

from __future__ import annotations

import dataclasses
import functools

from acsnet.ovsctl import openflow
from acsnet.ovsctl.neighbour import (ICMPV6_NS, arp_reply_actions, nd_advert_actions, nd_advert_finish_actions,
                                     nd_advert_finish_match, nd_dad_probe_match, nd_solicitation_match)

COOKIE = "0xac6"
CLASSIFY, FROM_CONTAINER, FROM_TUNNEL, ARP_RESPONDER, ND_RESPONDER, ND_FINISH = 0, 10, 20, 30, 40, 45
_flow = functools.partial(openflow.flow, COOKIE)


@dataclasses.dataclass(frozen=True)
class VxlanPort:
    """A local container port on a VNI."""

    port: str
    vni: int
    ip: str
    mac: str
    ip6: str = ""  # "" on an IPv4-only network


@dataclasses.dataclass(frozen=True)
class VxlanRoute:
    """A container on another host: its address, MAC and the VTEP it sits behind."""

    vni: int
    ip: str
    mac: str
    vtep: str
    ip6: str = ""


@dataclasses.dataclass(frozen=True)
class VxlanGateway:
    """The local router of a VNI."""

    vni: int
    ip: str
    port: str
    ip6: str = ""  # the network's IPv6 gateway, if it is dual-stack

    @property
    def mac(self) -> str:
        return gateway_mac(self.vni)


def gateway_mac(vni: int) -> str:
    return "02:ac:5e:" + ":".join(f"{b:02x}" for b in vni.to_bytes(3, "big"))


@dataclasses.dataclass(frozen=True)
class VxlanDatapath:
    tunnel: str  # the flow-based VXLAN port
    vnis: frozenset[int]  # VNIs with a network on this host
    local: tuple[VxlanPort, ...]
    remote: tuple[VxlanRoute, ...]
    gateways: tuple[VxlanGateway, ...] = ()


def vxlan_flows(dp: VxlanDatapath) -> list[str]:
    flows = [_flow(CLASSIFY, 0, "", "drop"),
             _flow(FROM_CONTAINER, 200, "arp,arp_op=1", f"resubmit(,{ARP_RESPONDER})"),
             _flow(FROM_CONTAINER, 190, "arp", "drop"),
             _flow(FROM_CONTAINER, 210, nd_dad_probe_match(), "drop"),
             _flow(FROM_CONTAINER, 200, f"icmp6,icmp_type={ICMPV6_NS}", f"resubmit(,{ND_RESPONDER})"),
             _flow(FROM_CONTAINER, 0, "", "drop"),
             _flow(FROM_TUNNEL, 0, "", "drop"),
             _flow(ARP_RESPONDER, 0, "", "drop"),
             _flow(ND_RESPONDER, 0, "", "drop"),
             _flow(ND_FINISH, 100, nd_advert_finish_match(), nd_advert_finish_actions())]
    for vni in sorted(dp.vnis):
        flows.append(_flow(CLASSIFY, 300, f"in_port={dp.tunnel},tun_id={vni}", f"set_field:{vni}->reg1,resubmit(,{FROM_TUNNEL})"))
    answered = set()
    for g in dp.gateways:
        flows.append(_flow(CLASSIFY, 300, f"in_port={g.port},dl_src={g.mac}", f"set_field:{g.vni}->reg1,resubmit(,{FROM_CONTAINER})"))
        flows.append(_flow(FROM_CONTAINER, 100, f"reg1={g.vni},dl_dst={g.mac}", f"output:{g.port}"))
        flows.append(_flow(ARP_RESPONDER, 100, f"arp,reg1={g.vni},arp_tpa={g.ip}", arp_reply_actions(g.mac, g.ip)))
        answered.add((g.vni, g.ip))
        if g.ip6:
            flows.append(_nd_answer(g.vni, g.ip6, g.mac, router=True))
            answered.add((g.vni, g.ip6))
    for p in dp.local:
        flows += vxlan_port_flows(p)
        answered.add((p.vni, p.ip))
        if p.ip6:
            answered.add((p.vni, p.ip6))
    forwarded = {(p.vni, p.mac) for p in dp.local}
    for r in dp.remote:
        forward, answer, *solicited = vxlan_route_flows(dp.tunnel, r)
        if (r.vni, r.mac) not in forwarded:  # a local endpoint wins over a stale remote record
            forwarded.add((r.vni, r.mac))
            flows.append(forward)
        if (r.vni, r.ip) not in answered:
            answered.add((r.vni, r.ip))
            flows.append(answer)
        if solicited and (r.vni, r.ip6) not in answered:
            answered.add((r.vni, r.ip6))
            flows.append(solicited[0])
    return flows


def vxlan_port_flows(p: VxlanPort) -> list[str]:
    """A local container's flows: its packets classified to its VNI, frames to its MAC (from a
    container, a router or the tunnel) out of its port, and the answers to ARP and, on a dual-stack
    network, to a solicitation for its addresses."""
    flows = [_flow(CLASSIFY, 300, f"in_port={p.port},dl_src={p.mac}", f"set_field:{p.vni}->reg1,resubmit(,{FROM_CONTAINER})"),
             _flow(FROM_CONTAINER, 100, f"reg1={p.vni},dl_dst={p.mac}", f"output:{p.port}"),
             _flow(FROM_TUNNEL, 100, f"reg1={p.vni},dl_dst={p.mac}", f"output:{p.port}"),
             _flow(ARP_RESPONDER, 100, f"arp,reg1={p.vni},arp_tpa={p.ip}", arp_reply_actions(p.mac, p.ip))]
    if p.ip6:
        flows.append(_nd_answer(p.vni, p.ip6, p.mac))
    return flows


def vxlan_route_flows(tunnel: str, r: VxlanRoute) -> list[str]:
    """A remote container's flows: its MAC through the tunnel to its VTEP, the answer to ARP for its
    address and, on a dual-stack network, to a solicitation for its IPv6 address (where a local
    endpoint or router has the same MAC or address, theirs win)."""
    flows = [_flow(FROM_CONTAINER, 100, f"reg1={r.vni},dl_dst={r.mac}",
                   f"set_field:{r.vni}->tun_id,set_field:{r.vtep}->tun_dst,output:{tunnel}"),
             _flow(ARP_RESPONDER, 100, f"arp,reg1={r.vni},arp_tpa={r.ip}", arp_reply_actions(r.mac, r.ip))]
    if r.ip6:
        flows.append(_nd_answer(r.vni, r.ip6, r.mac))
    return flows


def _nd_answer(vni: int, ip6: str, mac: str, *, router: bool = False) -> str:
    """The flow that answers a solicitation for `ip6` on the VNI with `mac` (first step; ND_FINISH ends it)."""
    return _flow(ND_RESPONDER, 100, f"{nd_solicitation_match(ip6)},reg1={vni}", nd_advert_actions(mac, ip6, ND_FINISH, router=router))
