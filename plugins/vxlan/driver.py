"""The vxlan network driver: private layer-2 networks over any IP underlay, one VNI each, so that
networks are isolated and their subnets may overlap."""

from __future__ import annotations

from acsnet.errors import InvalidRequest
from acsnet.plugins.options import PORTMAP
from acsnet.plugins.protocol import EndpointRef, ExternalConnectivity, NetworkAllocate, NetworkCreate
from acsnet.plugins.segments.driver import SegmentDriver, swarm_allocated
from acsnet.plugins.segments.model import SegmentNetwork
from acsnet.plugins.vxlan import vni as generated
from acsnet.plugins.vxlan.agent import VxlanOvsDatapath
from acsnet.plugins.vxlan.options import VNI_KEYS, parse_vxlan_options

# The VNI a swarm manager generated for a network without VxlanId, among the options every node gets
# (generated VNIs are refused as VxlanId, which users give).
SWARM_VNI = "acsnet.vni"


class VxlanDriver(SegmentDriver):
    name = "vxlan"
    dual_stack = True

    @property
    def datapath(self) -> VxlanOvsDatapath:
        return self.agent.datapath

    def _generated_key(self, network_id: str, subnet) -> str:
        return network_id if self.scope == "global" else f"subnet-{str(subnet.cidr).replace('/', '_')}"

    def create_network(self, request: NetworkCreate) -> None:
        self.require_cluster(request)
        options = parse_vxlan_options(request)
        subnets = self.subnets(request)
        data = subnets.ipv4
        swarm_vni = request.generic.get(SWARM_VNI)
        if options.vni is None and swarm_vni is not None:
            if not str(swarm_vni).isdigit():
                raise InvalidRequest(f"option {SWARM_VNI} {swarm_vni!r} is not a VNI")
            vni = int(swarm_vni)
        else:
            vni = options.vni or generated.generated_vni(self.agent.store, self._generated_key(request.network_id, data.pool))
        mtu = request.mtu or self.datapath.default_mtu
        self.agent.add_network(SegmentNetwork(request.network_id, vni, data.pool, subnets.gateway, None, mtu, request.internal,
                                              subnets.subnet6, subnets.gateway6, swarm=swarm_allocated(request)))

    def delete_network(self, network_id: str) -> None:
        network = self.agent.networks.get(network_id)
        super().delete_network(network_id)
        if network is not None and self.scope == "global" and not network.swarm:
            # A global network is deleted once for the cluster: its generated VNI is free again. (Each
            # node deletes its copy of a swarm network when its last task leaves; FreeNetwork frees its VNI.)
            generated.release_generated(self.agent.store, self._generated_key(network_id, network.subnet))

    def allocated_options(self, request: NetworkAllocate) -> dict[str, str]:
        """One VNI for the swarm network, decided here once: the one given, or one generated for the
        network's id (kept until FreeNetwork)."""
        options = parse_vxlan_options(request.as_create())
        if options.vni is not None:
            return dict(request.options)
        kept = {k: v for k, v in request.options.items() if k not in VNI_KEYS}
        return {**kept, SWARM_VNI: str(generated.generated_vni(self.agent.store, request.network_id))}

    def free_network(self, network_id: str) -> None:
        generated.release_generated(self.agent.store, network_id)

    def program_external_connectivity(self, request: ExternalConnectivity) -> None:
        if request.port_bindings:
            # The edge has parsed and checked the bindings; the datapath still takes libnetwork's JSON form.
            self.datapath.publish(request.endpoint_id, [binding.to_json() for binding in request.port_bindings])

    def revoke_external_connectivity(self, ref: EndpointRef) -> None:
        self.datapath.unpublish(ref.endpoint_id)

    def endpoint_info(self, ref: EndpointRef) -> dict:
        info = super().endpoint_info(ref)
        published = self.datapath.publications.get(ref.endpoint_id)
        if published:  # what `docker port` and `docker ps` show
            info[PORTMAP] = [{"Proto": p.proto, "IP": p.ip6 if ":" in p.host_ip else p.ip, "Port": p.port,
                              "HostIP": p.host_ip or "0.0.0.0", "HostPort": p.host_port, "HostPortEnd": p.host_port}
                             for p in published]
        return info
