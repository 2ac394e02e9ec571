"""The vlan datapath of one host: containers on tagged ports of the host bridge, the ARP proxy and MAC
NAT in its flows (`acsnet.ovsctl.vlan_pipeline`), and what only a VLAN needs besides: learning the gateway's
MAC from the real router, and gratuitous ARPs so the data center's switches learn where an address went.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import queue
import time

import netaddr

from acsnet.errors import AcsnetError
from acsnet.ovsctl import arp
from acsnet.ovsctl.vlan_pipeline import COOKIE, ArpAnswer, LocalPort, VlanDatapath, vlan_flows
from acsnet.plugins.segments.agent import SegmentAgent
from acsnet.plugins.segments.model import LAYOUTS, SegmentEndpoint, SegmentNetwork, SegmentRecord

log = logging.getLogger(__name__)

GATEWAY_RETRY_MAX_SECONDS = 30.0  # retries back off 1, 2, 4, ... seconds up to this


class VlanAgent(SegmentAgent):
    segment_name = "VLAN"
    flow_cookie = COOKIE

    def __init__(self, store, ovsdb, host_id: str, bridge: str, uplink: str, **kwargs):
        super().__init__(store, ovsdb, LAYOUTS["vlan"], host_id, bridge, uplink, **kwargs)
        self._announce: queue.SimpleQueue[SegmentEndpoint] = queue.SimpleQueue()
        self._gateway_retry: dict[str, tuple[float, int]] = {}  # network → (when to ask again, attempts)
        self._scapy_loaded = False

    def port_options(self, endpoint: SegmentEndpoint) -> dict:
        return {"tag": endpoint.segment}

    def record_for(self, endpoint: SegmentEndpoint) -> SegmentRecord:
        return SegmentRecord(self.host_id, self.host_mac, "", endpoint.ip, endpoint.mac, endpoint.endpoint_id)

    def flow_marks(self, network: SegmentNetwork) -> tuple[str, ...]:
        v = network.segment
        return (f"reg0={v},", f"dl_vlan={v},", f"set_field:{v}->reg0")

    def desired_datapath(self) -> VlanDatapath:
        vlans = {n.segment for n in self.networks.values()}
        local = tuple(LocalPort(e.host_port, e.segment, e.ip, e.mac) for e in self.attached_endpoints())
        remote = tuple(ArpAnswer(vlan, r.ip, r.host_mac) for vlan in sorted(vlans) for r in self.remote_records(vlan))
        gateways = tuple(ArpAnswer(n.segment, n.gateway, n.gateway_mac) for n in self.networks.values()
                         if n.gateway and n.gateway_mac)
        return VlanDatapath(self.uplink, self.host_mac, frozenset(vlans), local, remote, gateways)

    def flows(self) -> list[str]:
        return vlan_flows(self.desired_datapath())

    def joined(self, endpoint: SegmentEndpoint) -> None:
        """Queue a gratuitous ARP for the endpoint's address with the host's MAC (the worker sends it)."""
        self._announce.put(endpoint)
        self._wake.set()

    def add_network(self, network: SegmentNetwork, *, adopted: bool = False) -> None:
        super().add_network(network, adopted=adopted)
        self._wake.set()  # the worker learns the gateway's MAC if it is not given

    # -- background work -------------------------------------------------------------------------

    def next_wake(self) -> float:
        due = [when for when, _ in self._gateway_retry.values()]
        return min([super().next_wake()] + [when - time.monotonic() for when in due])

    def background(self) -> None:
        if not self._scapy_loaded:
            importlib.import_module("scapy.layers.l2")  # about a second to load: not inside the first probe's wait
            self._scapy_loaded = True
        self._send_announcements()
        self._learn_gateways()

    def _send_announcements(self) -> None:
        pending = []
        while not self._announce.empty():
            pending.append(self._announce.get_nowait())
        for endpoint in pending:
            try:
                arp.announce(self.uplink, endpoint.segment, endpoint.ip, self.host_mac)
            except AcsnetError as e:
                log.warning("endpoint=%s gratuitous ARP not sent: %s", endpoint.endpoint_id, e.message)

    def _learn_gateways(self) -> None:
        unknown = [n for n in self.networks.values() if n.gateway and not n.gateway_mac]
        for gone in set(self._gateway_retry) - {n.network_id for n in unknown}:
            del self._gateway_retry[gone]
        for network in unknown:
            when, attempts = self._gateway_retry.get(network.network_id, (0.0, 0))
            if time.monotonic() < when:
                continue
            mac = arp.probe_mac(self.ovsdb, self.bridge, network.segment, network.gateway, self.host_mac)
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
            with self._lock:
                if network.network_id in self.networks:
                    self.add_network(learned)
