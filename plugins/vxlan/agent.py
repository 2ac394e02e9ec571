"""The vxlan datapath of one host: containers on the vxlan bridge (acsvx0), one flow-based VXLAN port,
and flows (`ovsctl.vxlan_pipeline`) that send each remote MAC to the VTEP its segment record names.
Records of a host whose store sessions all ended are left out of the flows until it comes back, so
no host keeps a route to a dead one."""

from __future__ import annotations

import logging

from ovsctl import arp, openflow
from ovsctl.vxlan_pipeline import VxlanDatapath, VxlanPort, VxlanRoute, vxlan_flows
from plugins.errors import AcsnetError
from plugins.segments.agent import SegmentAgent
from plugins.segments.model import LAYOUTS, SegmentEndpoint, SegmentNetwork, SegmentRecord

log = logging.getLogger(__name__)

TUNNEL_PORT = "acsvtep"
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


class VxlanAgent(SegmentAgent):
    segment_name = "VNI"
    withdraw_dead_hosts = True

    def __init__(self, store, ovsdb, host_id: str, bridge: str, uplink: str, *, vtep: str, datapath: str, **kwargs):
        super().__init__(store, ovsdb, LAYOUTS["vxlan"], host_id, bridge, uplink,
                         userspace_datapath=datapath == "netdev", **kwargs)
        self.vtep = vtep
        self.datapath = datapath

    @property
    def default_mtu(self) -> int:
        return self.uplink_mtu - VXLAN_OVERHEAD

    def start(self) -> None:
        """The bridge and its tunnel port first (idempotent): the flows need them."""
        self.ovsdb.add_bridge(self.bridge, self.datapath, secure=True)
        self.ovsdb.add_tunnel_port(self.bridge, TUNNEL_PORT, "vxlan",
                                   {"remote_ip": "flow", "key": "flow", "local_ip": self.vtep})
        super().start()

    def record_for(self, endpoint: SegmentEndpoint) -> SegmentRecord:
        return SegmentRecord(self.host_id, self.host_mac, self.vtep, endpoint.ip, endpoint.mac, endpoint.endpoint_id)

    def flow_marks(self, network: SegmentNetwork) -> tuple[str, ...]:
        v = network.segment
        return (f"reg1={v},", f"tun_id={v},", f"set_field:{v}->reg1")

    def desired_datapath(self) -> VxlanDatapath:
        vnis = {n.segment for n in self.networks.values()}
        local = tuple(VxlanPort(e.host_port, e.segment, e.ip, e.mac) for e in self.attached_endpoints())
        remote = tuple(VxlanRoute(vni, r.ip, r.mac, r.vtep) for vni in sorted(vnis) for r in self.remote_records(vni))
        return VxlanDatapath(TUNNEL_PORT, frozenset(vnis), local, remote)

    def flows(self) -> list[str]:
        return vxlan_flows(self.desired_datapath())

    def records_arrived(self, records: list[tuple[int, SegmentRecord]]) -> None:
        """Tell this host's containers on the VNI where an address now is: one that moved from a dead
        host keeps its IP but not its MAC, and a neighbour entry stays REACHABLE for up to 45 s
        without asking again. A gratuitous ARP straight to their ports updates it at once."""
        with self._lock:
            local = self.attached_endpoints()
        for vni, record in records:
            ports = [e.host_port for e in local if e.segment == vni]
            if not ports:
                continue
            try:
                openflow.packet_out(self.bridge, ",".join(f"output:{p}" for p in ports), arp.gratuitous_arp(record.ip, record.mac))
            except AcsnetError as e:
                log.warning("ip=%s vni=%d gratuitous ARP to local containers not sent: %s", record.ip, vni, e.message)
