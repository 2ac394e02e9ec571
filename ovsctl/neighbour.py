"""Neighbour answers built in flows, shared by every pipeline: the ARP reply (IPv4) and its IPv6 twin,
the neighbour advertisement that answers a neighbour solicitation (NDP, RFC 4861).

Both turn the request in hand into the answer and send it back out of the port it came in on, so no
request reaches the wire and no controller is involved.

An NDP answer takes two steps because of how Open vSwitch checks actions against a flow's match: the
target link-layer address (`nd_tll`) can only be set on a flow that matches a neighbour advertisement,
and the flow that answers matches the solicitation. So the first step (`nd_advert_actions`, on the flow
that matches the solicitation for one address) rewrites the solicitation into an advertisement — type
136, flags solicited and override (and router, for a router), option type 2 — and resubmits to a table
whose one flow (`nd_advert_finish_flow`) copies the answer's Ethernet source into the option and sends it
back. Open vSwitch recomputes the ICMPv6 checksum for every field set (tested on a kernel's neighbour
table: tests/test_neighbour_flows.py).

A solicitation from the unspecified address (`::`) is duplicate address detection: answering it would
tell the container its own address is taken. `nd_dad_probe_match` lets pipelines drop it.

`unsolicited_advert` and `router_solicitation` are the NDP frames the host sends itself: the first the
twin of `acsnet.ovsctl.arp.gratuitous_arp` (an address that appears with a new MAC), the second a
container's solicitation sent again with the host's MAC (a flow cannot rewrite its option:
`acsnet.ovsctl.vlan_pipeline`).
"""

from __future__ import annotations

import ipaddress

ICMPV6_NS, ICMPV6_NA = 135, 136
ND_OPT_TARGET_LINKADDR = 2
# RFC 4861 4.4 flags, as the first 32 bits after the ICMPv6 header (OVS's nd_reserved)
NA_ROUTER, NA_SOLICITED, NA_OVERRIDE = 0x80000000, 0x40000000, 0x20000000


def arp_reply_actions(mac: str, ip: str) -> str:
    """Turn the ARP request in hand into the reply "<ip> is at <mac>" and send it back where it came from."""
    return ",".join([
        "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
        f"set_field:{mac}->eth_src",
        "set_field:2->arp_op",
        "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]",
        f"set_field:{mac}->arp_sha",
        "move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]",
        f"set_field:{ip}->arp_spa",
        "IN_PORT",
    ])


def nd_solicitation_match(ip6: str) -> str:
    """The match of a neighbour solicitation asking for `ip6`."""
    return f"icmp6,icmp_type={ICMPV6_NS},nd_target={ipaddress.IPv6Address(ip6).compressed}"


def nd_dad_probe_match() -> str:
    """A duplicate address detection probe (source `::`): pipelines drop it at a priority above their
    answers. acsnet's IPAM already guarantees an address is held once, so silence is the right answer."""
    return f"icmp6,icmp_type={ICMPV6_NS},ipv6_src=::"


def nd_advert_actions(mac: str, ip6: str | None, finish_table: int, *, router: bool = False) -> str:
    """Turn the neighbour solicitation in hand into the advertisement "<ip6> is at <mac>" (first step:
    the second is `nd_advert_finish_flow` in `finish_table`). `ip6` None: whatever address was asked
    for (a flow matching a range of targets)."""
    flags = NA_SOLICITED | NA_OVERRIDE | (NA_ROUTER if router else 0)
    source = ("move:NXM_NX_ND_TARGET[]->NXM_NX_IPV6_SRC[]" if ip6 is None
              else f"set_field:{ipaddress.IPv6Address(ip6).compressed}->ipv6_src")
    return ",".join([
        "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
        f"set_field:{mac}->eth_src",
        "move:NXM_NX_IPV6_SRC[]->NXM_NX_IPV6_DST[]",
        source,
        f"set_field:{ICMPV6_NA}->icmpv6_type",
        "set_field:0->icmpv6_code",
        f"set_field:{flags:#x}->nd_reserved",
        f"set_field:{ND_OPT_TARGET_LINKADDR}->nd_options_type",
        f"resubmit(,{finish_table})",
    ])


def nd_advert_finish_match() -> str:
    return f"icmp6,icmp_type={ICMPV6_NA}"


def nd_advert_finish_actions() -> str:
    """Second step: the option carries the answer's MAC (already the Ethernet source); back to the asker."""
    return "move:NXM_OF_ETH_SRC[]->NXM_NX_ND_TLL[],IN_PORT"


ALL_NODES, ALL_NODES_MAC = "ff02::1", "33:33:00:00:00:01"


def unsolicited_advert(ip6: str, mac: str) -> bytes:
    """"<ip6> is at <mac>" to all nodes, override set: neighbours with an entry for <ip6> take the new MAC
    at once (RFC 4861 7.2.6), where they would keep the old one until reachability confirmation fails."""
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import Ether

    return bytes(Ether(src=mac, dst=ALL_NODES_MAC) / IPv6(src=ip6, dst=ALL_NODES, hlim=255)
                 / ICMPv6ND_NA(tgt=ip6, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=mac))


ALL_ROUTERS, ALL_ROUTERS_MAC = "ff02::2", "33:33:00:00:00:02"


def router_solicitation(ip6: str, mac: str) -> bytes:
    """"Routers, advertise to <ip6>", from <mac>, which its source link-layer option names too: a router
    that answers unicast (RFC 7772) sends to <mac>, and its neighbour entry for <ip6> holds <mac>."""
    from scapy.layers.inet6 import ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import Ether

    return bytes(Ether(src=mac, dst=ALL_ROUTERS_MAC) / IPv6(src=ip6, dst=ALL_ROUTERS, hlim=255)
                 / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=mac))
