"""The vxlan datapath of one host: containers on the vxlan bridge (acsvx0), one flow-based VXLAN port,
and flows (`acsnet.ovsctl.vxlan_pipeline`) that send each remote MAC to the VTEP its segment record names.
Records of a host whose store sessions all ended are left out of the flows until it comes back, so
no host keeps a route to a dead one. Networks with a gateway get a router (a namespace with SNAT and
the endpoints' published ports). The segment agent drives it through the `Datapath` interface."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging

from acsnet.errors import AcsnetError, DatapathError, InvalidRequest
from acsnet.ovsctl import arp, links, neighbour, openflow, router, vswitchd
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.ovsctl.router import Publication
from acsnet.ovsctl.vxlan_pipeline import (COOKIE, VxlanDatapath, VxlanGateway, VxlanPort, VxlanRoute, gateway_mac, vxlan_flows,
                                          vxlan_port_flows, vxlan_route_flows)
from acsnet.plugins.segments import state
from acsnet.plugins.segments.bridge import OvsBridge
from acsnet.plugins.segments.datapath import Datapath, HostView, RemoteChange
from acsnet.plugins.segments.model import SegmentEndpoint, SegmentNetwork, SegmentRecord
from acsnet.plugins.segments.table_parts import TableInParts, TableParts

log = logging.getLogger(__name__)

TUNNEL_PORT = "acsvtep"
EPHEMERAL_FIRST = 32768  # host ports chosen for `-p PORT` without one
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


def routed_networks(view: HostView) -> dict[int, SegmentNetwork]:
    """The networks that get a router here: those with a gateway (one per VNI), unless internal: an
    internal network's traffic has no way off it (no router, so no SNAT, no DNAT, and no gateway
    MAC in the flows)."""
    return {n.segment: n for n in sorted(view.networks, key=lambda n: n.network_id) if n.gateway and not n.internal}


def _same_host_addresses(a: str, b: str) -> bool:
    """Whether bindings on host addresses `a` and `b` ("" for none given) meet: of one family, with one
    of them on all its addresses or both on the same. So `-p 0.0.0.0:80:80` and `-p [::]:80:80` (as
    newer dockerds may send `-p 80:80`) are two halves of one publication, not a conflict."""
    families = {ip: ({4, 6} if ip == "" else {6} if ":" in ip else {4}) for ip in (a, b)}
    if not families[a] & families[b]:
        return False
    return a in ("", "0.0.0.0", "::") or b in ("", "0.0.0.0", "::") or a == b


def _port(endpoint: SegmentEndpoint) -> VxlanPort:
    return VxlanPort(endpoint.host_port, endpoint.segment, endpoint.ip, endpoint.mac, endpoint.ip6)


def vxlan_table(view: HostView) -> list[str]:
    """The vxlan bridge's flows for `view`."""
    local = tuple(_port(e) for e in view.endpoints)
    remote = tuple(VxlanRoute(vni, r.ip, r.mac, r.vtep, r.ip6) for vni in view.segments() for r in view.remote_records(vni))
    gateways = tuple(VxlanGateway(n.segment, n.gateway, router.gateway_port(n.segment), n.gateway6 or "")
                     for n in routed_networks(view).values())
    return vxlan_flows(VxlanDatapath(TUNNEL_PORT, frozenset(view.segments()), local, remote, gateways))


def vxlan_endpoint_flows(endpoint: SegmentEndpoint) -> list[str]:
    """The flows of a local endpoint (`vxlan_table`'s, one endpoint at a time)."""
    return vxlan_port_flows(_port(endpoint))


def vxlan_record_flows(vni: int, record: SegmentRecord) -> list[str]:
    """The flows of another host's record (`vxlan_table`'s, one record at a time)."""
    return vxlan_route_flows(TUNNEL_PORT, VxlanRoute(vni, record.ip, record.mac, record.vtep, record.ip6))


VXLAN_TABLE_PARTS = TableParts(vxlan_table, vxlan_endpoint_flows, vxlan_record_flows)


class TunnelBridge(OvsBridge):
    """The vxlan bridge: its packets leave through the tunnel port."""

    _tunnel_tso: bool | None = None  # what the running ovs-vswitchd said, once asked

    @property
    def tso_capable(self) -> bool:
        """OVS 3.1 drops a TSO packet at a tunnel port, OVS 3.5 segments it in software
        (`ovsctl.vswitchd`). Asked of the running daemon once; not known means no."""
        if self._tunnel_tso is None:
            try:
                self._tunnel_tso = vswitchd.segments_tunneled_tso()
            except DatapathError as e:
                log.warning("cannot tell whether ovs-vswitchd segments tunneled TSO packets (%s): offloads off", e)
                return False
        return self._tunnel_tso


class VxlanOvsDatapath(Datapath):
    driver = "vxlan"
    segment_name = "VNI"
    withdraw_dead_hosts = True

    def __init__(self, ovsdb: Ovsdb, bridge: str, uplink: str, *, vtep: str, datapath: str):
        self.ovsdb = ovsdb
        self.bridge = TunnelBridge(ovsdb, bridge, COOKIE, userspace_datapath=datapath == "netdev")
        self.vtep = vtep
        self.datapath = datapath
        self.host_mac = links.mac_of(uplink)
        self.uplink_mtu = links.mtu_of(uplink)
        self.agent = None
        self.publications: dict[str, tuple[Publication, ...]] = {}  # endpoint → its published ports
        self._nat_applied: tuple | None = None
        self._routers: dict[int, router.Router] = {}
        self._table = TableInParts(VXLAN_TABLE_PARTS)

    @property
    def default_mtu(self) -> int:
        return self.uplink_mtu - VXLAN_OVERHEAD

    def start(self, agent) -> None:
        """The bridge and its tunnel port first (idempotent): the flows need them."""
        self.agent = agent
        self.ovsdb.add_bridge(self.bridge.name, self.datapath, secure=True)
        self.ovsdb.add_tunnel_port(self.bridge.name, TUNNEL_PORT, "vxlan",
                                   {"remote_ip": "flow", "key": "flow", "local_ip": self.vtep})
        self._routers = router.routers()  # after a restart, the routers already made

    def load(self) -> None:
        for eid in state.published_endpoint_ids(self.agent.store, self.agent.layout, self.agent.host_id):
            found = state.read_published(self.agent.store, self.agent.layout, self.agent.host_id, eid)
            if found:
                self.publications[eid] = tuple(Publication(**p) for p in found)

    def record_for(self, endpoint: SegmentEndpoint) -> SegmentRecord:
        return SegmentRecord(self.agent.host_id, self.host_mac, self.vtep, endpoint.ip, endpoint.mac, endpoint.endpoint_id,
                             endpoint.ip6)

    def flow_marks(self, network: SegmentNetwork) -> tuple[str, ...]:
        v = network.segment
        return (f"reg1={v},", f"tun_id={v},", f"set_field:{v}->reg1")

    def program(self, view: HostView) -> list[str]:
        self._make_routers(view)
        flows = self._table.whole(view)
        self.bridge.install_flows(flows)
        self._remove_routers(view)
        self._apply_nat()
        return flows

    def program_change(self, change: RemoteChange, view: HostView | None = None) -> bool:
        """Only the changed flows, through one `ovs-ofctl add-flows`; routers and NAT follow this host's
        own networks and endpoints (`view`), which other hosts' records do not change."""
        if not self._table.programmed:
            return False
        if view is not None:
            self._make_routers(view)
        upserts, deletes = self._table.change(change, view)
        if not self.bridge.change_flows(upserts, deletes):
            return False
        if view is not None:
            self._remove_routers(view, found=False)
            self._apply_nat()
        return True

    # -- routers, SNAT and published ports -------------------------------------------------------

    def _make_routers(self, view: HostView) -> None:
        ports = self.agent.ports.attached  # router ports too: a full reconcile finds one gone, and it is made again
        for vni, network in routed_networks(view).items():
            port = router.gateway_port(vni)
            if port in ports and vni in self._routers:
                continue
            self._routers[vni] = router.ensure_router(
                vni, network.gateway, network.subnet.prefixlen, gateway_mac(vni), network.mtu,
                userspace_datapath=self.bridge.userspace_datapath, gateway6=network.gateway6,
                prefixlen6=network.subnet6.prefixlen if network.subnet6 is not None else 64)
            self.ovsdb.add_port(self.bridge.name, port, external_ids={"acsnet-router": str(vni)})
            ports.add(port)

    def _remove_routers(self, view: HostView, *, found: bool = True) -> None:
        """The routers of networks no longer routed here go: of those found on the host (a dump of every
        link and the routers' addresses, which a whole program repairs from), or, for a change (`found`
        False), of those this process made or found at start: the dump cost a CreateEndpoint and a
        DeleteEndpoint 5-7 ms each on a lab host, and grows with the host's links."""
        wanted = routed_networks(view)
        present = router.routers() if found else dict(self._routers)
        for vni in [v for v in present if v not in wanted]:
            self.ovsdb.delete_port(self.bridge.name, router.gateway_port(vni))
            self.agent.ports.attached.discard(router.gateway_port(vni))
            router.remove_router(vni)
            self._routers.pop(vni, None)

    def _apply_nat(self) -> None:
        routed = []
        for endpoint_id, publications in sorted(self.publications.items()):
            endpoint = self.agent.endpoints.get(endpoint_id)
            if endpoint is not None and endpoint.segment in self._routers:
                routed += [(self._routers[endpoint.segment], p) for p in publications]
        desired = (tuple(sorted(self._routers.items())), tuple(routed))
        if desired == self._nat_applied:
            return
        for vni, r in self._routers.items():
            router.apply_router_nat(r, [p for rr, p in routed if rr.vni == vni])
        if self._routers:
            wants6 = any(p.ipv6 and p.host_ip in ("", "::") for _, p in routed)
            router.apply_host_nat([self.vtep], routed, router.host_ipv6_addresses() if wants6 else (),
                                  ipv6=any(r.ipv6 for r in self._routers.values()))
        else:
            router.remove_host_nat()
        self._nat_applied = desired

    def publish(self, endpoint_id: str, portmap: list[dict]) -> None:
        """Publish an endpoint's ports (ProgramExternalConnectivity); a host port asked as 0 is chosen
        here (EndpointOperInfo reports them)."""
        agent = self.agent
        with agent.lock:
            endpoint = agent.endpoint(endpoint_id)
            if agent.network(endpoint.network_id).internal:
                raise InvalidRequest(f"network {endpoint.network_id[:12]} is internal (--internal): its containers cannot publish ports")
            if endpoint.segment not in routed_networks(agent.view(remote=False)):
                raise InvalidRequest(f"network {endpoint.network_id[:12]} has no gateway: its containers cannot publish ports")
            taken = [p for eid, ps in self.publications.items() if eid != endpoint_id for p in ps]
            publications = []
            for entry in portmap:
                publication = self._publication(endpoint, entry, taken)
                taken.append(publication)
                publications.append(publication)
            state.write_published(agent.store, agent.layout, agent.host_id, endpoint_id,
                                  [dataclasses.asdict(p) for p in publications])
            self.publications[endpoint_id] = tuple(publications)
            self._apply_nat()

    def _host_ip(self, endpoint: SegmentEndpoint, entry: dict) -> str:
        """The host address a binding asks for, "" for none: an IPv4 one must be the host's (127.0.0.1
        included), an IPv6 one too, or :: with the host having a global IPv6 address; and an IPv6 one
        needs a container with an IPv6 address (a dual-stack network). Refused otherwise, naming what is
        missing, rather than published somewhere else."""
        try:
            host_ip = ipaddress.ip_address(str(entry.get("HostIP") or "0.0.0.0"))
        except ValueError:
            raise InvalidRequest(f"port mapping {entry!r}: HostIP is not an IP address") from None
        if not entry.get("HostIP"):
            return ""
        text = str(host_ip)
        host_port, port = entry.get("HostPort") or "", entry.get("Port")
        shown = f"[{text}]" if host_ip.version == 6 else text
        mapping = f"-p {shown}:{host_port}:{port}" if host_port else f"-p {shown}::{port}"
        if host_ip.version == 4:
            if not host_ip.is_unspecified and not host_ip.is_loopback and text not in links.ipv4_addresses():
                raise InvalidRequest(f"{mapping}: host {self.agent.host_id} has no IPv4 address {text}")
            return text
        ipv4_mapping = f"-p {host_port}:{port}" if host_port else f"-p {port}"
        if not endpoint.ip6:
            raise InvalidRequest(f"{mapping}: network {endpoint.network_id[:12]} has no IPv6 subnet, so its container "
                                 f"has no IPv6 address to publish; publish on the host's IPv4 address instead ({ipv4_mapping})")
        present = router.host_ipv6_addresses()
        if host_ip.is_unspecified and not present:
            raise InvalidRequest(f"{mapping}: host {self.agent.host_id} has no global IPv6 address to publish on; "
                                 f"publish on its IPv4 address instead ({ipv4_mapping})")
        if not host_ip.is_unspecified and text not in present:
            raise InvalidRequest(f"{mapping}: host {self.agent.host_id} has no IPv6 address {text}")
        return text

    def _publication(self, endpoint: SegmentEndpoint, entry: dict, taken: list[Publication]) -> Publication:
        try:
            proto, port, host_port = int(entry.get("Proto", 6)), int(entry["Port"]), int(entry.get("HostPort") or 0)
        except (KeyError, TypeError, ValueError):
            raise InvalidRequest(f"malformed port mapping {entry!r}") from None
        if proto not in router.PROTOCOLS:
            raise InvalidRequest(f"port mapping {entry!r}: protocol {proto} is not tcp (6), udp (17) or sctp (132)")
        if not (1 <= port <= 65535 and 0 <= host_port <= 65535):
            raise InvalidRequest(f"port mapping {entry!r}: ports must be 1-65535")
        host_ip = self._host_ip(endpoint, entry)
        if host_port == 0:
            used = {(p.proto, p.host_port) for p in taken}
            host_port = next((p for p in range(EPHEMERAL_FIRST, 65536) if (proto, p) not in used), 0)
            if host_port == 0:
                raise InvalidRequest("no host port is left to publish on")
        elif any(p.proto == proto and p.host_port == host_port and _same_host_addresses(p.host_ip, host_ip) for p in taken):
            raise InvalidRequest(f"host port {host_port}/{router.PROTOCOLS[proto]} is already published by another container")
        return Publication(proto, host_port, endpoint.ip, port, host_ip, endpoint.ip6)

    def unpublish(self, endpoint_id: str) -> None:
        agent = self.agent
        agent.endpoint(endpoint_id)  # the state loaded (a request never acts on an empty cache)
        with agent.lock:
            if endpoint_id in self.publications:
                state.clear_published(agent.store, agent.layout, agent.host_id, endpoint_id)
                del self.publications[endpoint_id]
                self._apply_nat()

    def endpoint_removed(self, endpoint: SegmentEndpoint) -> None:
        if endpoint.endpoint_id in self.publications:
            state.clear_published(self.agent.store, self.agent.layout, self.agent.host_id, endpoint.endpoint_id)
            del self.publications[endpoint.endpoint_id]

    def announce(self, view: HostView, joined: list[SegmentEndpoint], arrived: list[tuple[int, SegmentRecord]]) -> None:
        """Tell this host's containers on the VNI where an address (and its IPv6 twin) now is: one that moved from a dead
        host keeps its IP but not its MAC, and a neighbour entry stays REACHABLE for up to 45 s
        without asking again. A gratuitous ARP straight to their ports updates it at once. The same for
        an address that appears on this host: a container recreated here with the address of one that
        was elsewhere (or here) has a new MAC, and frames its neighbours here still send to the old one
        match no flow."""
        for vni, record in arrived:
            self._announce_locally(view, vni, record.ip, record.ip6, record.mac, record.endpoint_id)
        for endpoint in joined:
            self._announce_locally(view, endpoint.segment, endpoint.ip, endpoint.ip6, endpoint.mac, endpoint.endpoint_id)

    def _announce_locally(self, view: HostView, vni: int, ip: str, ip6: str, mac: str, endpoint_id: str) -> None:
        """A gratuitous ARP, and for a dual-stack endpoint an unsolicited neighbour advertisement."""
        ports = [e.host_port for e in view.endpoints if e.segment == vni and e.endpoint_id != endpoint_id]
        if not ports:
            return
        frames = [arp.gratuitous_arp(ip, mac)] + ([neighbour.unsolicited_advert(ip6, mac)] if ip6 else [])
        for frame in frames:
            try:
                openflow.packet_out(self.bridge.name, ",".join(f"output:{p}" for p in ports), frame)
            except AcsnetError as e:
                log.warning("ip=%s ip6=%s vni=%d announcement to local containers not sent: %s", ip, ip6, vni, e.message)
