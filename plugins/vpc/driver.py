"""The vpc network driver: each host owns a part of the network's range, routed to it by the VPC's
route table (or the hosts' own routes); no second overlay. Trade-off: an address belongs to its host,
so a container moved to another host gets a new one.

A swarm network is the exception: the swarm manager takes every task's address before the task has a
node, so no host can own a part of it. Its whole range is the swarm's (the manager's IPAM hands it out,
each node's IPAM takes the manager's address again), and each address is routed to the node its task
landed on by a route of its own (a /32, and a /128 for a dual-stack network's IPv6 address), made from
the address record the node publishes with the endpoint. The route limit then counts addresses, and
CreateEndpoint enforces it."""

from __future__ import annotations

import netaddr

from acsnet.errors import Exhausted, InvalidRequest
from acsnet.plugins.protocol import EndpointCreate, EndpointInterface, NetworkAllocate, NetworkCreate, StaticRoute
from acsnet.plugins.segments.driver import NetworkSubnets, SegmentDriver, swarm_allocated
from acsnet.plugins.segments.model import SegmentNetwork
from acsnet.plugins.vpc.agent import VpcOvsDatapath
from acsnet.plugins.vpc.model import VpcSettings, record_group
from acsnet.plugins.vpc.options import parse_swarm_vpc_options, parse_vpc_options


class VpcDriver(SegmentDriver):
    name = "vpc"
    dual_stack = True  # each host routes an IPv6 slice of the network's prefix beside its IPv4 subnet

    @property
    def datapath(self) -> VpcOvsDatapath:
        return self.agent.datapath

    def create_network(self, request: NetworkCreate) -> None:
        self.require_cluster(request)
        subnets = self.subnets(request)
        data = subnets.ipv4
        if swarm_allocated(request):
            self._create_swarm_network(request, subnets)
            return
        options = parse_vpc_options(request, data.pool, subnets.subnet6)
        self.datapath.require_forwarding(ipv6=subnets.subnet6 is not None)
        own = self.datapath.claim_host_subnet(data.pool, VpcSettings(options.host_subnet_size, options.max_routes,
                                                                     subnets.subnet6, options.host_subnet_size_v6))
        mtu = request.mtu or self.agent.uplink_mtu
        # The containers' gateways are this host's addresses in its slices, not the network's gateways;
        # the network's IPv6 prefix stays its subnet6 (an --ip6 outside it is refused at once).
        self.agent.add_network(SegmentNetwork(request.network_id, record_group(data.pool), data.pool, str(own.gateway), None,
                                              mtu, request.internal, subnets.subnet6, str(own.gateway6) if own.subnet6 else None,
                                              swarm=swarm_allocated(request)))

    def internal_routes(self, network: SegmentNetwork) -> tuple[StaticRoute, ...]:
        """A container's prefix is its host's subnet (and IPv6 slice): the rest of the network (the other
        hosts' subnets and slices) is routed through the host, and nothing else is."""
        routes = (StaticRoute(network.subnet.cidr, netaddr.IPAddress(network.gateway)),)
        if network.subnet6 is not None and network.gateway6:
            routes += (StaticRoute(network.subnet6.cidr, netaddr.IPAddress(network.gateway6)),)
        return routes

    def _create_swarm_network(self, request: NetworkCreate, subnets: NetworkSubnets) -> None:
        """The containers' gateways are the manager's, the same on every node (each puts them on its bridge)."""
        max_routes = parse_swarm_vpc_options(request)
        pool, subnet6 = subnets.ipv4.pool, subnets.subnet6
        self.datapath.require_forwarding(ipv6=subnet6 is not None)
        if request.internal:
            raise InvalidRequest("a swarm vpc network cannot be --internal yet (an internal vpc network is fenced by "
                                 "its host subnets, and a swarm one has none)")
        if not self.datapath.routes.on_link:
            # The node's kernel has the whole range on its bridge; without peers on the link it would ask
            # its own flows for other nodes' addresses instead of sending them to the VPC's router.
            raise InvalidRequest("a swarm vpc network needs the hostroutes route provider (peers on one layer-2 "
                                 "network); this host's provider does not carry swarm vpc networks yet")
        gateway = subnets.gateway or str(pool.network + 1)  # the manager IPAM's pick when none is given
        gateway6 = (subnets.gateway6 or str(subnet6.network + 1)) if subnet6 is not None else None
        self.agent.add_network(SegmentNetwork(request.network_id, record_group(pool), pool, gateway, None,
                                              request.mtu or self.agent.uplink_mtu, subnet6=subnet6, gateway6=gateway6,
                                              swarm=True, max_routes=max_routes))

    def create_endpoint(self, request: EndpointCreate) -> EndpointInterface | None:
        """A swarm network's endpoint past its route limit is refused. Counted before (the usual refusal)
        and after its record is stored: nodes adding endpoints at once may both pass the first count, and
        each one that then finds more records than the limit takes its endpoint back, so the limit is
        never exceeded (at worst both are refused, and swarm starts their tasks again)."""
        network = self.agent.network(request.network_id)
        if not network.swarm or request.endpoint_id in self.agent.endpoints:
            return super().create_endpoint(request)
        self._check_route_limit(network, self.datapath.swarm_routes(network) + 1)
        interface = super().create_endpoint(request)
        try:
            self._check_route_limit(network, self.datapath.swarm_routes(network))
        except Exhausted:
            self.agent.remove_endpoint(request.endpoint_id)
            raise
        return interface

    @staticmethod
    def _check_route_limit(network: SegmentNetwork, routes: int) -> None:
        if routes > network.max_routes:
            raise Exhausted(f"swarm vpc network {network.subnet.cidr} has reached its route limit (max_routes="
                            f"{network.max_routes}): {routes - 1} of its addresses are routed to their nodes, each by a "
                            "route of its own; create the network with a higher -o max_routes, or scale down")

    def allocated_options(self, request: NetworkAllocate) -> dict[str, str]:
        """A swarm vpc network: max_routes its only option (validated here, where `docker network create`
        fails on it); IPv4 only for now."""
        create = request.as_create()
        subnets = self.subnets(create)
        if subnets.ipv6 is not None:
            # The datapath routes a swarm network's IPv6 addresses (/128s), but no swarm lab run has shown
            # it end to end yet (#20): refused until one does.
            raise InvalidRequest("a swarm vpc network is IPv4-only for now: give no IPv6 subnet")
        parse_swarm_vpc_options(create)
        pool = subnets.ipv4.pool.cidr
        if self.datapath.membership.settings(pool) is not None:
            # Its hosts' IPAM would give their containers addresses of their host subnets only, and
            # refuse the manager's.
            raise InvalidRequest(f"range {pool} is a vpc network's already, split into host subnets (local or global "
                                 "scope, kept until every host has removed it): give the swarm network a range of its own")
        return dict(request.options)

