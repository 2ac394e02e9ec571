"""The vlan datapath of one host: the single owner of its store watches, its OVS ports and its flows.

Desired state lives in the store (this host's networks and endpoints, and every host's segment
records); OVS is programmed from it. Reconcile is the normal path: `sync` computes the whole flow table
from the state and installs it atomically, whether one endpoint changed, a watch fired on another
host's change, or the plugin just restarted. A worker thread handles watch events, learns gateway
MACs, sends announcements and re-syncs periodically (repairing flows someone removed); request
handlers never wait on it, except for the flows of their own change.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time

import netaddr

from ovsctl import arp, links, openflow
from ovsctl.ovsdb import Ovsdb
from ovsctl.vlan_pipeline import ArpAnswer, LocalPort, VlanDatapath, vlan_flows
from plugins.errors import AcsnetError, Conflict, NotFound
from plugins.metrics import PluginMetrics
from plugins.store import Create, Delete, Store, encode, join
from plugins.vlan import model
from plugins.vlan.model import SegmentRecord, VlanEndpoint, VlanNetwork

log = logging.getLogger(__name__)

ENDPOINT_ID = "acsnet-endpoint"
GATEWAY_RETRY_MAX_SECONDS = 30.0  # retries back off 1, 2, 4, ... seconds up to this


class VlanAgent:
    def __init__(self, store: Store, ovsdb: Ovsdb, host_id: str, bridge: str, uplink: str, *,
                 userspace_datapath: bool, resync_seconds: float = 30.0, metrics: PluginMetrics | None = None):
        self.store = store
        self.ovsdb = ovsdb
        self.host_id = host_id
        self.bridge = bridge
        self.uplink = uplink
        self.host_mac = links.mac_of(uplink)
        self.uplink_mtu = links.mtu_of(uplink)
        self.userspace_datapath = userspace_datapath
        self.resync_seconds = resync_seconds
        self.networks: dict[str, VlanNetwork] = {}
        self.endpoints: dict[str, VlanEndpoint] = {}
        self._segments: dict[int, dict[str, SegmentRecord]] = {}
        self._segment_names: dict[int, list[str]] = {}  # latest names seen by each segment watch
        self._watched: set[int] = set()
        self._announce: queue.SimpleQueue[VlanEndpoint] = queue.SimpleQueue()
        self._ports: set[str] = set()  # this bridge's ports as this agent made them; checked against OVSDB by reconcile
        self._gateway_retry: dict[str, tuple[float, int]] = {}  # network → (when to ask again, attempts)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._worker: threading.Thread | None = None
        self._loaded = False
        self.metrics = metrics

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the desired state, make OVS match it, then keep it matching. If the store does not
        answer now, the worker keeps trying: the plugin serves (and fails requests clearly) meanwhile."""
        try:
            self._initial_load()
        except AcsnetError as e:
            log.warning("vlan agent could not load its state yet (%s); retrying in the background", e.message)
        self._worker = threading.Thread(target=self._work, name="vlan-agent", daemon=True)
        self._worker.start()

    def _initial_load(self) -> None:
        with self._lock:
            self._load()
            self._reconcile_ports()
            for vlan in {n.vlan for n in self.networks.values()}:
                self._watch(vlan)
            self.sync()
            self._loaded = True

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def _load(self) -> None:
        for nid in self.store.children(model.host_networks(self.host_id)):
            data = self.store.get_json(join(model.host_networks(self.host_id), nid))
            if data:
                self.networks[nid] = VlanNetwork.from_json(data)
        for eid in self.store.children(model.host_endpoints(self.host_id)):
            data = self.store.get_json(join(model.host_endpoints(self.host_id), eid))
            if data:
                self.endpoints[eid] = VlanEndpoint.from_json(data)

    def _reconcile_ports(self) -> None:
        """Remove ports no endpoint owns; re-attach endpoints whose veth survived; forget endpoints
        whose veth is gone (their container is gone: a reboot, or a crash while we were down)."""
        ports = self.ovsdb.ports(self.bridge)
        self._ports = set(ports)
        for name, info in ports.items():
            owner = info["external_ids"].get(ENDPOINT_ID)
            if owner and owner not in self.endpoints:
                log.info("port=%s endpoint=%s removed: no endpoint owns it", name, owner)
                self._repaired()
                self.ovsdb.delete_port(self.bridge, name)
                links.delete(name)
        for endpoint in list(self.endpoints.values()):
            # The veth decides, not OVSDB: after a reboot OVSDB still lists ports whose veths are gone.
            if not links.exists(endpoint.host_port):
                log.info("endpoint=%s forgotten: its veth is gone", endpoint.endpoint_id)
                self._repaired()
                self._forget_endpoint(endpoint)
            elif endpoint.host_port not in ports:
                log.info("endpoint=%s port re-attached", endpoint.endpoint_id)
                self._repaired()
                self._attach(endpoint)

    # -- networks --------------------------------------------------------------------------------

    def network(self, network_id: str) -> VlanNetwork:
        network = self.networks.get(network_id)
        if network is None:
            raise NotFound(f"network {network_id} is not known to the vlan driver on host {self.host_id}")
        return network

    def add_network(self, network: VlanNetwork) -> None:
        with self._lock:
            for other in self.networks.values():
                if other.vlan == network.vlan and other.subnet != network.subnet and other.network_id != network.network_id:
                    raise Conflict(f"VLAN {network.vlan} is already used on host {self.host_id} by network "
                                   f"{other.network_id[:12]} with subnet {other.subnet.cidr}, not {network.subnet.cidr}")
            path = join(model.host_networks(self.host_id), network.network_id)
            if not self.store.create(path, encode(network.to_json())):
                current = self.store.get(path)
                self.store.compare_and_set(path, encode(network.to_json()), current.version if current else 0)
            self.networks[network.network_id] = network
            self._watch(network.vlan)
            self.sync()
        self._wake.set()  # the worker learns the gateway's MAC if it is not given

    def remove_network(self, network_id: str) -> None:
        with self._lock:
            for endpoint in [e for e in self.endpoints.values() if e.network_id == network_id]:
                self.remove_endpoint(endpoint.endpoint_id)
            self.store.delete(join(model.host_networks(self.host_id), network_id))
            self.networks.pop(network_id, None)
            self.sync()

    # -- endpoints -------------------------------------------------------------------------------

    def endpoint(self, endpoint_id: str) -> VlanEndpoint:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id} is not known to the vlan driver on host {self.host_id}")
        return endpoint

    def add_endpoint(self, endpoint: VlanEndpoint) -> None:
        with self._lock:
            if endpoint.endpoint_id in self.endpoints:
                if not links.exists(endpoint.host_port):
                    raise Conflict(f"endpoint {endpoint.endpoint_id} exists but its veth is gone; delete it first")
                return  # dockerd retrying: idempotent
            self._claim_segment_address(endpoint)
            try:
                self._attach(endpoint, create_veth=True)
                self.endpoints[endpoint.endpoint_id] = endpoint
                self.sync()
            except BaseException:
                self.endpoints.pop(endpoint.endpoint_id, None)
                self._forget_endpoint(endpoint)  # nothing half-made stays behind
                raise

    def _claim_segment_address(self, endpoint: VlanEndpoint) -> None:
        """Record the address on its VLAN for every host, in one commit with this host's record;
        a record of the same address left by a host that is gone is removed in the same commit."""
        segment = model.segment(endpoint.vlan)
        self.store.create(segment)
        self.store.create(model.host_endpoints(self.host_id))
        operations = []
        for name in self.store.children(segment):
            if name.split("~")[0] != endpoint.ip:
                continue
            node = self.store.get(join(segment, name))
            if node is None:
                continue
            holder = SegmentRecord.from_json(node.json())
            stale_here = holder.host == self.host_id and holder.endpoint_id not in self.endpoints
            if not stale_here and holder.host != self.host_id and self.store.host_alive(holder.host):
                raise Conflict(f"address {endpoint.ip} on VLAN {endpoint.vlan} is in use by an endpoint on host {holder.host}")
            if not stale_here and holder.host == self.host_id:
                raise Conflict(f"address {endpoint.ip} on VLAN {endpoint.vlan} is in use by another endpoint on this host")
            operations.append(Delete(join(segment, name), node.version))
        record = SegmentRecord(self.host_id, self.host_mac, endpoint.ip, endpoint.mac, endpoint.endpoint_id)
        operations += [
            Create(join(segment, model.segment_key(endpoint.ip, endpoint.endpoint_id)), encode(record.to_json())),
            Create(join(model.host_endpoints(self.host_id), endpoint.endpoint_id), encode(endpoint.to_json())),
        ]
        if not self.store.commit(operations):
            raise Conflict(f"address {endpoint.ip} on VLAN {endpoint.vlan} changed hands while it was claimed; retry")

    def _attach(self, endpoint: VlanEndpoint, create_veth: bool = False) -> None:
        network = self.networks.get(endpoint.network_id)
        mtu = network.mtu if network else self.uplink_mtu
        if create_veth:
            links.create_veth(endpoint.host_port, endpoint.container_port, mtu=mtu, container_mac=endpoint.mac)
            if self.userspace_datapath:
                links.disable_tx_checksum(endpoint.host_port)
                links.disable_tx_checksum(endpoint.container_port)
        self.ovsdb.add_port(self.bridge, endpoint.host_port, tag=endpoint.vlan, external_ids={
            ENDPOINT_ID: endpoint.endpoint_id, "acsnet-network": endpoint.network_id,
            "acsnet-ip": endpoint.ip, "attached-mac": endpoint.mac})
        self._ports.add(endpoint.host_port)

    def remove_endpoint(self, endpoint_id: str) -> None:
        with self._lock:
            endpoint = self.endpoints.pop(endpoint_id, None)
            if endpoint is None:
                return  # already gone: idempotent
            self._forget_endpoint(endpoint)
            self.sync()

    def _forget_endpoint(self, endpoint: VlanEndpoint) -> None:
        self.endpoints.pop(endpoint.endpoint_id, None)
        self._ports.discard(endpoint.host_port)
        self.ovsdb.delete_port(self.bridge, endpoint.host_port)
        links.delete(endpoint.host_port)
        self.store.delete(join(model.segment(endpoint.vlan), model.segment_key(endpoint.ip, endpoint.endpoint_id)))
        self.store.delete(join(model.host_endpoints(self.host_id), endpoint.endpoint_id))

    def announce(self, endpoint: VlanEndpoint) -> None:
        """Queue a gratuitous ARP for the endpoint's address with the host's MAC (the worker sends it).
        Takes no lock: Join must not wait behind a sync."""
        self._announce.put(endpoint)
        self._wake.set()

    # -- segments and flows ----------------------------------------------------------------------

    def _watch(self, vlan: int) -> None:
        if vlan in self._watched:
            return
        self._watched.add(vlan)
        self._segments.setdefault(vlan, {})

        def on_change(names: list[str]) -> None:  # on the store's thread: hand over, never block
            self._segment_names[vlan] = names
            self._wake.set()

        self.store.watch_children(model.segment(vlan), on_change)
        self._refresh_segment(vlan)

    def _refresh_segment(self, vlan: int) -> bool:
        """Bring the cached records of a segment in line with its names; True if a record of another
        host changed (this host's own records do not change its flows). Records are immutable, so only
        new names are read."""
        names = self._segment_names.get(vlan)
        if names is None:
            names = self.store.children(model.segment(vlan))
            self._segment_names[vlan] = names
        cache = self._segments.setdefault(vlan, {})
        changed = False
        for gone in set(cache) - set(names):
            changed |= cache.pop(gone).host != self.host_id
        for name in set(names) - set(cache):
            data = self.store.get_json(join(model.segment(vlan), name))
            if data:
                cache[name] = SegmentRecord.from_json(data)
                changed |= cache[name].host != self.host_id
        return changed

    def desired_datapath(self) -> VlanDatapath:
        ports = self._ports
        vlans = {n.vlan for n in self.networks.values()}
        local = tuple(LocalPort(e.host_port, e.vlan, e.ip, e.mac) for e in self.endpoints.values() if e.host_port in ports)
        remote = tuple(ArpAnswer(vlan, r.ip, r.host_mac) for vlan in sorted(vlans)
                       for r in self._segments.get(vlan, {}).values() if r.host != self.host_id)
        gateways = tuple(ArpAnswer(n.vlan, n.gateway, n.gateway_mac) for n in self.networks.values()
                         if n.gateway and n.gateway_mac)
        return VlanDatapath(self.uplink, self.host_mac, frozenset(vlans), local, remote, gateways)

    def sync(self) -> None:
        with self._lock:
            flows = vlan_flows(self.desired_datapath())
            openflow.replace_flows(self.bridge, flows)
            if self.metrics is not None:
                self._report(flows)

    def _report(self, flows: list[str]) -> None:
        self.metrics.reconcile_runs.inc()
        self.metrics.endpoints.clear()
        self.metrics.flows.clear()
        counted = 0
        for network_id, network in self.networks.items():
            endpoints = sum(1 for e in self.endpoints.values() if e.network_id == network_id)
            self.metrics.endpoints.labels(network_id[:12]).set(endpoints)
            marks = (f"reg0={network.vlan},", f"dl_vlan={network.vlan},", f"set_field:{network.vlan}->reg0")
            mine = sum(1 for f in flows if any(m in f for m in marks))
            self.metrics.flows.labels(network_id[:12]).set(mine)
            counted += mine
        self.metrics.flows.labels("shared").set(max(len(flows) - counted, 0))

    def _repaired(self) -> None:
        if self.metrics is not None:
            self.metrics.reconcile_repairs.inc()

    # -- the worker ------------------------------------------------------------------------------

    def _next_wake(self) -> float:
        due = [when for when, _ in self._gateway_retry.values()]
        return max(0.05, min([self.resync_seconds / 3] + [when - time.monotonic() for when in due]))

    def _work(self) -> None:
        importlib.import_module("scapy.layers.l2")  # about a second to load: not inside the first probe

        last_full = time.monotonic()
        while not self._stopped.is_set():
            self._wake.wait(timeout=self._next_wake())
            self._wake.clear()
            try:
                if not self._loaded:
                    self._initial_load()
                with self._lock:
                    changed = any([self._refresh_segment(vlan) for vlan in list(self._watched)])
                    if changed:
                        self.sync()
                self._send_announcements()
                self._learn_gateways()
                if time.monotonic() - last_full > self.resync_seconds:
                    last_full = time.monotonic()
                    with self._lock:
                        self._reconcile_ports()
                        self.sync()  # also repairs flows removed behind our back
            except Exception:  # the agent must outlive a store outage or an OVS hiccup
                log.exception("vlan agent pass failed; retrying")
                time.sleep(1)

    def _send_announcements(self) -> None:
        pending = []
        while not self._announce.empty():
            pending.append(self._announce.get_nowait())
        for endpoint in pending:
            try:
                arp.announce(self.bridge, self.uplink, endpoint.vlan, endpoint.ip, self.host_mac)
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
            mac = arp.probe_mac(self.ovsdb, self.bridge, network.vlan, network.gateway, self.host_mac)
            if mac is None:
                delay = min(2.0 ** attempts, GATEWAY_RETRY_MAX_SECONDS)
                self._gateway_retry[network.network_id] = (time.monotonic() + delay, attempts + 1)
                log.warning("network=%s gateway %s did not answer on VLAN %d; asking again in %gs",
                            network.network_id[:12], network.gateway, network.vlan, delay)
                continue
            self._gateway_retry.pop(network.network_id, None)
            mac = str(netaddr.EUI(mac, dialect=netaddr.mac_unix_expanded))
            log.info("network=%s gateway %s is at %s", network.network_id[:12], network.gateway, mac)
            learned = VlanNetwork(network.network_id, network.vlan, network.subnet, network.gateway, mac, network.mtu)
            with self._lock:
                if network.network_id in self.networks:
                    self.add_network(learned)
