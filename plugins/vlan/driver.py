"""The vlan network driver: containers on the data center's own VLANs (vlan-1.1 of the reference)."""

from __future__ import annotations

import time

import netaddr

from plugins.driver import NetworkCapabilities, NetworkDriver
from plugins.errors import InvalidRequest
from plugins.protocol import EndpointCreate, EndpointInterface, EndpointRef, JoinRequest, JoinResult, NetworkCreate
from plugins.vlan.agent import VlanAgent
from plugins.vlan.model import VlanEndpoint, VlanNetwork
from plugins.vlan.options import parse_vlan_options


def mac_for(ip: netaddr.IPAddress) -> str:
    """A locally administered MAC derived from the address, as Docker's own drivers make them."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


class VlanDriver(NetworkDriver):
    name = "vlan"

    def __init__(self, agent: VlanAgent, scope: str = "local"):
        self.agent = agent
        self.scope = scope

    def capabilities(self) -> NetworkCapabilities:
        return NetworkCapabilities(self.scope, self.scope)

    def create_network(self, request: NetworkCreate) -> None:
        options = parse_vlan_options(request)
        if request.ipv6:
            raise InvalidRequest("the vlan driver does not support IPv6 networks yet")
        if len(request.ipv4) != 1:
            raise InvalidRequest(f"the vlan driver needs exactly one IPv4 subnet (--subnet), got {len(request.ipv4)}")
        data = request.ipv4[0]
        gateway = str(data.gateway.ip) if data.gateway is not None else None
        mtu = options.mtu or self.agent.uplink_mtu
        self.agent.add_network(VlanNetwork(request.network_id, options.vlan, data.pool, gateway, options.gateway_mac, mtu))

    def delete_network(self, network_id: str) -> None:
        self.agent.remove_network(network_id)

    def create_endpoint(self, request: EndpointCreate) -> EndpointInterface | None:
        network = self.agent.network(request.network_id)
        interface = request.interface
        if interface.address_ipv6 is not None:
            raise InvalidRequest("the vlan driver does not support IPv6 addresses yet")
        if interface.address is None:
            raise InvalidRequest("the endpoint has no IPv4 address: create the network with an IPAM (e.g. --ipam-driver acsnet)")
        if interface.address.ip not in network.subnet:
            raise InvalidRequest(f"address {interface.address.ip} is outside the network's subnet {network.subnet.cidr}")
        mac = str(interface.mac).replace("-", ":").lower() if interface.mac else mac_for(interface.address.ip)
        self.agent.add_endpoint(VlanEndpoint(request.endpoint_id, request.network_id, network.vlan,
                                             str(interface.address.ip), interface.address.prefixlen, mac, time.time()))
        return None if interface.mac else EndpointInterface(None, None, netaddr.EUI(mac))

    def delete_endpoint(self, ref: EndpointRef) -> None:
        self.agent.remove_endpoint(ref.endpoint_id)

    def endpoint_info(self, ref: EndpointRef) -> dict:
        endpoint = self.agent.endpoints.get(ref.endpoint_id)
        if endpoint is None:
            return {}
        return {"vlan": endpoint.vlan, "port": endpoint.host_port, "mac": endpoint.mac, "host": self.agent.host_id}

    def join(self, request: JoinRequest) -> JoinResult:
        endpoint = self.agent.endpoint(request.endpoint_id)
        network = self.agent.network(endpoint.network_id)
        self.agent.announce(endpoint)
        return JoinResult(endpoint.container_port, "eth",
                          gateway=netaddr.IPAddress(network.gateway) if network.gateway else None)

    def leave(self, ref: EndpointRef) -> None:
        """The veth comes back to the host; the port and flows stay until DeleteEndpoint."""
