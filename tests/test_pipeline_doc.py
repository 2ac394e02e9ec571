"""docs/pipeline.md against the code: every kind of flow the pipelines emit is described there, and the
document describes no kind of flow they no longer emit.

A kind of flow is (bridge, cookie, table, priority, the names of the fields it matches): the document's
dump lines are real `ovs-ofctl dump-flows` output, so values differ from the ones here (port numbers,
MACs), but which fields a flow matches and where it sits do not. The desired states below take every
branch of `vlan_flows`, `vxlan_flows` and `vpc_flows`; a new branch needs its state here and its flow,
dumped from a lab host, in the document. Pure functions and a file: no OVS, no lab.
"""

from __future__ import annotations

import pathlib
import re

from acsnet.ovsctl import openflow
from acsnet.ovsctl.vlan_pipeline import COOKIE as VLAN_COOKIE, ArpAnswer, LocalPort, VlanDatapath, vlan_flows
from acsnet.ovsctl.vpc_pipeline import COOKIE as VPC_COOKIE, InternalNetwork, OwnSubnet, PeerSubnet, VpcDatapath, VpcPort, vpc_flows
from acsnet.ovsctl.vxlan_pipeline import COOKIE as VXLAN_COOKIE, VxlanDatapath, VxlanGateway, VxlanPort, VxlanRoute, vxlan_flows

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "pipeline.md"
HOST_BRIDGE, VXLAN_BRIDGE = "ovsbr0", "acsvx0"
HOST_MAC, PEER_MAC = "02:00:00:00:00:11", "02:00:00:00:00:12"

# A dump line as `ovs-ofctl --no-stats dump-flows` prints it (table 0 is printed without `table=`),
# optionally numbered ("3. cookie=...") as the document numbers them.
DUMP_LINE = re.compile(r"^\s*(?:\d+\.\s+)?cookie=(?P<cookie>0x[0-9a-f]+), (?:table=(?P<table>\d+), )?"
                       r"priority=(?P<priority>\d+)(?:,(?P<match>\S+))? actions=\S+$")
BRIDGE_HEADING = re.compile(r"^## .*`(?P<bridge>[a-z0-9]+)`")


def vlan_states() -> list[VlanDatapath]:
    a = LocalPort("vh-a", 217, "198.51.100.10", "02:42:00:00:00:0a")
    b = LocalPort("vh-b", 217, "198.51.100.11", "02:42:00:00:00:0b")
    other_vlan = LocalPort("vh-c", 218, "203.0.113.10", "02:42:00:00:00:0c")
    remote = ArpAnswer(217, "198.51.100.12", PEER_MAC)
    stale = ArpAnswer(217, a.ip, PEER_MAC)  # a local endpoint's address, still recorded on another host
    gateway = ArpAnswer(217, "198.51.100.1", "02:00:00:00:00:01")
    dual_stack = (LocalPort("vh-a", 217, "198.51.100.10", "02:42:00:00:00:0a", "2001:db8:217::10"),
                  ArpAnswer(217, "198.51.100.12", PEER_MAC, "2001:db8:217::12"),
                  ArpAnswer(217, "198.51.100.1", "02:00:00:00:00:01", "2001:db8:217::1"))
    return [VlanDatapath("uplink0", HOST_MAC, frozenset(), (), (), ()),
            VlanDatapath("uplink0", HOST_MAC, frozenset({217}), dual_stack[:1], dual_stack[1:2], dual_stack[2:]),
            VlanDatapath("uplink0", HOST_MAC, frozenset({217}), dual_stack[:1], dual_stack[1:2], dual_stack[2:],
                         accept_ra=frozenset({217})),  # -o ipv6_ra=accept
            VlanDatapath("uplink0", HOST_MAC, frozenset({217, 218}), (a, b, other_vlan), (remote, stale), ()),  # gateway not learned
            VlanDatapath("uplink0", HOST_MAC, frozenset({217, 218}), (a, b, other_vlan), (remote, stale), (gateway,))]


def vxlan_states() -> list[VxlanDatapath]:
    a = VxlanPort("vh-a", 110, "100.64.1.10", "02:42:00:00:01:0a")
    internal = VxlanPort("vh-i", 120, "100.64.2.10", "02:42:00:00:02:0a")
    remote = VxlanRoute(110, "100.64.1.12", "02:42:00:00:01:0c", "192.0.2.12")
    remote_internal = VxlanRoute(120, "100.64.2.11", "02:42:00:00:02:0b", "192.0.2.12")
    stale = VxlanRoute(110, a.ip, a.mac, "192.0.2.99")
    gateway = VxlanGateway(110, "100.64.1.1", "vg110")  # a published port changes no flow: it is nftables'
    dual_stack = (VxlanPort("vh-a", 110, "100.64.1.10", "02:42:00:00:01:0a", "2001:db8:110::10"),
                  VxlanRoute(110, "100.64.1.12", "02:42:00:00:01:0c", "192.0.2.12", "2001:db8:110::12"),
                  VxlanGateway(110, "100.64.1.1", "vg110", "2001:db8:110::1"))
    return [VxlanDatapath("acsvtep", frozenset(), (), ()),
            VxlanDatapath("acsvtep", frozenset({120}), (internal,), (remote_internal,)),  # --internal: no gateway
            VxlanDatapath("acsvtep", frozenset({110, 120}), (a, internal), (remote, remote_internal, stale), (gateway,)),
            VxlanDatapath("acsvtep", frozenset({110}), dual_stack[:1], dual_stack[1:2], dual_stack[2:])]


def vpc_states() -> list[VpcDatapath]:
    internal_network = InternalNetwork("100.81.0.0/16", 0x64510000, ("100.81.0.0/24", "100.81.1.0/24"))
    own = (OwnSubnet("100.80.0.0/24", "100.80.0.1"), OwnSubnet("100.81.0.0/24", "100.81.0.1", internal_network))
    ports = (VpcPort("vh-a", "100.80.0.2", "02:42:00:00:03:02"),
             VpcPort("vh-q", "100.81.0.2", "02:42:00:00:04:02", internal_network.mark))
    peers = (PeerSubnet("100.80.1.0/24", PEER_MAC), PeerSubnet("100.81.1.0/24", PEER_MAC))
    dual_stack = VpcDatapath("uplink0", HOST_MAC, (OwnSubnet("100.82.0.0/24", "100.82.0.1", None, "fd00:82::/80", "fd00:82::1"),),
                             (PeerSubnet("100.82.1.0/24", PEER_MAC, "fd00:82:0:0:1::/80"),),
                             (VpcPort("vh-6", "100.82.0.2", "02:42:00:00:05:02", None, "fd00:82::2"),))
    internal6 = InternalNetwork("100.86.0.0/16", 0x64560000, ("100.86.0.0/24", "100.86.1.0/24"), "fd00:86::/64",
                                ("fd00:86::/80", "fd00:86:0:0:1::/80"))
    internal_dual_stack = VpcDatapath(
        "uplink0", HOST_MAC, (OwnSubnet("100.86.0.0/24", "100.86.0.1", internal6, "fd00:86::/80", "fd00:86::1"),),
        (PeerSubnet("100.86.1.0/24", PEER_MAC, "fd00:86:0:0:1::/80"),),
        (VpcPort("vh-i6", "100.86.0.2", "02:42:00:00:06:02", internal6.mark, "fd00:86::2"),))
    swarm = VpcDatapath("uplink0", HOST_MAC, (OwnSubnet("100.88.0.0/24", "100.88.0.1"),),
                        (PeerSubnet("100.88.0.3/32", PEER_MAC),), (VpcPort("vh-s", "100.88.0.2", "02:42:00:00:07:02"),),
                        ("100.88.0.3",))  # --scope swarm: an address on another node
    return [VpcDatapath("uplink0", HOST_MAC, (), (), ()),
            VpcDatapath("uplink0", HOST_MAC, own[:1], (), ports[:1]),  # peers not on the link: the kernel routes
            VpcDatapath("uplink0", HOST_MAC, own, peers, ports),
            dual_stack, internal_dual_stack, swarm]  # --internal --ipv6


def kind(bridge: str, cookie: str, table: int, priority: int, match: str) -> tuple:
    fields = frozenset(part.split("=", 1)[0] for part in match.split(",") if part)
    return bridge, cookie, table, priority, fields


def emitted_kinds() -> dict[tuple, str]:
    """Every kind of flow the pipelines emit for the states above, with one flow of each kind."""
    kinds = {}
    for bridge, cookie, flows in ((HOST_BRIDGE, VLAN_COOKIE, [f for s in vlan_states() for f in vlan_flows(s)]),
                                  (VXLAN_BRIDGE, VXLAN_COOKIE, [f for s in vxlan_states() for f in vxlan_flows(s)]),
                                  (HOST_BRIDGE, VPC_COOKIE, [f for s in vpc_states() for f in vpc_flows(s)])):
        for flow in flows:
            assert flow.startswith(f"cookie={cookie},"), flow
            table, priority, match = (openflow.flow_identity(flow).split(",", 2) + [""])[:3]
            kinds.setdefault(kind(bridge, cookie, int(table.removeprefix("table=")),
                                  int(priority.removeprefix("priority=")), match), flow)
    return kinds


def documented_kinds(text: str) -> dict[tuple, str]:
    """Every kind of flow the document's dump lines show, each under the bridge section it is in."""
    kinds, bridge = {}, None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            heading = BRIDGE_HEADING.match(line)
            bridge = heading["bridge"] if heading and heading["bridge"] in (HOST_BRIDGE, VXLAN_BRIDGE) else None
            continue
        dump = DUMP_LINE.match(line)
        if not dump:
            assert not re.match(r"^\s*(?:\d+\.\s+)?cookie=0x", line), f"docs/pipeline.md:{number}: not a dump line: {line!r}"
            continue
        assert bridge, f"docs/pipeline.md:{number}: a dump line outside a bridge's section: {line!r}"
        kinds.setdefault(kind(bridge, dump["cookie"], int(dump["table"] or 0), int(dump["priority"]), dump["match"] or ""),
                         f"docs/pipeline.md:{number}: {line.strip()}")
    return kinds


def describe(k: tuple) -> str:
    bridge, cookie, table, priority, fields = k
    return f"{bridge} cookie={cookie} table={table} priority={priority} matching {','.join(sorted(fields)) or 'anything'}"


def test_every_flow_the_pipelines_emit_is_described_in_the_document():
    emitted, documented = emitted_kinds(), documented_kinds(DOC.read_text())
    undocumented = [f"{describe(k)}, e.g. {flow}" for k, flow in emitted.items() if k not in documented]
    assert not undocumented, ("flows the code emits that docs/pipeline.md does not describe (add a dump line "
                              "from a lab host and a note):\n" + "\n".join(undocumented))


def test_the_document_describes_no_flow_the_pipelines_do_not_emit():
    emitted, documented = emitted_kinds(), documented_kinds(DOC.read_text())
    stale = [f"{describe(k)}, at {where}" for k, where in documented.items() if k not in emitted]
    assert not stale, "flows docs/pipeline.md describes that the code no longer emits:\n" + "\n".join(stale)


def test_the_check_sees_a_flow_of_a_new_priority_and_one_of_a_new_match():
    """The comparison itself: what a changed pipeline would look like to it."""
    documented = documented_kinds(DOC.read_text())
    assert kind(HOST_BRIDGE, VLAN_COOKIE, 10, 100, "reg0=217,dl_dst=02:42:00:00:00:0a") in documented
    assert kind(HOST_BRIDGE, VLAN_COOKIE, 10, 101, "reg0=217,dl_dst=02:42:00:00:00:0a") not in documented
    assert kind(HOST_BRIDGE, VLAN_COOKIE, 10, 100, "reg0=217,dl_dst=02:42:00:00:00:0a,ip") not in documented
    assert kind(VXLAN_BRIDGE, VLAN_COOKIE, 10, 100, "reg0=217,dl_dst=02:42:00:00:00:0a") not in documented
