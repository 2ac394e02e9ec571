"""How a host's subnet is made reachable: a provider interface, and its two providers.

- `hostroutes`: every host installs a kernel route `<peer host subnet> via <peer underlay address>`
  for every other host (like flannel's host-gw); for hosts on one layer-2 network. A peer's IPv6 slice
  is routed via the peer's IPv6 gateway address on the host bridge, taken as on-link (`onlink`): the
  underlay needs no IPv6 address, the peer's kernel answers the neighbour solicitation for it. A swarm
  network's IPv6 address (a /128) goes via the peer bridge's link-local address, as its /32 via the
  peer's underlay address.
- `aliyun`: each host creates the VPC route entry `<its host subnet> -> its instance` in the VPC route
  table through Alibaba Cloud's official SDK (and one for its IPv6 slice), and deletes them when it leaves.
"""

from __future__ import annotations

import abc
import logging

import netaddr

from acsnet.errors import AcsnetError, InvalidRequest
from acsnet.ovsctl import kernel_routes
from acsnet.plugins.vpc.model import HostSubnet

log = logging.getLogger(__name__)


class RouteProvider(abc.ABC):
    on_link = False  # peers are on this host's layer-2 network: their MAC reaches them (the datapath's shortcut)

    @abc.abstractmethod
    def apply(self, own: list[HostSubnet], peers: list[HostSubnet]) -> None:
        """Make the routes match: this host's subnets reachable, the peers' ones reached."""

    @abc.abstractmethod
    def withdraw(self, own: list[HostSubnet]) -> None:
        """This host leaves: whatever it advertised goes."""


class HostRoutes(RouteProvider):
    on_link = True

    def __init__(self, device: str = "ovsbr0"):
        self.device = device  # the host bridge: where a peer's IPv6 gateway is on-link

    def apply(self, own: list[HostSubnet], peers: list[HostSubnet]) -> None:
        wanted = {p.subnet: p.underlay for p in peers}
        wanted6 = {p.subnet6: _next_hop6(p) for p in peers if p.subnet6}
        current = kernel_routes.owned()
        for destination in set(current) - set(wanted) - set(wanted6):
            kernel_routes.delete(destination)
        for destination, via in wanted.items():
            if current.get(destination) != via:
                kernel_routes.replace(destination, via)
        for destination, via in wanted6.items():
            if current.get(destination) != via:
                kernel_routes.replace(destination, via, onlink_device=self.device)

    def withdraw(self, own: list[HostSubnet]) -> None:
        for destination in kernel_routes.owned():
            kernel_routes.delete(destination)


def _next_hop6(peer: HostSubnet) -> str:
    """A peer's IPv6 slice goes via its IPv6 gateway on the bridge. A swarm network's IPv6 address (a /128:
    every node holds the same gateway) goes via the peer bridge's link-local address, which the kernel
    makes from the bridge's MAC, the host's (EUI-64, the default address generation), as its /32 goes
    via the peer's underlay address (the underlay needs no IPv6 address, and a kernel takes no IPv4 next
    hop for an IPv6 route)."""
    if netaddr.IPNetwork(peer.subnet6).prefixlen == 128 and peer.mac:
        return str(netaddr.EUI(peer.mac).ipv6_link_local())
    return str(peer.gateway6)


class AliyunRoutes(RouteProvider):
    """`client` is an `aliyunsdkcore.client.AcsClient` (or anything with its do_action_with_exception)."""

    def __init__(self, client, route_table_id: str, instance_id: str):
        self.client = client
        self.route_table_id = route_table_id
        self.instance_id = instance_id
        self._advertised: set[str] = set()

    @classmethod
    def from_settings(cls, settings: dict) -> "AliyunRoutes":
        missing = [k for k in ("aliyun_access_key_id", "aliyun_access_key_secret", "aliyun_region",
                               "aliyun_route_table_id", "aliyun_instance_id") if not settings.get(k)]
        if missing:
            raise InvalidRequest(f"the aliyun route provider needs {', '.join('--' + m.replace('_', '-') for m in missing)}")
        from aliyunsdkcore.client import AcsClient

        client = AcsClient(settings["aliyun_access_key_id"], settings["aliyun_access_key_secret"], settings["aliyun_region"])
        return cls(client, settings["aliyun_route_table_id"], settings["aliyun_instance_id"])

    def _request(self, kind: str, subnet: str):
        if kind == "create":
            from aliyunsdkvpc.request.v20160428.CreateRouteEntryRequest import CreateRouteEntryRequest as Request
        else:
            from aliyunsdkvpc.request.v20160428.DeleteRouteEntryRequest import DeleteRouteEntryRequest as Request
        request = Request()
        request.set_RouteTableId(self.route_table_id)
        request.set_DestinationCidrBlock(subnet)
        if kind == "create":
            request.set_NextHopType("Instance")
        request.set_NextHopId(self.instance_id)
        return request

    def _send(self, request) -> None:
        try:
            self.client.do_action_with_exception(request)
        except Exception as e:  # the SDK's ClientException/ServerException, network errors
            code = getattr(e, "get_error_code", lambda: "")()
            if code in ("RouterEntryConflict.Duplicated", "InvalidRouteEntry.NotFound"):
                return  # already as wanted
            raise AcsnetError(f"aliyun {request.get_action_name()} {request.get_query_params().get('DestinationCidrBlock')}: {e}") from None

    def apply(self, own: list[HostSubnet], peers: list[HostSubnet]) -> None:
        for subnet in sorted(advertised_subnets(own) - self._advertised):
            self._send(self._request("create", subnet))
            self._advertised.add(subnet)
            log.info("vpc route entry %s -> %s created in %s", subnet, self.instance_id, self.route_table_id)

    def withdraw(self, own: list[HostSubnet]) -> None:
        for subnet in sorted(advertised_subnets(own) | self._advertised):
            self._send(self._request("delete", subnet))
            self._advertised.discard(subnet)


def advertised_subnets(own: list[HostSubnet]) -> set[str]:
    """What a host's route entries send to it: its subnets and its IPv6 slices."""
    return {h.subnet for h in own} | {h.subnet6 for h in own if h.subnet6}


def provider_from_settings(settings: dict) -> RouteProvider:
    if settings["vpc_routes"] == "aliyun":
        return AliyunRoutes.from_settings(settings)
    return HostRoutes(settings.get("bridge") or "ovsbr0")
