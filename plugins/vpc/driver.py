"""The vpc network driver: each host owns a part of the network's range, routed to it by the VPC's
route table (or the hosts' own routes); no second overlay. Trade-off: an address belongs to its host,
so a container moved to another host gets a new one."""

from __future__ import annotations

import netaddr

from acsnet.errors import InvalidRequest
from acsnet.plugins.protocol import NetworkAllocate, NetworkCreate, StaticRoute
from acsnet.plugins.segments.driver import SegmentDriver, swarm_allocated
from acsnet.plugins.segments.model import SegmentNetwork
from acsnet.plugins.vpc.agent import VpcOvsDatapath
from acsnet.plugins.vpc.model import VpcSettings, record_group
from acsnet.plugins.vpc.options import parse_vpc_options


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
        options = parse_vpc_options(request, data.pool, subnets.subnet6)
        if request.internal and subnets.subnet6 is not None:
            raise InvalidRequest("the vpc driver's internal networks (--internal) are IPv4 only for now: "
                                 "create it without --ipv6, or without --internal")
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
        """A container's prefix is its host's subnet: the rest of the network (the other hosts' subnets)
        is routed through the host, and nothing else is."""
        return (StaticRoute(network.subnet.cidr, netaddr.IPAddress(network.gateway)),)

    def allocated_options(self, request: NetworkAllocate) -> dict[str, str]:
        """A swarm network cannot be vpc: the manager takes every task's address (and an attachable
        container's) before the task has a node, so all come from the manager's host subnet, and every
        other node's IPAM refuses them (seen: "address 100.70.0.3 is not one of host h2's addresses")."""
        raise InvalidRequest(
            "the vpc driver cannot make a swarm network: the swarm manager picks every task's address "
            "before the task has a node, and a vpc address belongs to one host's subnet; use -d acsnet/vxlan "
            "or acsnet/vlan for swarm services, vpc for containers each host runs")
