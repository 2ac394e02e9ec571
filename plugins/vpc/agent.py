"""The vpc datapath of one host: containers on the vpc bridge (acsvpc0), whose own port holds the host's
gateway address in each network's host subnet; the host routes between them and the underlay (no
encapsulation), and a route provider makes every host subnet reachable.

Endpoints, their records, reconcile and orphans are the segment agent's; a vpc network's "segment" is
its subnet's first address as a number, so that networks never share one."""

from __future__ import annotations

import logging

import netaddr

from ovsctl import links
from ovsctl.host_setup import wait_for_link
from plugins.segments.agent import SegmentAgent
from plugins.segments.model import LAYOUTS, SegmentEndpoint, SegmentNetwork, SegmentRecord
from plugins.store import join
from plugins.vpc import model
from plugins.vpc.membership import Membership
from plugins.vpc.model import HostSubnet
from plugins.vpc.routes import RouteProvider

log = logging.getLogger(__name__)

COOKIE = "0xac7"


def segment_of(subnet: netaddr.IPNetwork) -> int:
    return int(subnet.network)


class VpcAgent(SegmentAgent):
    segment_name = "vpc network"
    flow_cookie = COOKIE

    def __init__(self, store, ovsdb, host_id: str, bridge: str, uplink: str, *, underlay: str, datapath: str,
                 routes: RouteProvider, **kwargs):
        super().__init__(store, ovsdb, LAYOUTS["vpc"], host_id, bridge, uplink,
                         userspace_datapath=datapath == "netdev", **kwargs)
        self.underlay = underlay
        self.datapath = datapath
        self.routes = routes
        self.membership = Membership(store, host_id, underlay)
        self._routes_applied: tuple | None = None
        self._watched_networks: set[str] = set()

    def start(self) -> None:
        self.ovsdb.add_bridge(self.bridge, self.datapath, secure=True)
        wait_for_link(self.bridge)  # the bridge's own port appears a moment after the bridge
        links.set_up(self.bridge)
        if self.userspace_datapath:
            links.disable_tx_checksum(self.bridge)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:  # the host routes for its containers
            f.write("1")
        super().start()

    # -- the segment agent's hooks ---------------------------------------------------------------

    def segment_label(self, number: int) -> str:
        return f"vpc network {netaddr.IPAddress(number)}"

    def record_for(self, endpoint: SegmentEndpoint) -> SegmentRecord:
        return SegmentRecord(self.host_id, self.host_mac, "", endpoint.ip, endpoint.mac, endpoint.endpoint_id)

    def flows(self) -> list[str]:
        return [f"cookie={COOKIE},priority=0,actions=NORMAL"]  # one host subnet per network: plain switching

    def before_sync(self) -> None:
        wanted = {(str(h.gateway), netaddr.IPNetwork(h.subnet).prefixlen) for h in self._own()}
        present = set(links.addresses(self.bridge))
        for address, prefixlen in wanted - present:
            links.add_address(self.bridge, address, prefixlen)
        for address, prefixlen in present - wanted:
            links.delete_address(self.bridge, address, prefixlen)

    def background(self) -> None:
        self._apply_routes()

    # -- host subnets ----------------------------------------------------------------------------

    def _own(self) -> list[HostSubnet]:
        return self.membership.held([n.subnet.cidr for n in self.networks.values()])

    def claim_host_subnet(self, network: netaddr.IPNetwork, size: int, max_routes: int) -> HostSubnet:
        self._ensure_loaded()
        return self.membership.claim(network, size, max_routes)

    # -- routes ----------------------------------------------------------------------------------

    def _peers(self) -> list[HostSubnet]:
        live = self.store.live_hosts()
        peers = []
        for network in sorted({n.subnet.cidr for n in self.networks.values()}):
            if str(network) not in self._watched_networks:
                self._watched_networks.add(str(network))
                self.store.watch_children(model.hosts_path(network), lambda names: self._wake.set())
            for host in self.store.children(model.hosts_path(network)):
                data = self.store.get_json(join(model.hosts_path(network), host))
                if data and host != self.host_id and host in live and not data.get("left_at"):
                    peers.append(HostSubnet.from_json(data))
        return peers

    def _apply_routes(self) -> None:
        with self._lock:
            own, peers = self._own(), self._peers()
        wanted = (tuple(sorted(h.subnet for h in own)), tuple(sorted((p.subnet, p.underlay) for p in peers)))
        if wanted != self._routes_applied:
            self.routes.apply(own, peers)
            self._routes_applied = wanted
            log.info("vpc routes: own %s; peers %s", ", ".join(wanted[0]) or "-",
                     ", ".join(f"{s} via {u}" for s, u in wanted[1]) or "-")

    def add_network(self, network: SegmentNetwork) -> None:
        super().add_network(network)
        self._wake.set()  # routes to the peers of a new network
