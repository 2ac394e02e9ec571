"""The vlan flow table as a pure function of the desired state (no OVS here: the lab tests install it;
docs/pipeline.md shows it dumped from a lab host)."""

from acsnet.ovsctl.neighbour import arp_reply_actions
from acsnet.ovsctl.vlan_pipeline import ArpAnswer, LocalPort, VlanDatapath, vlan_flows

HOST_MAC, PEER_MAC, GATEWAY_MAC = "02:00:00:00:00:11", "02:00:00:00:00:12", "02:00:00:00:00:01"
A = LocalPort("vh-a", 217, "198.51.100.10", "02:42:00:00:00:0a")
B = LocalPort("vh-b", 217, "198.51.100.11", "02:42:00:00:00:0b")
C_OTHER_VLAN = LocalPort("vh-c", 218, "203.0.113.10", "02:42:00:00:00:0c")
REMOTE = ArpAnswer(217, "198.51.100.12", PEER_MAC)
GATEWAY = ArpAnswer(217, "198.51.100.1", GATEWAY_MAC)


def datapath(local=(A, B, C_OTHER_VLAN), remote=(REMOTE,), gateways=(GATEWAY,)) -> VlanDatapath:
    return VlanDatapath("uplink0", HOST_MAC, frozenset({217, 218}), tuple(local), tuple(remote), tuple(gateways))


def arp_answers(flows: list[str]) -> dict[tuple[str, str], str]:
    """(reg0, asked address) -> the MAC table 30 answers with."""
    answers = {}
    for f in flows:
        if f.startswith("cookie=0xac5,table=30,priority=100,"):
            reg0 = f.split("reg0=")[1].split(",")[0]
            ip = f.split("arp_tpa=")[1].split(",")[0]
            answers[(reg0, ip)] = f.split("->arp_sha")[0].rsplit("set_field:", 1)[1]
    return answers


def test_the_arp_proxy_answers_local_containers_remote_ones_and_the_gateway_each_with_its_mac():
    flows = vlan_flows(datapath())
    assert arp_answers(flows) == {("217", A.ip): A.mac, ("217", B.ip): B.mac, ("218", C_OTHER_VLAN.ip): C_OTHER_VLAN.mac,
                                  ("217", REMOTE.ip): PEER_MAC,  # a container of another host: its host's MAC
                                  ("217", GATEWAY.ip): GATEWAY_MAC}
    assert (f"cookie=0xac5,table=30,priority=100,arp,reg0=217,arp_tpa={GATEWAY.ip},actions="
            f"{arp_reply_actions(GATEWAY_MAC, GATEWAY.ip)}") in flows
    # Requests from containers go to the proxy; their replies and GARPs, and unknown addresses, go nowhere.
    assert "cookie=0xac5,table=10,priority=200,arp,arp_op=1,actions=resubmit(,30)" in flows
    assert "cookie=0xac5,table=10,priority=190,arp,actions=drop" in flows
    assert "cookie=0xac5,table=30,priority=0,actions=drop" in flows
    assert not any("FLOOD" in f or "ALL" in f for f in flows)


def test_the_reply_is_built_in_place_and_sent_back_where_the_request_came_from():
    assert arp_reply_actions(GATEWAY_MAC, GATEWAY.ip) == (
        "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:02:00:00:00:00:01->eth_src,set_field:2->arp_op,"
        "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:02:00:00:00:00:01->arp_sha,"
        "move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:198.51.100.1->arp_spa,IN_PORT")


def test_a_gateway_not_learned_yet_is_not_answered():
    flows = vlan_flows(datapath(gateways=()))
    assert ("217", GATEWAY.ip) not in arp_answers(flows)
    assert not any(GATEWAY_MAC in f for f in flows)


def test_a_local_endpoint_wins_over_a_stale_remote_record_of_its_address():
    stale = ArpAnswer(217, A.ip, PEER_MAC)
    flows = vlan_flows(datapath(remote=(stale, REMOTE)))
    assert arp_answers(flows)[("217", A.ip)] == A.mac
    assert sum(f",arp_tpa={A.ip}," in f and "table=30" in f for f in flows) == 1


def test_mac_nat_frames_leave_with_the_hosts_mac_and_arrive_rewritten_to_the_containers():
    flows = vlan_flows(datapath())
    # Out: anything not for a local container of the VLAN leaves tagged, from the host's MAC, one flow per VLAN.
    assert f"cookie=0xac5,table=10,priority=10,reg0=217,actions=set_field:{HOST_MAC}->eth_src,mod_vlan_vid:217,output:uplink0" in flows
    assert f"cookie=0xac5,table=10,priority=10,reg0=218,actions=set_field:{HOST_MAC}->eth_src,mod_vlan_vid:218,output:uplink0" in flows
    # In: an IP packet for a local container loses its tag and gets the container's MAC.
    assert (f"cookie=0xac5,table=20,priority=100,ip,dl_vlan=217,reg0=217,nw_dst={A.ip},"
            f"actions=pop_vlan,set_field:{A.mac}->eth_dst,output:vh-a") in flows
    # The switch's ARP requests for a local container are answered with the host's MAC, not the container's.
    assert (f"cookie=0xac5,table=20,priority=200,arp,arp_op=1,reg0=217,arp_tpa={A.ip},"
            f"actions={arp_reply_actions(HOST_MAC, A.ip)}") in flows
    assert not any(A.mac in f and "table=20,priority=200" in f for f in flows)
    # Only the answer to the host's gateway probe goes to NORMAL from the uplink; the rest is dropped.
    assert f"cookie=0xac5,table=20,priority=150,arp,arp_op=2,dl_dst={HOST_MAC},actions=NORMAL" in flows
    assert "cookie=0xac5,table=20,priority=0,actions=drop" in flows


def test_each_vlan_is_its_own_world_and_a_container_port_is_classified_by_its_vlan():
    flows = vlan_flows(datapath())
    assert "cookie=0xac5,table=0,priority=300,in_port=vh-a,actions=set_field:217->reg0,resubmit(,10)" in flows
    assert "cookie=0xac5,table=0,priority=300,in_port=vh-c,actions=set_field:218->reg0,resubmit(,10)" in flows
    assert "cookie=0xac5,table=0,priority=300,in_port=uplink0,dl_vlan=217,actions=set_field:217->reg0,resubmit(,20)" in flows
    # Same-host delivery is per VLAN: A reaches B straight, C (VLAN 218) is never delivered on 217.
    assert f"cookie=0xac5,table=10,priority=100,reg0=217,dl_dst={B.mac},actions=output:vh-b" in flows
    assert f"cookie=0xac5,table=10,priority=100,reg0=218,dl_dst={C_OTHER_VLAN.mac},actions=output:vh-c" in flows
    assert not any(f"reg0=217,dl_dst={C_OTHER_VLAN.mac}" in f for f in flows)
    # The host's own untagged traffic is NORMAL's.
    assert "cookie=0xac5,table=0,priority=0,actions=NORMAL" in flows


def test_remote_endpoints_are_only_arp_answers():
    """A container of another host needs no forwarding flow here: table 10's MAC NAT flow sends every
    frame not for a local container to the uplink, addressed to the MAC the proxy answered with."""
    without, with_remote = vlan_flows(datapath(remote=())), vlan_flows(datapath())
    assert set(with_remote) - set(without) == {
        f"cookie=0xac5,table=30,priority=100,arp,reg0=217,arp_tpa={REMOTE.ip},actions={arp_reply_actions(PEER_MAC, REMOTE.ip)}"}


def test_a_host_without_vlan_networks_only_switches_its_own_traffic():
    flows = vlan_flows(VlanDatapath("uplink0", HOST_MAC, frozenset(), (), (), ()))
    assert "cookie=0xac5,table=0,priority=0,actions=NORMAL" in flows
    assert not any("reg0=" in f or "in_port=" in f for f in flows)


def test_router_advertisements_reach_containers_only_on_accepting_vlans_a_unicast_one_only_its_addressee():
    """-o ipv6_ra=accept on VLAN 217: from the router's MAC, to all nodes -> every container of the VLAN;
    unicast to a container's address (the answer to the host's solicitation) -> that container, at its
    MAC. Any other advertisement (VLAN 218, another sender, unicast too) falls to the drop below them.
    Containers' own solicitations stay dropped on every VLAN."""
    a6 = LocalPort("vh-a", 217, "198.51.100.10", "02:42:00:00:00:0a", "2001:db8:217::10")
    c6 = LocalPort("vh-c", 218, "203.0.113.10", "02:42:00:00:00:0c", "2001:db8:218::10")
    gateways = (ArpAnswer(217, "198.51.100.1", GATEWAY_MAC, "2001:db8:217::1"), ArpAnswer(218, "203.0.113.1", GATEWAY_MAC, "2001:db8:218::1"))
    flows = vlan_flows(VlanDatapath("uplink0", HOST_MAC, frozenset({217, 218}), (a6, B, c6), (), gateways, frozenset({217})))
    adverts = [f for f in flows if "icmp_type=134" in f and ",table=20," in f]
    from_router = f"icmp6,icmp_type=134,dl_vlan=217,reg0=217,dl_src={GATEWAY_MAC}"
    assert sorted(adverts) == sorted([
        "cookie=0xac5,table=20,priority=190,icmp6,icmp_type=134,actions=drop",
        f"cookie=0xac5,table=20,priority=200,{from_router},ipv6_dst=ff02::1,actions=pop_vlan,output:vh-a,output:vh-b",
        f"cookie=0xac5,table=20,priority=200,{from_router},ipv6_dst=2001:db8:217::10,"
        f"actions=pop_vlan,set_field:{a6.mac}->eth_dst,output:vh-a"])
    assert "cookie=0xac5,table=10,priority=190,icmp6,icmp_type=133,actions=drop" in flows
