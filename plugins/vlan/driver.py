"""The vlan network driver: containers on the data center's own VLANs (vlan-1.1 of the reference)."""

from __future__ import annotations

from acsnet.errors import InvalidRequest
from acsnet.plugins.protocol import NetworkAllocate, NetworkCreate
from acsnet.plugins.segments.driver import SegmentDriver, swarm_allocated
from acsnet.plugins.segments.model import SegmentNetwork
from acsnet.plugins.vlan.options import parse_vlan_options


class VlanDriver(SegmentDriver):
    name = "vlan"
    dual_stack = True

    def create_network(self, request: NetworkCreate) -> None:
        self.require_cluster(request)
        if request.internal:
            raise InvalidRequest(
                "the vlan driver cannot make an internal network (--internal): its containers are on the data "
                "center's VLAN, whose router and other systems reach them, and acsnet controls neither; "
                "use -d vxlan or -d vpc for an internal network")
        options = parse_vlan_options(request)
        subnets = self.subnets(request)
        mtu = request.mtu or self.agent.uplink_mtu
        self.agent.add_network(SegmentNetwork(request.network_id, options.vlan, subnets.ipv4.pool, subnets.gateway,
                                              options.gateway_mac, mtu, False, subnets.subnet6, subnets.gateway6,
                                              swarm=swarm_allocated(request), accept_ra=options.accept_ra))

    def allocated_options(self, request: NetworkAllocate) -> dict[str, str]:
        parse_vlan_options(request.as_create())  # a bad or missing VlanId fails `docker network create`
        return dict(request.options)
