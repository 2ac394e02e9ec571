"""The vlan datapath of one host: containers on ports of the host bridge whose flows put them on their
VLAN, the ARP proxy and MAC NAT in those flows (`acsnet.ovsctl.vlan_pipeline`), and what only a VLAN
needs besides: learning the gateway's MAC from the real router, gratuitous ARPs so the data center's
switches learn where an address went, and router solicitations on behalf of containers of a network
that takes its router's advertisements.
The segment agent (`acsnet.plugins.segments.agent`) drives it through the `Datapath` interface.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import time

import netaddr

from acsnet.errors import AcsnetError
from acsnet.ovsctl import arp, links, neighbour
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.ovsctl.vlan_pipeline import COOKIE, ArpAnswer, LocalPort, VlanDatapath, vlan_flows
from acsnet.plugins.segments.bridge import OvsBridge
from acsnet.plugins.segments.datapath import Datapath, HostView
from acsnet.plugins.segments.model import SegmentEndpoint, SegmentNetwork, SegmentRecord

log = logging.getLogger(__name__)

GATEWAY_RETRY_MAX_SECONDS = 30.0  # retries back off 1, 2, 4, ... seconds up to this
# A joined container's router solicitation waits for dockerd to finish its network (an advertisement's
# route before dockerd's static one fails the container: "failed to set IPv6 gateway ... file exists")
# and for the router's MAC (the flow that lets the answer in needs it): checked this often, this long.
SOLICIT_CHECK_SECONDS, SOLICIT_WAIT_SECONDS = 0.1, 60.0


def vlan_table(view: HostView, uplink: str, host_mac: str) -> list[str]:
    """The host bridge's vlan flows for `view`."""
    local = tuple(LocalPort(e.host_port, e.segment, e.ip, e.mac, e.ip6) for e in view.endpoints)
    remote = tuple(ArpAnswer(vlan, r.ip, r.host_mac, r.ip6) for vlan in view.segments() for r in view.remote_records(vlan))
    # A VLAN's router answers both families from one MAC (the one learned for its IPv4 gateway): the
    # IPv6 gateway is answered with it, and not before it is known.
    gateways = tuple(ArpAnswer(n.segment, n.gateway, n.gateway_mac, n.gateway6 or "")
                     for n in view.networks if n.gateway and n.gateway_mac)
    accept_ra = frozenset(n.segment for n in view.networks if n.accept_ra)
    return vlan_flows(VlanDatapath(uplink, host_mac, frozenset(view.segments()), local, remote, gateways, accept_ra))


class VlanOvsDatapath(Datapath):
    driver = "vlan"
    segment_name = "VLAN"

    def __init__(self, ovsdb: Ovsdb, bridge: str, uplink: str, *, userspace_datapath: bool):
        self.ovsdb = ovsdb
        self.bridge = OvsBridge(ovsdb, bridge, COOKIE, userspace_datapath=userspace_datapath)
        self.uplink = uplink
        self.host_mac = links.mac_of(uplink)
        self.uplink_mtu = links.mtu_of(uplink)
        self.agent = None
        self._gateway_retry: dict[str, tuple[float, int]] = {}  # network → (when to ask again, attempts)
        self._to_solicit: dict[str, tuple[SegmentEndpoint, float]] = {}  # endpoint → (it, when to give up)
        self._scapy_loaded = False

    def start(self, agent) -> None:
        self.agent = agent

    def port_options(self) -> dict:
        # Reserved VLAN 4095, as a vpc port's, not the endpoint's VLAN: a port's tag matters to NORMAL
        # switching alone, and a container's frames never reach NORMAL (its flows carry them, from
        # table 0). Its VLAN as the tag let NORMAL switch its frames onto the VLAN, past the MAC NAT,
        # before its flows were in; and taking a spare (4095) changed the tag, which ovs-vswitchd
        # reconfigures the port for, while the flows' change waited behind it.
        return {"tag": 4095}

    def record_for(self, endpoint: SegmentEndpoint) -> SegmentRecord:
        return SegmentRecord(self.agent.host_id, self.host_mac, "", endpoint.ip, endpoint.mac, endpoint.endpoint_id, endpoint.ip6)

    def flow_marks(self, network: SegmentNetwork) -> tuple[str, ...]:
        v = network.segment
        return (f"reg0={v},", f"dl_vlan={v},", f"set_field:{v}->reg0")

    def program(self, view: HostView) -> list[str]:
        flows = vlan_table(view, self.uplink, self.host_mac)
        self.bridge.install_flows(flows)
        return flows

    # -- background work -------------------------------------------------------------------------

    def announce(self, view: HostView, joined: list[SegmentEndpoint], arrived: list[tuple[int, SegmentRecord]]) -> None:
        """A gratuitous ARP for each joined endpoint's address with the host's MAC, and an unsolicited
        neighbour advertisement for its IPv6 address, so that the data center's switches and routers
        learn where it is now."""
        self._load_scapy()
        for endpoint in joined:
            try:
                arp.announce(self.uplink, endpoint.segment, endpoint.ip, self.host_mac)
                if endpoint.ip6:
                    arp.announce_frame(self.uplink, endpoint.segment, neighbour.unsolicited_advert(endpoint.ip6, self.host_mac))
            except AcsnetError as e:
                log.warning("endpoint=%s gratuitous ARP or neighbour advertisement not sent: %s", endpoint.endpoint_id, e.message)
            accepting = any(n.network_id == endpoint.network_id and n.accept_ra for n in view.networks)
            if endpoint.ip6 and accepting and self.agent.namer is not None:
                self._to_solicit[endpoint.endpoint_id] = (endpoint, time.monotonic() + SOLICIT_WAIT_SECONDS)

    def next_wake(self) -> float | None:
        due = [when - time.monotonic() for when, _ in self._gateway_retry.values()]
        due += [SOLICIT_CHECK_SECONDS] if self._to_solicit else []
        return min(due) if due else None

    def background(self, view: HostView) -> None:
        self._load_scapy()
        self._learn_gateways(view)
        self._solicit_routers(view)

    def _solicit_routers(self, view: HostView) -> None:
        """The container's own router solicitation, which the flows drop (its option holds the
        container's MAC, and OVS cannot rewrite it: `acsnet.ovsctl.vlan_pipeline`), sent by the host
        with its MAC in the frame and the option: the router's answer then comes at once, not at its
        next periodic advertisement. Once dockerd lists the container as running (before, the answer
        would find its link down, or add the advertised default route before dockerd's static one, which
        dockerd then fails to add, and the container fails to start) and the router's MAC is known (the
        flow letting its advertisements in needs it). The flows drop the container's later solicitations
        (its link set down and up again) unanswered: it learns from the periodic advertisements then.
        Without a container namer (no dockerd socket, as for a managed plugin) none is sent."""
        networks = {n.network_id: n for n in view.networks}
        attached = {e.endpoint_id for e in view.endpoints}
        for endpoint_id, (endpoint, give_up) in list(self._to_solicit.items()):
            network = networks.get(endpoint.network_id)
            if network is None or endpoint_id not in attached:
                del self._to_solicit[endpoint_id]
            elif network.gateway_mac and self.agent.container_started(endpoint_id):
                del self._to_solicit[endpoint_id]
                try:
                    arp.announce_frame(self.uplink, endpoint.segment,
                                       neighbour.router_solicitation(endpoint.ip6, self.host_mac), count=1)
                    log.info("endpoint=%s router solicitation sent for %s on VLAN %d",
                             endpoint_id[:12], endpoint.ip6, endpoint.segment)
                except OSError as e:  # the uplink's packet socket
                    log.warning("endpoint=%s router solicitation not sent: %s", endpoint_id[:12], e)
            elif time.monotonic() > give_up:
                del self._to_solicit[endpoint_id]
                log.warning("endpoint=%s router solicitation not sent: no running container or no router MAC "
                            "in %gs", endpoint_id[:12], SOLICIT_WAIT_SECONDS)

    def _load_scapy(self) -> None:
        if not self._scapy_loaded:
            importlib.import_module("scapy.layers.l2")  # about a second to load: not inside the first probe's wait
            self._scapy_loaded = True

    def _learn_gateways(self, view: HostView) -> None:
        unknown = [n for n in view.networks if n.gateway and not n.gateway_mac]
        for gone in set(self._gateway_retry) - {n.network_id for n in unknown}:
            del self._gateway_retry[gone]
        for network in unknown:
            when, attempts = self._gateway_retry.get(network.network_id, (0.0, 0))
            if time.monotonic() < when:
                continue
            mac = arp.probe_mac(self.ovsdb, self.bridge.name, network.segment, network.gateway, self.host_mac)
            if mac is None:
                delay = min(2.0 ** attempts, GATEWAY_RETRY_MAX_SECONDS)
                self._gateway_retry[network.network_id] = (time.monotonic() + delay, attempts + 1)
                log.warning("network=%s gateway %s did not answer on VLAN %d; asking again in %gs",
                            network.network_id[:12], network.gateway, network.segment, delay)
                continue
            self._gateway_retry.pop(network.network_id, None)
            mac = str(netaddr.EUI(mac, dialect=netaddr.mac_unix_expanded))
            log.info("network=%s gateway %s is at %s", network.network_id[:12], network.gateway, mac)
            learned = dataclasses.replace(network, gateway_mac=mac)
            with self.agent.lock:
                if network.network_id in self.agent.networks:
                    self.agent.add_network(learned)
