"""The vpc route providers' requests. Alibaba Cloud cannot be reached from here: the aliyun provider is
checked against the official SDK's request objects it hands to the client (faked: it records them)."""

import pytest

from acsnet.errors import AcsnetError, InvalidRequest
from acsnet.plugins.vpc.model import HostSubnet
from acsnet.plugins.vpc.routes import AliyunRoutes, provider_from_settings

OWN = HostSubnet("h1", "100.70.0.0/16", "100.70.3.0/24", "192.0.2.11")


class RecordingClient:
    """Stands in for aliyunsdkcore.client.AcsClient: keeps what would be sent."""

    def __init__(self, fail_with=None):
        self.sent = []
        self.fail_with = fail_with

    def do_action_with_exception(self, request):
        self.sent.append((request.get_action_name(), request.get_version(), request.get_query_params()))
        if self.fail_with:
            raise self.fail_with
        return b"{}"


def test_a_host_advertises_its_subnet_once_and_withdraws_it():
    client = RecordingClient()
    routes = AliyunRoutes(client, "vtb-123", "i-abc")
    routes.apply([OWN], peers=[HostSubnet("h2", "100.70.0.0/16", "100.70.4.0/24", "192.0.2.12")])
    routes.apply([OWN], peers=[])
    assert client.sent == [("CreateRouteEntry", "2016-04-28", {"RouteTableId": "vtb-123", "DestinationCidrBlock": "100.70.3.0/24",
                                                               "NextHopType": "Instance", "NextHopId": "i-abc"})]
    routes.withdraw([OWN])
    assert client.sent[-1] == ("DeleteRouteEntry", "2016-04-28", {"RouteTableId": "vtb-123", "DestinationCidrBlock": "100.70.3.0/24",
                                                                  "NextHopId": "i-abc"})


def test_errors_of_the_cloud_are_named_and_duplicates_are_fine():
    from aliyunsdkcore.acs_exception.exceptions import ServerException

    AliyunRoutes(RecordingClient(ServerException("RouterEntryConflict.Duplicated", "exists")), "vtb-1", "i-1").apply([OWN], [])
    with pytest.raises(AcsnetError) as e:
        AliyunRoutes(RecordingClient(ServerException("Forbidden.RAM", "no permission")), "vtb-1", "i-1").apply([OWN], [])
    assert "CreateRouteEntry 100.70.3.0/24" in e.value.message and "no permission" in e.value.message


def test_the_provider_needs_its_settings():
    with pytest.raises(InvalidRequest) as e:
        provider_from_settings({"vpc_routes": "aliyun", "aliyun_region": "cn-hangzhou"})
    assert "--aliyun-access-key-id" in e.value.message and "--aliyun-route-table-id" in e.value.message


def test_a_dual_stack_host_advertises_its_ipv6_slice_beside_its_subnet():
    client = RecordingClient()
    routes = AliyunRoutes(client, "vtb-123", "i-abc")
    own = HostSubnet("h1", "100.70.0.0/16", "100.70.3.0/24", "192.0.2.11", network6="fd00:70::/64", subnet6="fd00:70:0:0:3::/80")
    routes.apply([own], peers=[])
    routes.apply([own], peers=[])
    assert [(action, params["DestinationCidrBlock"]) for action, _, params in client.sent] == [
        ("CreateRouteEntry", "100.70.3.0/24"), ("CreateRouteEntry", "fd00:70:0:0:3::/80")]
    routes.withdraw([own])
    assert [params["DestinationCidrBlock"] for action, _, params in client.sent if action == "DeleteRouteEntry"] == [
        "100.70.3.0/24", "fd00:70:0:0:3::/80"]


def test_a_swarm_networks_ipv6_address_goes_via_the_peer_bridges_link_local_address():
    """A dual-stack swarm vpc network's IPv6 address on another node (a /128) is routed via that node's
    bridge's link-local address, made from the MAC in its record (EUI-64), as its /32 goes via the node's
    underlay address; a peer's IPv6 slice via its IPv6 gateway, as before."""
    from acsnet.plugins.vpc.routes import _next_hop6

    swarm_peer = HostSubnet("h2", "100.87.0.0/24", "100.87.0.3/32", "192.0.2.12", mac="66:76:e9:60:45:14",
                            network6="fd00:87::/64", subnet6="fd00:87::3/128")
    assert _next_hop6(swarm_peer) == "fe80::6476:e9ff:fe60:4514"
    slice_peer = HostSubnet("h2", "100.70.0.0/16", "100.70.4.0/24", "192.0.2.12", mac="66:76:e9:60:45:14",
                            network6="fd00:70::/64", subnet6="fd00:70:0:0:4::/80")
    assert _next_hop6(slice_peer) == "fd00:70::4:0:0:1"
