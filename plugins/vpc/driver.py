"""The vpc network driver: each host owns a part of the network's range, routed to it by the VPC's
route table (or the hosts' own routes); no second overlay. Trade-off: an address belongs to its host,
so a container moved to another host gets a new one."""

from __future__ import annotations

import netaddr

from acsnet.plugins.protocol import NetworkAllocate, NetworkCreate, StaticRoute
from acsnet.plugins.segments.driver import SegmentDriver
from acsnet.plugins.segments.model import SegmentNetwork
from acsnet.plugins.vpc.agent import VpcOvsDatapath
from acsnet.plugins.vpc.model import record_group
from acsnet.plugins.vpc.options import parse_vpc_options


class VpcDriver(SegmentDriver):
    name = "vpc"

    @property
    def datapath(self) -> VpcOvsDatapath:
        return self.agent.datapath

    def create_network(self, request: NetworkCreate) -> None:
        self.require_cluster(request)
        self.datapath.require_forwarding()
        data = self.subnets(request).ipv4
        options = parse_vpc_options(request, data.pool)
        own = self.datapath.claim_host_subnet(data.pool, options.host_subnet_size, options.max_routes)
        mtu = request.mtu or self.agent.uplink_mtu
        # The containers' gateway is this host's address in its subnet, not the network's gateway.
        self.agent.add_network(SegmentNetwork(request.network_id, record_group(data.pool), data.pool, str(own.gateway), None,
                                              mtu, request.internal))

    def internal_routes(self, network: SegmentNetwork) -> tuple[StaticRoute, ...]:
        """A container's prefix is its host's subnet: the rest of the network (the other hosts' subnets)
        is routed through the host, and nothing else is."""
        return (StaticRoute(network.subnet.cidr, netaddr.IPAddress(network.gateway)),)

    def allocated_options(self, request: NetworkAllocate) -> dict[str, str]:
        parse_vpc_options(request.as_create(), request.ipv4[0].pool)
        return dict(request.options)
