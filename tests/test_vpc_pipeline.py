"""The vpc flow table as a pure function of the desired state (the lab tests install and use it)."""

from acsnet.ovsctl.vpc_pipeline import InternalNetwork, OwnSubnet, PeerSubnet, VpcDatapath, VpcPort, vpc_flows

HOST_MAC, PEER_MAC = "02:00:00:00:00:11", "02:00:00:00:00:12"
C1 = VpcPort("vh-c1", "100.70.1.10", "02:42:64:46:01:0a")
DP = VpcDatapath("uplink0", HOST_MAC, (OwnSubnet("100.70.1.0/24", "100.70.1.1"),),
                 (PeerSubnet("100.70.2.0/24", PEER_MAC),), (C1,))


def test_peers_are_reached_straight_through_the_uplink_and_everything_else_through_the_host():
    flows = vpc_flows(DP)
    assert ("cookie=0xac7,table=40,priority=90,ip,nw_dst=100.70.2.0/24,actions="
            f"set_field:{HOST_MAC}->eth_src,set_field:{PEER_MAC}->eth_dst,dec_ttl,output:uplink0") in flows
    assert f"cookie=0xac7,table=40,priority=0,actions=set_field:{HOST_MAC}->eth_dst,output:LOCAL" in flows
    # Only untagged frames for this host's MAC and subnet come in from the uplink: the vlan driver's
    # tagged frames and the host's own traffic are not the vpc pipeline's.
    assert (f"cookie=0xac7,table=0,priority=250,in_port=uplink0,ip,vlan_tci=0x0000/0x1fff,dl_dst={HOST_MAC},"
            "nw_dst=100.70.1.0/24,actions=resubmit(,50)") in flows
    assert not any("NORMAL" in f or "FLOOD" in f for f in flows)


def test_a_container_sends_from_its_own_mac_only_and_arp_never_leaves_the_host():
    flows = vpc_flows(DP)
    assert f"cookie=0xac7,table=0,priority=400,in_port=vh-c1,dl_src={C1.mac},actions=resubmit(,40)" in flows
    assert "cookie=0xac7,table=0,priority=399,in_port=vh-c1,actions=drop" in flows
    answers = [f for f in flows if "table=60,priority=100" in f]
    assert len(answers) == 2 and any(f"set_field:{HOST_MAC}->arp_sha" in f and "arp_tpa=100.70.1.1," in f for f in answers)


def test_without_on_link_peers_the_kernel_routes_every_other_subnet():
    flows = vpc_flows(VpcDatapath("uplink0", HOST_MAC, DP.own, (), (C1,)))
    assert not any("uplink0" in f and "output" in f for f in flows)


def test_the_vlan_pipelines_table_zero_priorities_are_left_alone():
    flows = vpc_flows(DP)
    priorities = {int(f.split("priority=")[1].split(",")[0]) for f in flows if ",table=0," in f}
    assert priorities.isdisjoint({300, 0}), priorities


def test_an_internal_networks_containers_reach_its_host_subnets_only():
    network = InternalNetwork("100.70.0.0/16", 0x64460000, ("100.70.1.0/24", "100.70.2.0/24"))
    other = VpcPort("vh-o1", "100.80.1.10", "02:42:64:50:01:0a")
    internal_port = VpcPort("vh-c1", C1.ip, C1.mac, network.mark)
    flows = vpc_flows(VpcDatapath("uplink0", HOST_MAC, (OwnSubnet("100.70.1.0/24", "100.70.1.1", network),
                                                         OwnSubnet("100.80.1.0/24", "100.80.1.1")),
                                  (PeerSubnet("100.70.2.0/24", PEER_MAC),), (internal_port, other)))
    # Its containers are marked with their network and may only go to its host subnets, not the host.
    assert (f"cookie=0xac7,table=0,priority=400,in_port=vh-c1,dl_src={C1.mac},"
            f"actions=set_field:{network.mark}->reg2,resubmit(,45)") in flows
    allowed = sorted(f.split("nw_dst=")[1].split(",")[0] for f in flows if "table=45,priority=100," in f)
    assert allowed == ["100.70.1.0/24", "100.70.2.0/24"]
    assert "cookie=0xac7,table=45,priority=110,ip,nw_dst=100.70.1.1,actions=drop" in flows
    assert "cookie=0xac7,table=45,priority=0,actions=drop" in flows
    # Only packets of its own network reach its containers: marked ones here, its own range from the uplink.
    assert (f"cookie=0xac7,table=40,priority=100,reg2={network.mark},ip,nw_dst={C1.ip},"
            f"actions=set_field:{C1.mac}->eth_dst,output:vh-c1") in flows
    assert not any(f"table=40,priority=100,ip,nw_dst={C1.ip}," in f for f in flows)
    assert (f"cookie=0xac7,table=0,priority=260,in_port=uplink0,ip,vlan_tci=0x0000/0x1fff,dl_dst={HOST_MAC},"
            "nw_src=100.70.0.0/16,nw_dst=100.70.1.0/24,actions=resubmit(,50)") in flows
    assert "cookie=0xac7,table=0,priority=250,in_port=LOCAL,ip,nw_dst=100.70.1.0/24,actions=drop" in flows
    # The network beside it is untouched.
    assert "cookie=0xac7,table=0,priority=250,in_port=LOCAL,ip,nw_dst=100.80.1.0/24,actions=resubmit(,50)" in flows
    assert f"cookie=0xac7,table=0,priority=400,in_port=vh-o1,dl_src={other.mac},actions=resubmit(,40)" in flows


C6 = VpcPort("vh-c6", "100.82.0.2", "02:42:64:52:00:02", None, "fd00:82::2")
DUAL = VpcDatapath("uplink0", HOST_MAC, (OwnSubnet("100.82.0.0/24", "100.82.0.1", None, "fd00:82::/80", "fd00:82::1"),),
                   (PeerSubnet("100.82.1.0/24", PEER_MAC, "fd00:82:0:0:1::/80"),), (C6,))


def test_a_dual_stack_slice_is_routed_as_its_ipv4_subnet_and_solicitations_are_answered_by_flows():
    flows = vpc_flows(DUAL)
    assert ("cookie=0xac7,table=40,priority=90,ipv6,ipv6_dst=fd00:82:0:0:1::/80,actions="
            f"set_field:{HOST_MAC}->eth_src,set_field:{PEER_MAC}->eth_dst,dec_ttl,output:uplink0") in flows
    assert (f"cookie=0xac7,table=0,priority=250,in_port=uplink0,ipv6,vlan_tci=0x0000/0x1fff,dl_dst={HOST_MAC},"
            "ipv6_dst=fd00:82::/80,actions=resubmit(,50)") in flows
    assert f"cookie=0xac7,table=40,priority=100,ipv6,ipv6_dst=fd00:82::2,actions=set_field:{C6.mac}->eth_dst,output:vh-c6" in flows
    # Solicitations from containers and from the host for the slice go to the responder, which answers
    # the gateway as a router with the host's MAC and a container with its own, and drops DAD probes.
    assert "cookie=0xac7,table=40,priority=200,icmp6,icmp_type=135,actions=resubmit(,65)" in flows
    assert ("cookie=0xac7,table=0,priority=255,in_port=LOCAL,icmp6,icmp_type=135,nd_target=fd00:82::/80,"
            "actions=resubmit(,65)") in flows
    gateway = [f for f in flows if "table=65,priority=100" in f and "nd_target=fd00:82::1," in f]
    assert len(gateway) == 1 and f"set_field:{HOST_MAC}->eth_src" in gateway[0] and "0xe0000000->nd_reserved" in gateway[0]
    container = [f for f in flows if "table=65,priority=100" in f and "nd_target=fd00:82::2," in f]
    assert len(container) == 1 and f"set_field:{C6.mac}->eth_src" in container[0] and "0x60000000->nd_reserved" in container[0]
    assert "cookie=0xac7,table=65,priority=110,icmp6,icmp_type=135,ipv6_src=::,actions=drop" in flows
    assert not any("NORMAL" in f or "FLOOD" in f for f in flows)


def test_an_ipv4_only_host_has_no_ipv6_flow():
    assert not any("icmp6" in f or "ipv6" in f or "table=65" in f for f in vpc_flows(DP))


def test_a_swarm_networks_addresses_on_other_nodes_are_answered_by_this_host_and_sent_to_their_node():
    """A swarm vpc network: its whole range is this host's link (the manager's gateway on every node), and
    each address of another node is a /32 peer and an ARP answer with this host's MAC (which routes it)."""
    here = VpcPort("vh-s1", "100.87.0.2", "02:42:64:57:00:02")
    dp = VpcDatapath("uplink0", HOST_MAC, (OwnSubnet("100.87.0.0/24", "100.87.0.1"),),
                     (PeerSubnet("100.87.0.3/32", PEER_MAC),), (here,), ("100.87.0.3", here.ip))
    flows = vpc_flows(dp)
    assert ("cookie=0xac7,table=40,priority=90,ip,nw_dst=100.87.0.3/32,actions="
            f"set_field:{HOST_MAC}->eth_src,set_field:{PEER_MAC}->eth_dst,dec_ttl,output:uplink0") in flows
    answers = [f for f in flows if "table=60,priority=100" in f]
    assert any("arp_tpa=100.87.0.3," in f and f"set_field:{HOST_MAC}->arp_sha" in f for f in answers)
    # A record of another node left for an address that is now this host's: its own port answers, once.
    assert [f for f in answers if f"arp_tpa={here.ip}," in f] == [
        f for f in answers if f"arp_tpa={here.ip}," in f and f"set_field:{here.mac}->arp_sha" in f] != []


def test_an_internal_dual_stack_networks_containers_reach_its_ipv6_slices_only():
    network = InternalNetwork("100.86.0.0/16", 0x64560000, ("100.86.0.0/24", "100.86.1.0/24"), "fd00:86::/64",
                              ("fd00:86::/80", "fd00:86:0:0:1::/80"))
    port = VpcPort("vh-i6", "100.86.0.2", "02:42:64:56:00:02", network.mark, "fd00:86::2")
    flows = vpc_flows(VpcDatapath("uplink0", HOST_MAC, (OwnSubnet("100.86.0.0/24", "100.86.0.1", network, "fd00:86::/80",
                                                                  "fd00:86::1"),),
                                  (PeerSubnet("100.86.1.0/24", PEER_MAC, "fd00:86:0:0:1::/80"),), (port,)))
    allowed = {f.split("ipv6_dst=")[1].split(",")[0] for f in flows if "table=45,priority=100," in f and "ipv6" in f}
    assert allowed == {"fd00:86::/80", "fd00:86:0:0:1::/80"}
    assert "cookie=0xac7,table=45,priority=110,ipv6,ipv6_dst=fd00:86::1,actions=drop" in flows
    assert "cookie=0xac7,table=45,priority=200,icmp6,icmp_type=135,actions=resubmit(,40)" in flows
    # Delivered only from its own network; in from the uplink only from the network's prefix; nothing
    # from the host, and no way from the uplink to the host's gateway address.
    assert (f"cookie=0xac7,table=40,priority=100,reg2={network.mark},ipv6,ipv6_dst=fd00:86::2,"
            f"actions=set_field:{port.mac}->eth_dst,output:vh-i6") in flows
    assert not any("table=40,priority=100,ipv6,ipv6_dst=fd00:86::2," in f for f in flows)
    assert (f"cookie=0xac7,table=0,priority=260,in_port=uplink0,ipv6,vlan_tci=0x0000/0x1fff,dl_dst={HOST_MAC},"
            "ipv6_src=fd00:86::/64,ipv6_dst=fd00:86::/80,actions=resubmit(,50)") in flows
    assert (f"cookie=0xac7,table=0,priority=250,in_port=uplink0,ipv6,vlan_tci=0x0000/0x1fff,dl_dst={HOST_MAC},"
            "ipv6_dst=fd00:86::/80,actions=drop") in flows
    assert "cookie=0xac7,table=0,priority=250,in_port=LOCAL,ipv6,ipv6_dst=fd00:86::/80,actions=drop" in flows
    assert not any("table=50" in f and "ipv6_dst=fd00:86::1," in f for f in flows)


def test_a_dual_stack_swarm_networks_ipv6_addresses_on_other_nodes_are_answered_by_this_host_and_sent_to_their_node():
    """A dual-stack swarm vpc network: its whole IPv6 prefix is this host's link too (the manager's IPv6
    gateway on every node), each IPv6 address of another node a /128 peer and a neighbour advertisement
    with this host's MAC; this host's own address answered by its port only."""
    here = VpcPort("vh-s1", "100.87.0.2", "02:42:64:57:00:02", None, "fd00:87::2")
    dp = VpcDatapath("uplink0", HOST_MAC, (OwnSubnet("100.87.0.0/24", "100.87.0.1", None, "fd00:87::/64", "fd00:87::1"),),
                     (PeerSubnet("100.87.0.3/32", PEER_MAC, "fd00:87::3/128"),), (here,), ("100.87.0.3",),
                     ("fd00:87::3", "fd00:87::2"))
    flows = vpc_flows(dp)
    assert ("cookie=0xac7,table=40,priority=90,ipv6,ipv6_dst=fd00:87::3/128,actions="
            f"set_field:{HOST_MAC}->eth_src,set_field:{PEER_MAC}->eth_dst,dec_ttl,output:uplink0") in flows
    assert (f"cookie=0xac7,table=0,priority=250,in_port=uplink0,ipv6,vlan_tci=0x0000/0x1fff,dl_dst={HOST_MAC},"
            "ipv6_dst=fd00:87::/64,actions=resubmit(,50)") in flows
    answers = [f for f in flows if "table=65,priority=100" in f]
    peer = [f for f in answers if "nd_target=fd00:87::3," in f]
    assert len(peer) == 1 and f"set_field:{HOST_MAC}->eth_src" in peer[0] and "0x60000000->nd_reserved" in peer[0]
    gateway = [f for f in answers if "nd_target=fd00:87::1," in f]
    assert len(gateway) == 1 and "0xe0000000->nd_reserved" in gateway[0]  # as a router
    mine = [f for f in answers if "nd_target=fd00:87::2," in f]
    assert len(mine) == 1 and f"set_field:{here.mac}->eth_src" in mine[0]


def test_the_hosts_own_packets_to_another_nodes_swarm_address_go_out_of_the_uplink_not_to_table_50():
    """The host's kernel routes another node's swarm address (`<ip>/32 via <node>`) out of the bridge's
    own port; that address is in the swarm range, which goes from the host to table 50, where only this
    host's containers are: above that, out of the uplink as the kernel addressed it. An address that is
    this host's own again (a stale record) still goes to its port."""
    here = VpcPort("vh-s1", "100.87.0.2", "02:42:64:57:00:02")
    dp = VpcDatapath("uplink0", HOST_MAC, (OwnSubnet("100.87.0.0/24", "100.87.0.1"),),
                     (PeerSubnet("100.87.0.3/32", PEER_MAC),), (here,), ("100.87.0.3", here.ip))
    flows = vpc_flows(dp)
    assert "cookie=0xac7,table=0,priority=251,in_port=LOCAL,ip,nw_dst=100.87.0.3,actions=output:uplink0" in flows
    assert "cookie=0xac7,table=0,priority=250,in_port=LOCAL,ip,nw_dst=100.87.0.0/24,actions=resubmit(,50)" in flows
    assert [f for f in flows if "priority=251" in f and f"={here.ip}," in f] == []
