"""The vxlan flow table as a pure function of the desired state (no OVS here: the lab tests install it)."""

from acsnet.ovsctl.vxlan_pipeline import VxlanDatapath, VxlanGateway, VxlanPort, VxlanRoute, gateway_mac, vxlan_flows

A = VxlanPort("vh-a", 110, "100.64.1.10", "02:42:00:00:00:0a")
B_REMOTE = VxlanRoute(110, "100.64.1.11", "02:42:00:00:00:0b", "192.0.2.12")
SAME_IP_OTHER_VNI = VxlanRoute(120, "100.64.1.11", "02:42:00:00:00:0c", "192.0.2.13")


def test_each_vni_is_its_own_world_and_nothing_floods():
    flows = vxlan_flows(VxlanDatapath("acsvtep", frozenset({110, 120}), (A,), (B_REMOTE, SAME_IP_OTHER_VNI)))
    assert not any(word in f for f in flows for word in ("FLOOD", "ALL", "NORMAL"))
    to_b = [f for f in flows if "dl_dst=02:42:00:00:00:0b" in f]
    assert to_b == ["cookie=0xac6,table=10,priority=100,reg1=110,dl_dst=02:42:00:00:00:0b,"
                    "actions=set_field:110->tun_id,set_field:192.0.2.12->tun_dst,output:acsvtep"]
    answers = [f for f in flows if "arp_tpa=100.64.1.11" in f]
    assert len(answers) == 2 and {("reg1=110" in f, "02:42:00:00:00:0b" in f) for f in answers} == {(True, True), (False, False)}
    # A container may only send from its own MAC.
    assert "cookie=0xac6,table=0,priority=300,in_port=vh-a,dl_src=02:42:00:00:00:0a,actions=set_field:110->reg1,resubmit(,10)" in flows


def test_a_local_endpoint_wins_over_a_stale_remote_record_of_its_address():
    stale = VxlanRoute(110, A.ip, A.mac, "192.0.2.99")
    flows = vxlan_flows(VxlanDatapath("acsvtep", frozenset({110}), (A,), (stale,)))
    assert not any("192.0.2.99" in f for f in flows)
    assert sum(f"arp_tpa={A.ip}" in f for f in flows) == 1


def test_the_gateway_is_answered_and_reached_on_its_router_port():
    flows = vxlan_flows(VxlanDatapath("acsvtep", frozenset({110}), (A,), (), (VxlanGateway(110, "100.64.1.1", "vg110"),)))
    mac = gateway_mac(110)
    assert mac == "02:ac:5e:00:00:6e"
    assert f"cookie=0xac6,table=10,priority=100,reg1=110,dl_dst={mac},actions=output:vg110" in flows
    assert any("arp_tpa=100.64.1.1," in f and f"set_field:{mac}->arp_sha" in f for f in flows)
