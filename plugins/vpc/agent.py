"""The vpc datapath of one host: containers on the host bridge (ovsbr0, beside the vlan driver's),
routed by flows (`acsnet.ovsctl.vpc_pipeline`); the bridge's own port holds the host's gateway address in
each network's host subnet (and, on a dual-stack network, in its IPv6 slice), and a route provider makes
every host subnet and slice reachable.

A vpc network is not one segment spread over hosts: each host holds a host subnet of it
(`acsnet.plugins.vpc.model.HostSubnet`), and peers route to each other's. Endpoints, their records,
reconcile and orphans are the segment agent's, which keeps a network's address records under the
number `record_group` gives. Which host holds which subnet is read from the store by the worker and
kept here, so that no request waits on those reads; read again only when it may have changed
(`_membership_due`): the network's settings moved (every change of its host records moves them), a
peer came alive or died, or MEMBERSHIP_CHECK_SECONDS passed. It was read on every pass, and a pass
follows every Join and DeleteEndpoint: 22 of the 31 store requests a vpc container cost on a lab host,
against 8-10 for vlan or vxlan, and at 1,000 hosts each pass would read every peer's record.

A swarm network (`acsnet.plugins.vpc.driver`) has no host subnets: its range is on every node's bridge
(the manager's gateway, the same everywhere), and each of its addresses on another node is routed on
its own, from that node's address record (host, MAC, underlay): a /32 flow to the node's MAC, an
answer to the containers' ARP for it (they see the whole range on their link), a /32 route from the
route provider, and a /32 flow sending this host's own packets to it (routed by that route) out of the
uplink, above the range's way to this host's containers; on a dual-stack network its IPv6 address likewise (a /128 flow, a neighbour
advertisement, a /128 route), the manager's IPv6 gateway on every node's bridge."""

from __future__ import annotations

import dataclasses
import logging
import time

import netaddr

from acsnet.errors import AcsnetError, HostNotSetUp, NotFound
from acsnet.ovsctl import links
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.ovsctl.vpc_pipeline import COOKIE, InternalNetwork, OwnSubnet, PeerSubnet, VpcDatapath, VpcPort, vpc_flows
from acsnet.plugins.segments import state
from acsnet.plugins.segments.bridge import OvsBridge
from acsnet.plugins.segments.datapath import Datapath, HostView
from acsnet.plugins.segments.model import LAYOUTS, SegmentEndpoint, SegmentNetwork, SegmentRecord
from acsnet.plugins.vpc.membership import Membership
from acsnet.plugins.vpc.model import HostSubnet, VpcSettings, internal_mark
from acsnet.plugins.vpc.routes import RouteProvider
from acsnet.plugins.vpc.state import HostSubnetRecord, VpcNetworkSettings

log = logging.getLogger(__name__)

FORWARDING = "/proc/sys/net/ipv4/ip_forward"
FORWARDING6 = "/proc/sys/net/ipv6/conf/all/forwarding"
GATEWAY_CHECK_SECONDS = 5.0  # the worker reads the bridge's addresses this often (see _set_gateway_addresses)
# The host subnets are read again this often whatever was heard: a plugin of an earlier version changes
# a host's record without moving the settings on (`acsnet.plugins.vpc.state`).
MEMBERSHIP_CHECK_SECONDS = 30.0


class VpcOvsDatapath(Datapath):
    driver = "vpc"
    segment_name = "vpc network"
    adopt_global_networks = True
    legacy_global_networks_worked = False  # a record at the old key is one whose CreateNetwork failed

    def __init__(self, store, ovsdb: Ovsdb, host_id: str, bridge: str, uplink: str, *, underlay: str, datapath: str,
                 routes: RouteProvider):
        self.store = store
        self.host_id = host_id
        self.bridge = OvsBridge(ovsdb, bridge, COOKIE, userspace_datapath=datapath == "netdev")
        self.host_mac = links.mac_of(uplink)
        self.uplink = uplink
        self.uplink_mtu = links.mtu_of(uplink)
        self.underlay = underlay
        self.datapath = datapath
        self.routes = routes
        self.membership = Membership(store, host_id, underlay, self.host_mac)
        self.agent = None
        self._routes_applied: tuple | None = None
        self._watched_networks: set[str] = set()
        # Whether the host subnets may have changed since last read (`_membership_due`): a watch of a
        # network's settings said so (set on the store's thread), as of which liveness, and when.
        self._membership_moved = True
        self._membership_epoch = -1
        self._membership_read_at = 0.0
        self._read_for: frozenset | None = None  # the networks whose host subnets were last read
        self._own: tuple[HostSubnet, ...] = ()  # this host's subnets of its networks, as last read
        self._peers: tuple[HostSubnet, ...] = ()  # live peers' subnets of those networks, as last read
        self._vpc_ranges: tuple[netaddr.IPNetwork, ...] = ()  # every vpc network: gateways left in them are ours
        self._swarm_own: tuple[HostSubnet, ...] = ()  # this host's addresses on swarm networks, as /32s
        self._swarm_peers: tuple[HostSubnet, ...] = ()  # other nodes' addresses on them, as /32s
        # The ranges and IPv6 prefixes of the vpc networks stored when this host started, held since, or
        # had here as swarm networks: gateways left in them are ours too, after the store forgot them (the
        # last host's release takes a range's settings; the store keys networks by their IPv4 range alone).
        self._known_ranges: set[netaddr.IPNetwork] = set()
        self._to_release: set[netaddr.IPNetwork] = set()  # ranges this host had no network of any more
        self._gateway_addresses_set: tuple | None = None  # (addresses, vpc ranges) as last set on the bridge
        self._gateway_checked = 0.0  # when the bridge's addresses were last read

    def start(self, agent) -> None:
        self.agent = agent
        if not self.forwarding():
            try:
                with open(FORWARDING, "w") as f:  # the host routes for its containers
                    f.write("1")
            except OSError as e:  # a managed plugin: Docker mounts /proc/sys read-only in it
                log.error("IPv4 forwarding is off on this host and cannot be turned on here (%s): vpc networks "
                          "are refused until the host turns it on", e.strerror or e)

    @staticmethod
    def forwarding(path: str = FORWARDING) -> bool:
        try:
            with open(path) as f:
                return f.read().strip() == "1"
        except FileNotFoundError:  # IPv6 disabled in the kernel
            return False

    def turn_on_ipv6_forwarding(self) -> None:
        """Only once a dual-stack network is here: with forwarding on, the kernel ignores router
        advertisements on links with accept_ra=1, so those are set to 2 first (`links.enable_ipv6_forwarding`,
        as the vxlan driver does): a host taking its own IPv6 route from them keeps it."""
        if self.forwarding(FORWARDING6):
            return
        try:
            links.enable_ipv6_forwarding()
        except OSError as e:
            log.error("IPv6 forwarding is off on this host and cannot be turned on here (%s): dual-stack vpc "
                      "networks are refused until the host turns it on", e.strerror or e)

    def require_forwarding(self, *, ipv6: bool = False) -> None:
        if not self.forwarding():
            raise HostNotSetUp("IPv4 forwarding is off on this host, and the vpc driver routes for its containers; "
                               "this plugin cannot turn it on (a managed plugin's /proc/sys is read-only): run "
                               "'sysctl -w net.ipv4.ip_forward=1' on the host, or 'acsnet plugin install --host-setup'")
        if ipv6:
            self.turn_on_ipv6_forwarding()
            if not self.forwarding(FORWARDING6):
                raise HostNotSetUp("IPv6 forwarding is off on this host (or IPv6 is disabled), and the vpc driver "
                                   "routes a dual-stack network's IPv6 for its containers; this plugin cannot turn "
                                   "it on (a managed plugin's /proc/sys is read-only): run 'acsnet plugin install "
                                   "--host-setup' on the host, or 'sysctl -w net.ipv6.conf.all.forwarding=1' (where "
                                   "the host takes its own IPv6 route from router advertisements, set accept_ra=2 on "
                                   "that interface first)")

    def host_subnets(self) -> tuple[HostSubnet, ...]:
        """This host's subnets of its networks, as last read."""
        return self._own

    # -- what the segment agent asks -------------------------------------------------------------

    def adopt(self, network: SegmentNetwork) -> SegmentNetwork:
        settings = self.membership.settings(network.subnet)
        if settings is None:
            raise NotFound(f"vpc network {network.subnet.cidr} has no settings in the store (host_subnet_size, max_routes)")
        if settings.subnet6 is not None:
            self.turn_on_ipv6_forwarding()
        own = self.membership.claim_as_stored(network.subnet, settings)
        return dataclasses.replace(network, gateway=str(own.gateway), gateway6=str(own.gateway6) if own.subnet6 else None)

    def describe(self, network: SegmentNetwork) -> str:
        return f"vpc network {network.subnet.cidr}"

    def place_of(self, endpoint: SegmentEndpoint) -> dict:
        """The host subnet the endpoint's address is in (a vpc network has no segment)."""
        held = [h for h in self._own if netaddr.IPAddress(endpoint.ip) in netaddr.IPNetwork(h.subnet)]
        place = {"host subnet": held[0].subnet if held else None}
        if endpoint.ip6:
            place["host subnet6"] = held[0].subnet6 if held else None
        return place

    def record_for(self, endpoint: SegmentEndpoint) -> SegmentRecord:
        # The underlay address in the record: where the other hosts route a swarm network's address.
        return SegmentRecord(self.host_id, self.host_mac, self.underlay, endpoint.ip, endpoint.mac, endpoint.endpoint_id,
                             endpoint.ip6)

    def swarm_routes(self, network: SegmentNetwork) -> int:
        """How many of a swarm network's addresses are routed, each on its own: its address records, on
        every node (one store read)."""
        return len(state.segment_record_names(self.store, LAYOUTS[self.driver], network.segment))

    def port_options(self) -> dict:
        # Reserved VLAN 4095: NORMAL (the host's own traffic) never floods onto a vpc port; its traffic
        # is the flows' alone, as a vlan port's is.
        return {"tag": 4095}

    def program(self, view: HostView) -> list[str]:
        """A new network's host subnet (claimed just before) goes into the gateway and the flows, a
        removed one's out; the worker, woken, applies the routes."""
        if frozenset(n.subnet.cidr for n in view.networks if not n.swarm) != self._read_for:
            self._read_membership(view)
            self._release_dropped(view)
        # A swarm network's range and prefix are known from here on: its gateways leave the bridge with it,
        # whether or not the host subnets (which hold none of it) are read while it lasts.
        self._known_ranges |= {s.cidr for n in view.networks if n.swarm for s in (n.subnet, n.subnet6) if s is not None}
        swarm = self._swarm_addresses(view)
        if swarm != (self._swarm_own, self._swarm_peers):
            self.agent.wake()  # the worker applies the routes (a network removed wakes it no other way)
        self._swarm_own, self._swarm_peers = swarm
        self._set_gateway_addresses(view)
        flows = self._flows(view)
        self.bridge.install_flows(flows)
        return flows

    def _flows(self, view: HostView) -> list[str]:
        on_link = self.routes.on_link
        internal = {str(n.subnet.cidr) for n in view.networks if n.internal}
        marks = {n.network_id: internal_mark(n.subnet) for n in view.networks if n.internal}
        swarm = [n for n in view.networks if n.swarm]
        return vpc_flows(VpcDatapath(
            self.uplink, self.host_mac,
            tuple(OwnSubnet(h.subnet, str(h.gateway), self._internal_network(h) if h.network in internal else None,
                            h.subnet6 or "", str(h.gateway6 or "")) for h in self._own)
            + tuple(OwnSubnet(str(n.subnet.cidr), n.gateway, None, str(n.subnet6.cidr) if n.subnet6 else "", n.gateway6 or "")
                    for n in swarm),
            tuple(PeerSubnet(p.subnet, p.mac, p.subnet6 or "") for p in self._peers + self._swarm_peers if on_link and p.mac),
            tuple(VpcPort(e.host_port, e.ip, e.mac, marks.get(e.network_id), e.ip6)
                  for e in sorted(view.endpoints, key=lambda e: e.ip)),
            tuple(str(netaddr.IPNetwork(p.subnet).ip) for p in self._swarm_peers),
            tuple(str(netaddr.IPNetwork(p.subnet6).ip) for p in self._swarm_peers if p.subnet6)))

    @staticmethod
    def _swarm_addresses(view: HostView) -> tuple[tuple[HostSubnet, ...], tuple[HostSubnet, ...]]:
        """This host's and the other nodes' addresses on its swarm networks, each as a /32 to route (and,
        on a dual-stack network, its IPv6 address as a /128)."""
        swarm = {n.network_id: n for n in view.networks if n.swarm}

        def address(host: str, network: SegmentNetwork, ip: str, ip6: str, underlay: str, mac: str | None) -> HostSubnet:
            v6 = network.subnet6 is not None and bool(ip6)
            return HostSubnet(host, str(network.subnet.cidr), f"{ip}/32", underlay, mac=mac,
                              network6=str(network.subnet6.cidr) if v6 else None, subnet6=f"{ip6}/128" if v6 else None)

        own = tuple(address(view.host_id, swarm[e.network_id], e.ip, e.ip6, "", None)
                    for e in sorted(view.endpoints, key=lambda e: e.ip) if e.network_id in swarm)
        by_segment = {n.segment: n for n in swarm.values()}
        peers = tuple(sorted((address(r.host, by_segment[segment], r.ip, r.ip6, r.vtep, r.host_mac)
                              for segment, records in view.remote if segment in by_segment
                              for r in records if r.vtep), key=lambda h: netaddr.IPNetwork(h.subnet)))
        return own, peers

    def _internal_network(self, own: HostSubnet) -> InternalNetwork:
        """An internal network's members: its host subnets (and IPv6 slices) on this host and on the live
        peers."""
        network = netaddr.IPNetwork(own.network)
        peers = [p for p in self._peers if p.network == own.network]
        members = [own.subnet] + [p.subnet for p in peers]
        if not own.subnet6:
            return InternalNetwork(str(network.cidr), internal_mark(network), tuple(sorted(members)))
        members6 = [own.subnet6] + [p.subnet6 for p in peers if p.subnet6]
        return InternalNetwork(str(network.cidr), internal_mark(network), tuple(sorted(members)), own.network6 or "",
                               tuple(sorted(members6, key=netaddr.IPNetwork)))

    def flow_marks(self, network: SegmentNetwork) -> tuple[str, ...]:
        if network.swarm:
            return (f"nw_dst={network.subnet.cidr}",)
        return tuple(f"nw_dst={h.subnet}" for h in self._own if h.network == str(network.subnet.cidr))

    def _set_gateway_addresses(self, view: HostView, *, check: bool = False) -> None:
        """The gateway addresses on the bridge's own port: the host's, in each of its subnets and IPv6
        slices, and each swarm network's (the whole range on the link). Addresses of the bridge outside
        every vpc network (the host's own) are never touched. Read from the bridge and set when they
        differ from what was set last, or if `check` (the worker's, every GATEWAY_CHECK_SECONDS, repairs
        an address removed behind our back): an endpoint's program changes none, and the read cost
        CreateEndpoint and DeleteEndpoint 2 ms each on a lab host."""
        wanted = {(str(h.gateway), netaddr.IPNetwork(h.subnet).prefixlen) for h in self._own}
        wanted |= {(str(h.gateway6), netaddr.IPNetwork(h.subnet6).prefixlen) for h in self._own if h.subnet6}
        wanted |= {(n.gateway, n.subnet.prefixlen) for n in view.networks if n.swarm and n.gateway}
        wanted |= {(n.gateway6, n.subnet6.prefixlen) for n in view.networks if n.swarm and n.gateway6 and n.subnet6}
        ranges = self._vpc_ranges + tuple(self._known_ranges)
        if not check and (wanted, frozenset(ranges)) == self._gateway_addresses_set:
            return
        self._gateway_addresses_set = None  # not known until this has succeeded
        self._gateway_checked = time.monotonic()
        present = set(links.addresses(self.bridge.name, ipv6=True))
        for address, prefixlen in wanted - present:
            links.add_address(self.bridge.name, address, prefixlen)
        for address, prefixlen in present - wanted:
            if any(netaddr.IPAddress(address) in r for r in ranges):
                links.delete_address(self.bridge.name, address, prefixlen)
        self._gateway_addresses_set = (wanted, frozenset(ranges))

    def background(self, view: HostView) -> None:
        own, peers = self._own, self._peers
        if self._membership_due():
            self._read_membership(view)
        if time.monotonic() - self._gateway_checked >= GATEWAY_CHECK_SECONDS:
            with self.agent.lock:
                self._set_gateway_addresses(self.agent.view(remote=False), check=True)
        if self._to_release:
            with self.agent.lock:  # not while a network of the range comes back on this host
                self._release_dropped(self.agent.view(remote=False))
        with self.agent.lock:  # the other nodes' addresses on swarm networks are their records
            self._swarm_own, self._swarm_peers = self._swarm_addresses(self.agent.view())
        if (own, peers) != (self._own, self._peers):
            self.agent.sync()
        self._apply_routes()

    # -- host subnets ----------------------------------------------------------------------------

    def claim_host_subnet(self, network: netaddr.IPNetwork, settings: VpcSettings) -> HostSubnet:
        self.agent.ensure_loaded()
        return self.membership.claim_as_stored(network, settings)

    def _release_dropped(self, view: HostView) -> None:
        """Give up this host's subnet of each range it has no network of any more (removed here, or
        while the plugin was down): free for other hosts at once, and the range's settings go with its
        last subnet. A store that fails here leaves it to the worker's next pass."""
        self._to_release -= {n.subnet.cidr for n in view.networks if not n.swarm}
        for network in sorted(self._to_release):
            try:
                self.membership.release(network)
            except AcsnetError as e:
                log.warning("network=%s this host's subnet not released yet: %s", network, e.message)
                continue
            self._to_release.discard(network)
            if str(network) in self._watched_networks:
                self._watched_networks.discard(str(network))
                VpcNetworkSettings.unwatch(self.store, network)

    def _membership_due(self) -> bool:
        """Whether the host subnets may have changed since they were last read (see the module's docstring)."""
        return (self._membership_moved or self.agent.remote.liveness_epoch != self._membership_epoch
                or time.monotonic() - self._membership_read_at >= MEMBERSHIP_CHECK_SECONDS)

    def _on_settings(self, _settings) -> None:
        """A network's settings moved (a watch, on the store's thread): its host records changed."""
        self._membership_moved = True
        self.agent.wake()

    def _read_membership(self, view: HostView) -> None:
        """This host's subnets and the live peers' ones, of the networks this host has (store reads).
        The peers' liveness is followed from here on (one watch of every host's sessions), so that a
        peer dying or coming back reads them again; following new ones moves `liveness_epoch`, which
        reads them once more."""
        first = self._read_for is None
        with self.agent.lock:
            epoch = self.agent.remote.liveness_epoch
        self._membership_moved = False  # a change heard from here on reads them again
        try:
            self._read_hosts(view, first)
        except BaseException:
            self._membership_moved = True
            raise
        self._membership_epoch, self._membership_read_at = epoch, time.monotonic()

    def _read_hosts(self, view: HostView, first: bool) -> None:
        live = self.store.live_hosts()
        own, peers = [], []
        with self.agent.lock:  # the worker's view may be older than a network removed since: not watched, nor claimed again
            here = {n.subnet.cidr for n in self.agent.networks.values() if not n.swarm}
        networks = sorted({n.subnet.cidr for n in view.networks if not n.swarm} & here)
        hosts = set()
        for network in networks:
            if str(network) not in self._watched_networks:
                self._watched_networks.add(str(network))
                VpcNetworkSettings.watch(self.store, network, self._on_settings)
            self.membership.mark_gone(network, live)
            held = None
            records = HostSubnetRecord.read_all(self.store, network)
            hosts |= records.keys()
            for host, record in records.items():
                if record.left_at:
                    continue
                if host == self.host_id:
                    held = record
                elif host in live:
                    peers.append(record)
            if held is None:
                held = self._claim_again(network)
            if held is not None:
                own.append(held)
        ranges = self.membership.networks()
        if first:
            self._known_ranges |= self._stored_ranges(ranges, set(networks))
        self._known_ranges |= {netaddr.IPNetwork(r).cidr for h in own for r in (h.network, h.network6) if r}
        with self.agent.lock:
            self.agent.remote.follow_hosts(hosts)
            if self._read_for is not None:
                self._to_release |= self._read_for - set(networks)
            self._own, self._peers = tuple(own), tuple(sorted(peers, key=lambda p: (p.network, p.host)))
            self._vpc_ranges = tuple(sorted(set(ranges) | set(networks) | self._known_ranges
                                            | {n.subnet.cidr for n in view.networks}))
            self._read_for = frozenset(networks)

    def _stored_ranges(self, ranges: list[netaddr.IPNetwork], here: set[netaddr.IPNetwork]) -> set[netaddr.IPNetwork]:
        """At start: every stored range and IPv6 prefix (gateways left in them are ours); and the ranges
        this host still holds a subnet of but has no network of (removed while the plugin was down, or
        a create that failed), to be released."""
        known = set()
        for network in ranges:
            settings = self.membership.settings(network)
            known |= {network.cidr} | ({settings.subnet6.cidr} if settings and settings.subnet6 is not None else set())
            if network.cidr not in here and self.membership.held([network]):
                self._to_release.add(network.cidr)
        return known

    def _claim_again(self, network: netaddr.IPNetwork) -> HostSubnet | None:
        """This host has the network but no subnet of it: it was marked gone while its sessions were
        down (a reboot, a partition), or it left and was started again. It claims one again."""
        settings = self.membership.settings(network)
        if settings is None:
            return None
        try:
            held = self.membership.claim_as_stored(network, settings)
        except AcsnetError as e:
            log.warning("network=%s this host holds no subnet of it and cannot claim one: %s", network, e.message)
            return None
        log.info("network=%s subnet %s claimed again", network, held.subnet)
        return held

    # -- routes ----------------------------------------------------------------------------------

    def _apply_routes(self) -> None:
        own, peers = list(self._own + self._swarm_own), list(self._peers + self._swarm_peers)
        wanted = (tuple(sorted(s for h in own for s in (h.subnet, h.subnet6) if s)),
                  tuple(sorted((s, p.underlay) for p in peers for s in (p.subnet, p.subnet6) if s)))
        if wanted != self._routes_applied:
            self.routes.apply(own, peers)
            self._routes_applied = wanted
            log.info("vpc routes: own %s; peers %s", ", ".join(wanted[0]) or "-",
                     ", ".join(f"{s} via {u}" for s, u in wanted[1]) or "-")
