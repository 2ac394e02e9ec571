"""What the segment drivers (vlan, vxlan, vpc) share of the NetworkDriver protocol: endpoints are veths on
the driver's bridge, with the address the IPAM gave and a MAC derived from it."""

from __future__ import annotations

import dataclasses
import time

import netaddr

from acsnet.errors import InvalidRequest
from acsnet.plugins.driver import NetworkCapabilities, NetworkDriver
from acsnet.plugins.protocol import (EndpointCreate, EndpointInterface, EndpointRef, IPAMData, JoinRequest, JoinResult,
                                     NetworkAllocate, NetworkCreate, StaticRoute)
from acsnet.plugins.segments.agent import SegmentAgent
from acsnet.plugins.segments.model import SegmentEndpoint, SegmentNetwork


NODE_DISCOVERY = 1  # DiscoverNew's DiscoveryType for a node of dockerd's cluster
# Added by allocate_network to the options of a network a swarm manager allocated; every node then
# creates the network with them. The swarm is the cluster that shares it (see require_cluster).
SWARM_ALLOCATED = "acsnet.swarm"
LINK_LOCAL_V6 = netaddr.IPNetwork("fe80::/10")  # every link has its own: never a network's subnet
MULTICAST_V6 = netaddr.IPNetwork("ff00::/8")
MAX_IPV6_PREFIXLEN = 126


def swarm_allocated(request: NetworkCreate) -> bool:
    """Whether a swarm manager allocated the network (see SegmentNetwork.swarm)."""
    return request.generic.get(SWARM_ALLOCATED) == "true"


def mac_for(ip: netaddr.IPAddress) -> str:
    """A locally administered MAC derived from the address, as Docker's own drivers make them."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


@dataclasses.dataclass(frozen=True)
class NetworkSubnets:
    """A network's pools as dockerd's IPAM gave them: one IPv4 pool, and an IPv6 one if dual-stack."""

    ipv4: IPAMData
    ipv6: IPAMData | None = None

    @property
    def gateway(self) -> str | None:
        return str(self.ipv4.gateway.ip) if self.ipv4.gateway is not None else None

    @property
    def gateway6(self) -> str | None:
        return str(self.ipv6.gateway.ip) if self.ipv6 is not None and self.ipv6.gateway is not None else None

    @property
    def subnet6(self) -> netaddr.IPNetwork | None:
        return self.ipv6.pool if self.ipv6 is not None else None


def network_subnets(driver: str, request: NetworkCreate, *, dual_stack: bool) -> NetworkSubnets:
    """The network's one IPv4 pool and, where the driver carries IPv6 (`dual_stack`), its IPv6 pool
    if it has one; anything else is refused before anything is stored."""
    if request.ipv6 and not dual_stack:
        raise InvalidRequest(f"the {driver} driver does not support IPv6 networks yet (vlan, vxlan and vpc networks can be dual-stack)")
    if len(request.ipv4) != 1:
        what = " (IPv6-only networks are not supported: give one IPv4 --subnet too)" if not request.ipv4 and request.ipv6 else ""
        raise InvalidRequest(f"the {driver} driver needs exactly one IPv4 subnet (--subnet), got {len(request.ipv4)}{what}")
    if len(request.ipv6) > 1:
        raise InvalidRequest(f"the {driver} driver takes one IPv6 subnet per network, got {len(request.ipv6)}: "
                             + ", ".join(map(str, sorted(d.pool.cidr for d in request.ipv6))))  # dockerd's order varies
    ipv6 = request.ipv6[0] if request.ipv6 else None
    if ipv6 is not None:
        _check_ipv6_pool(ipv6)
    return NetworkSubnets(request.ipv4[0], ipv6)


def _check_ipv6_pool(data: IPAMData) -> None:
    pool = data.pool
    if pool.version != 6:
        raise InvalidRequest(f"IPv6 subnet {pool.cidr} is not an IPv6 network")
    if pool in LINK_LOCAL_V6 or pool in MULTICAST_V6:
        raise InvalidRequest(f"IPv6 subnet {pool.cidr} is link-local or multicast: give a global or unique local "
                             "prefix (e.g. fd00::/8)")
    if pool.prefixlen > MAX_IPV6_PREFIXLEN:
        # Flows answer neighbour solicitations per address, so any length would route; but an IPv6 link
        # of fewer than 4 addresses leaves no room for a gateway and containers.
        raise InvalidRequest(f"IPv6 subnet {pool.cidr} is too small: its prefix may be at most /{MAX_IPV6_PREFIXLEN}")
    if data.gateway is not None and data.gateway.ip not in pool:
        raise InvalidRequest(f"IPv6 gateway {data.gateway.ip} is outside its subnet {pool.cidr}")


class SegmentDriver(NetworkDriver):
    dual_stack = False  # whether the driver carries a network's IPv6 subnet beside its IPv4 one

    def __init__(self, agent: SegmentAgent, scope: str = "local"):
        self.agent = agent
        self.scope = scope

    def capabilities(self) -> NetworkCapabilities:
        if self.scope == "global":
            self.agent.dockerd_activated()
        return NetworkCapabilities(self.scope, self.scope)

    def discover_new(self, discovery_type: int, data) -> None:
        """dockerd with a cluster store announces its cluster's nodes to a global-scope driver as soon as
        it registers the driver; acsnet learns peers from its store, but takes the announcement as the
        sign that dockerd shares global networks with the other hosts."""
        if self.scope == "global" and discovery_type == NODE_DISCOVERY and isinstance(data, dict):
            self.agent.remember_cluster_node(str(data.get("Address") or "?"))

    def allocate_network(self, request: NetworkAllocate) -> dict[str, str]:
        """Validate the options where `docker network create --scope swarm` still waits for the answer;
        the options returned are the ones every node's CreateNetwork gets."""
        self.subnets(request.as_create())
        return {**self.allocated_options(request), SWARM_ALLOCATED: "true"}

    def subnets(self, request: NetworkCreate) -> NetworkSubnets:
        """The network's pools, validated for this driver (`network_subnets`)."""
        return network_subnets(self.name, request, dual_stack=self.dual_stack)

    def allocated_options(self, request: NetworkAllocate) -> dict[str, str]:
        """The driver's options of a swarm network, validated (and completed: a generated VNI)."""
        return dict(request.options)

    def require_cluster(self, request: NetworkCreate | None = None) -> None:
        """Global scope needs a dockerd that shares networks between hosts (20.10 with --cluster-store).
        Docker 23.0 and later have no cluster store: they still create a network of a global-scope
        driver, but on the host it was made on only: other hosts cannot join it, and the same network made
        on each host gets a pool per host in the IPAM's global space, which hands out the same addresses
        again. Such a dockerd sends no node discovery: refuse, saying what to run instead."""
        if request is not None and swarm_allocated(request):
            return  # a swarm manager allocated it: every node of the swarm creates it
        if self.scope == "global" and not self.agent.cluster_announced():
            raise InvalidRequest(
                f"acsnet serve {self.name} runs with --scope global, but this host's dockerd has announced no "
                "cluster (no node discovery since it activated the driver): it runs without --cluster-store "
                "(Docker 23.0 and later have none), so the network would exist on this host only. Run "
                f"'acsnet serve {self.name} --scope local' on every host and create the network on each "
                "(same subnet and options), or use dockerd 20.10 with --cluster-store for global scope")

    def delete_network(self, network_id: str) -> None:
        self.agent.remove_network(network_id)

    def create_endpoint(self, request: EndpointCreate) -> EndpointInterface | None:
        network = self.agent.network(request.network_id)
        interface = request.interface
        if interface.address is None:
            raise InvalidRequest("the endpoint has no IPv4 address: create the network with an IPAM (e.g. --ipam-driver acsnet)")
        if interface.address.ip not in network.subnet:
            raise InvalidRequest(f"address {interface.address.ip} is outside the network's subnet {network.subnet.cidr}")
        ip6 = interface.address_ipv6.ip if interface.address_ipv6 is not None else None
        if ip6 is not None and network.subnet6 is None:
            raise InvalidRequest(f"IPv6 address {ip6} given, but network {network.network_id[:12]} has no IPv6 subnet "
                                 f"(the {self.name} driver does not support IPv6 there)")
        if ip6 is not None and ip6 not in network.subnet6:
            raise InvalidRequest(f"IPv6 address {ip6} is outside the network's IPv6 subnet {network.subnet6.cidr}")
        mac = str(interface.mac).replace("-", ":").lower() if interface.mac else mac_for(interface.address.ip)
        self.agent.add_endpoint(SegmentEndpoint(request.endpoint_id, request.network_id, network.segment,
                                                str(interface.address.ip), interface.address.prefixlen, mac, time.time(),
                                                ip6=str(ip6) if ip6 is not None else ""))
        return None if interface.mac else EndpointInterface(None, None, netaddr.EUI(mac))

    def delete_endpoint(self, ref: EndpointRef) -> None:
        self.agent.remove_endpoint(ref.endpoint_id)

    def endpoint_info(self, ref: EndpointRef) -> dict:
        endpoint = self.agent.endpoints.get(ref.endpoint_id)
        if endpoint is None:
            return {}
        return {**self.agent.datapath.place_of(endpoint), "port": endpoint.host_port, "mac": endpoint.mac,
                "host": self.agent.host_id}

    def join(self, request: JoinRequest) -> JoinResult:
        endpoint = self.agent.endpoint(request.endpoint_id)
        network = self.agent.network(endpoint.network_id)
        if network.internal and request.port_bindings:
            raise InvalidRequest(
                f"network {network.network_id[:12]} is internal (--internal): nothing outside it reaches its "
                f"containers, so a container publishing ports (-p/-P: {', '.join(map(str, request.port_bindings))}) "
                "cannot join it; publish them on a network that is not internal")
        self.agent.joined(endpoint)
        if network.internal:
            # As Docker's bridge driver for an internal network: no gateway, so no default route off
            # the network; and no docker_gwbridge either (which dockerd adds to a container whose
            # networks give no gateway).
            # An IPv6 route only for a container with an IPv6 address: dockerd fails the join on a
            # route whose next hop is off every link of the container.
            routes = tuple(r for r in self.internal_routes(network) if r.destination.version == 4 or endpoint.ip6)
            return JoinResult(endpoint.container_port, "eth", static_routes=routes, disable_gateway_service=True)
        return JoinResult(endpoint.container_port, "eth",
                          gateway=netaddr.IPAddress(network.gateway) if network.gateway else None,
                          gateway_ipv6=netaddr.IPAddress(network.gateway6) if network.gateway6 and endpoint.ip6 else None)

    def internal_routes(self, network: SegmentNetwork) -> tuple[StaticRoute, ...]:
        """What a container of an internal network routes besides its own subnet: nothing (the whole
        network is on its link) unless the driver routes the network's parts between hosts."""
        return ()

    def leave(self, ref: EndpointRef) -> None:
        """The veth comes back to the host; the port and flows stay until DeleteEndpoint."""
