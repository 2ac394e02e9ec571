"""What the segment drivers (vlan, vxlan) share of the NetworkDriver protocol: endpoints are veths on
the driver's bridge, with the address the IPAM gave and a MAC derived from it."""

from __future__ import annotations

import time

import netaddr

from plugins.driver import NetworkCapabilities, NetworkDriver
from plugins.errors import InvalidRequest
from plugins.protocol import EndpointCreate, EndpointInterface, EndpointRef, JoinRequest, JoinResult, NetworkCreate
from plugins.segments.agent import SegmentAgent
from plugins.segments.model import SegmentEndpoint


def mac_for(ip: netaddr.IPAddress) -> str:
    """A locally administered MAC derived from the address, as Docker's own drivers make them."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def single_ipv4_subnet(driver: str, request: NetworkCreate):
    """The one IPv4 pool of a network (these drivers carry no IPv6 yet)."""
    if request.ipv6:
        raise InvalidRequest(f"the {driver} driver does not support IPv6 networks yet")
    if len(request.ipv4) != 1:
        raise InvalidRequest(f"the {driver} driver needs exactly one IPv4 subnet (--subnet), got {len(request.ipv4)}")
    return request.ipv4[0]


class SegmentDriver(NetworkDriver):
    def __init__(self, agent: SegmentAgent, scope: str = "local"):
        self.agent = agent
        self.scope = scope

    def capabilities(self) -> NetworkCapabilities:
        return NetworkCapabilities(self.scope, self.scope)

    def delete_network(self, network_id: str) -> None:
        self.agent.remove_network(network_id)

    def create_endpoint(self, request: EndpointCreate) -> EndpointInterface | None:
        network = self.agent.network(request.network_id)
        interface = request.interface
        if interface.address_ipv6 is not None:
            raise InvalidRequest(f"the {self.name} driver does not support IPv6 addresses yet")
        if interface.address is None:
            raise InvalidRequest("the endpoint has no IPv4 address: create the network with an IPAM (e.g. --ipam-driver acsnet)")
        if interface.address.ip not in network.subnet:
            raise InvalidRequest(f"address {interface.address.ip} is outside the network's subnet {network.subnet.cidr}")
        mac = str(interface.mac).replace("-", ":").lower() if interface.mac else mac_for(interface.address.ip)
        self.agent.add_endpoint(SegmentEndpoint(request.endpoint_id, request.network_id, network.segment,
                                                str(interface.address.ip), interface.address.prefixlen, mac, time.time()))
        return None if interface.mac else EndpointInterface(None, None, netaddr.EUI(mac))

    def delete_endpoint(self, ref: EndpointRef) -> None:
        self.agent.remove_endpoint(ref.endpoint_id)

    def endpoint_info(self, ref: EndpointRef) -> dict:
        endpoint = self.agent.endpoints.get(ref.endpoint_id)
        if endpoint is None:
            return {}
        return {self.agent.segment_name.lower(): endpoint.segment, "port": endpoint.host_port, "mac": endpoint.mac,
                "host": self.agent.host_id}

    def join(self, request: JoinRequest) -> JoinResult:
        endpoint = self.agent.endpoint(request.endpoint_id)
        network = self.agent.network(endpoint.network_id)
        self.agent.joined(endpoint)
        return JoinResult(endpoint.container_port, "eth",
                          gateway=netaddr.IPAddress(network.gateway) if network.gateway else None)

    def leave(self, ref: EndpointRef) -> None:
        """The veth comes back to the host; the port and flows stay until DeleteEndpoint."""
