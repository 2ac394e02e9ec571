"""The datapath of one segment driver (vlan, vxlan, vpc) on one host: the single owner of its store watches,
its OVS ports and the flow table of its bridge.

Desired state lives in the store (this host's networks and endpoints, and every host's segment
records); OVS is programmed from it. Reconcile is the normal path: `sync` computes the whole flow table
from the state and installs it atomically, whether one endpoint changed, a watch fired on another
host's change, or the plugin just restarted. A worker thread handles watch events, removes endpoints
dockerd orphaned, does the driver's own background work and re-syncs periodically (repairing flows
someone removed); request handlers never wait on it, except for the flows of their own change.

A driver subclasses `SegmentAgent` with what differs: its flows, its port options, what its segment
records carry, and background work of its own.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from acsnet.errors import AcsnetError, Conflict, NotFound, StoreUnavailable
from acsnet.metrics import PluginMetrics
from acsnet.ovsctl import links, openflow
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import Layout, SegmentEndpoint, SegmentNetwork, SegmentRecord
from acsnet.store import Create, Delete, Store, encode
from acsnet.store.liveness import HostSessions

log = logging.getLogger(__name__)

ENDPOINT_ID = "acsnet-endpoint"  # OVSDB external_ids key naming the endpoint that owns a port
DRIVER_ID = "acsnet-driver"  # ... and the driver whose endpoint it is (vlan and vpc share the host bridge)
ORPHAN_GRACE_SECONDS = 60.0  # dockerd joins an endpoint within moments of creating it
ORPHAN_CHECK_SECONDS = 5.0


class SegmentAgent:
    segment_name = "segment"  # how users call the number: "VLAN", "VNI"
    flow_cookie = "0x0"  # the cookie every flow of the driver carries
    withdraw_dead_hosts = False  # leave out the records of hosts whose every session ended
    # Whether the driver's packets may cross OVS with TCP segmentation and checksums still to do (the
    # userspace datapath's TSO); OVS 3.1 drops such packets at a tunnel port, so vxlan says no.
    tso_capable = True
    # Global scope: whether every host takes a network as soon as it exists, rather than at its first
    # endpoint. vpc must: the IPAM hands out a host's first address before the driver hears of it.
    adopt_global_networks = False
    legacy_global_networks_worked = True  # see _move_legacy_global_networks

    def __init__(self, store: Store, ovsdb: Ovsdb, layout: Layout, host_id: str, bridge: str, uplink: str, *,
                 userspace_datapath: bool, cluster_wide: bool = False, resync_seconds: float = 30.0,
                 orphan_grace: float = ORPHAN_GRACE_SECONDS, metrics: PluginMetrics | None = None):
        self.store = store
        self.ovsdb = ovsdb
        self.layout = layout
        self.host_id = host_id
        self.bridge = bridge
        self.uplink = uplink
        self.host_mac = links.mac_of(uplink)
        self.uplink_mtu = links.mtu_of(uplink)
        self.userspace_datapath = userspace_datapath
        self.resync_seconds = resync_seconds
        self.orphan_grace = orphan_grace
        # Global scope: dockerd sends CreateNetwork and DeleteNetwork to one host only. The network is
        # kept cluster-wide too; other hosts adopt it at their first endpoint (or at once: see
        # adopt_global_networks), and drop it when it goes.
        self.cluster_wide = cluster_wide
        self._cluster_names: list[str] | None = None
        # Whether dockerd announced its cluster (DiscoverNew) since it activated the driver; None until
        # it activates the driver in this process (see cluster_announced).
        self._cluster_announced: bool | None = None
        self._forget_cluster_node = False
        self._not_adopted: set[str] = set()  # global networks this host could not take (vpc: route limit)
        self.metrics = metrics
        self.networks: dict[str, SegmentNetwork] = {}
        self.endpoints: dict[str, SegmentEndpoint] = {}
        self._segments: dict[int, dict[str, SegmentRecord]] = {}
        self._segment_names: dict[int, list[str]] = {}  # latest names seen by each segment watch
        self._watched: set[int] = set()
        self._ports: set[str] = set()  # this bridge's ports as this agent made them; checked against OVSDB by reconcile
        self._alive: dict[str, bool] = {}  # other hosts with records, as their session watches last said
        self._alive_in_flows: frozenset[str] = frozenset()
        self._arrived: list[tuple[int, SegmentRecord]] = []  # other hosts' records new since the last pass
        self._idle_since: dict[str, float] = {}  # endpoint → when its container end was first seen on the host
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._worker: threading.Thread | None = None
        self._loaded = False
        self._flow_table = openflow.FlowTable(bridge, self.flow_cookie)
        self._made: set[str] = set()  # store nodes this process made or found
        self._unplugged: list[str] = []  # ports of forgotten endpoints, still named by installed flows
        # ports (and veth indexes) of deleted endpoints, removed by the retirer thread: the kernel takes
        # ~20 ms to delete a veth (an RCU grace period), which DeleteEndpoint need not wait for
        self._retiring: queue.SimpleQueue[tuple[str, int | None] | None] = queue.SimpleQueue()
        self._retirer = threading.Thread(target=self._retire_forever, name=f"{layout.driver}-retirer", daemon=True)

    # -- what a driver defines -------------------------------------------------------------------

    def flows(self) -> list[str]:
        """The whole flow table of the bridge for the current state (called under the lock)."""
        raise NotImplementedError

    def port_options(self, endpoint: SegmentEndpoint) -> dict:
        """Extra OVSDB settings of an endpoint's port (the vlan driver's tag)."""
        return {}

    def record_for(self, endpoint: SegmentEndpoint) -> SegmentRecord:
        raise NotImplementedError

    def segment_label(self, number: int) -> str:
        """A segment as users name it in errors: "VLAN 217", "VNI 110"."""
        return f"{self.segment_name} {number}"

    def flow_marks(self, network: SegmentNetwork) -> tuple[str, ...]:
        """Substrings that tell a network's flows apart, for the per-network flow gauge."""
        return ()

    def adopted(self, network: SegmentNetwork) -> SegmentNetwork:
        """A global network created on another host, as this host keeps it (vpc: with this host's own
        subnet's gateway)."""
        return network

    def background(self) -> None:
        """The driver's own work on each pass of the worker."""

    def before_sync(self) -> None:
        """Make what the flows will name (called under the lock)."""

    def networks_changed(self) -> None:
        """This host gained or lost a network; the sync follows (called under the lock)."""

    def after_sync(self) -> None:
        """Remove what the flows no longer name, and program what follows them (under the lock)."""

    def endpoint_forgotten(self, endpoint: SegmentEndpoint) -> None:
        """The endpoint's records are gone (under the lock)."""

    def joined(self, endpoint: SegmentEndpoint) -> None:
        """A container joined the endpoint (Join must not wait behind a sync: take no lock)."""

    def records_arrived(self, records: list[tuple[int, SegmentRecord]]) -> None:
        """Other hosts' records that appeared after the first load, once their flows are installed."""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the desired state, make OVS match it, then keep it matching. If the store does not
        answer now, the worker keeps trying: the plugin serves (and fails requests clearly) meanwhile."""
        try:
            self._initial_load()
        except AcsnetError as e:
            log.warning("%s agent could not load its state yet (%s); retrying in the background", self.layout.driver, e.message)
        self._worker = threading.Thread(target=self._work, name=f"{self.layout.driver}-agent", daemon=True)
        self._worker.start()
        self._retirer.start()

    def _initial_load(self) -> None:
        with self._lock:
            self._move_legacy_global_networks()
            self._load()
            self._reconcile_ports()
            for number in {n.segment for n in self.networks.values()}:
                self._watch(number)
            if self.cluster_wide:
                self.store.watch_children(self.layout.global_networks, self._on_cluster_networks)
            self.sync()
            self._loaded = True

    def _ensure_loaded(self) -> None:
        """Requests act on the stored state, never on an empty cache: before the first load succeeded,
        a DeleteEndpoint answered "already gone" would leak the endpoint's port and records for good."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            try:
                self._initial_load()
            except AcsnetError as e:
                raise StoreUnavailable(f"the {self.layout.driver} driver on host {self.host_id} has not loaded its "
                                       f"state from the store yet ({e.message}); retry") from None

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._retirer.is_alive():  # what DeleteEndpoint left to it goes before the process does
            self._retiring.put(None)
            self._retirer.join(timeout=10)

    def _load(self) -> None:
        self.networks.update(state.read_host_networks(self.store, self.layout, self.host_id))
        self.endpoints.update(state.read_host_endpoints(self.store, self.layout, self.host_id))

    def _reconcile_ports(self) -> None:
        """Remove ports no endpoint owns; re-attach endpoints whose veth survived; forget endpoints
        whose veth is gone (their container is gone: a reboot, or a crash while we were down)."""
        ports = self.ovsdb.ports(self.bridge)
        self._ports = set(ports)
        for name, info in ports.items():
            owner = info["external_ids"].get(ENDPOINT_ID)
            if info["external_ids"].get(DRIVER_ID) != self.layout.driver:
                continue  # another driver's, on a shared bridge (or from before ports named theirs: audit's)
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

    def _move_legacy_global_networks(self) -> None:
        """Global networks made before they had a key of their own sat beside the vpc driver's network
        ranges (which broke vpc in global scope); they are moved, or every host would drop them as
        deleted. A driver whose global networks never worked there removes what failed CreateNetworks
        left instead (dockerd never deletes a network it failed to create)."""
        legacy = self.layout.legacy_global_networks
        self.store.create(self.layout.global_networks)
        for name in self.store.children(legacy):
            node = self.store.get(self.layout.legacy_global_network(name))
            if node is None or not node.value or node.json().get("network_id") != name:
                continue  # a vpc network range, not a network record
            if not self.legacy_global_networks_worked:
                log.info("network=%s removed: left behind by a CreateNetwork that failed", name[:12])
                for host in self.store.children(self.layout.hosts):  # the one that made it
                    self.store.delete(self.layout.host_network(host, name))
                self.store.delete(self.layout.legacy_global_network(name))
            elif self.store.commit([Create(self.layout.global_network(name), node.value), Delete(self.layout.legacy_global_network(name), node.version)]):
                log.info("network=%s global record moved to %s", name[:12], self.layout.global_networks)
            elif self.store.get(self.layout.global_network(name)) is not None:
                self.store.delete(self.layout.legacy_global_network(name))  # another host moved it first

    # -- dockerd's cluster, as it announces itself (global scope) --------------------------------

    def dockerd_activated(self) -> None:
        """dockerd asked the driver's capabilities: it (re)started, and whether it has a cluster its node
        discovery tells next. No store call here (GetCapabilities must never fail nor wait): the
        worker forgets what an earlier dockerd announced."""
        self._cluster_announced = False
        self._forget_cluster_node = True
        self._wake.set()

    def remember_cluster_node(self, address: str) -> None:
        """dockerd announced a node of its cluster. Kept in the store too, for a plugin restarted under
        a running dockerd (which neither asks its capabilities nor announces its nodes again)."""
        with self._lock:
            self._cluster_announced = True
            self._forget_cluster_node = False
            state.write_cluster_node(self.store, self.layout, self.host_id, address)

    def cluster_announced(self) -> bool:
        """Whether this host's dockerd announced a cluster since it last activated the driver."""
        if self._cluster_announced is None:  # not activated by dockerd since this process started
            return state.read_cluster_node(self.store, self.layout, self.host_id) is not None
        return self._cluster_announced

    def _forget_old_cluster_node(self) -> None:  # under the lock, on the worker
        if self._forget_cluster_node:
            state.clear_cluster_node(self.store, self.layout, self.host_id)
            self._forget_cluster_node = False

    def _on_cluster_networks(self, names: list[str]) -> None:  # on the store's thread
        self._cluster_names = names
        self._wake.set()

    def _drop_networks_gone_from_cluster(self) -> None:
        names = self._cluster_names
        if names is None:
            return
        for network_id in [n for n in self.networks if n not in names]:
            if self.store.get(self.layout.global_network(network_id)) is None:  # not just a late event
                log.info("network=%s removed: deleted on another host", network_id[:12])
                self.remove_network(network_id)

    def _adopt_networks_new_in_cluster(self) -> None:
        for network_id in [n for n in self._cluster_names or () if n not in self.networks and n not in self._not_adopted]:
            try:
                self._adopt(network_id)
            except AcsnetError as e:
                self._not_adopted.add(network_id)  # said once; its first endpoint here tries again
                log.warning("network=%s not taken on this host: %s", network_id[:12], e.message)

    def _adopt(self, network_id: str) -> SegmentNetwork | None:
        data = self.store.get_json(self.layout.global_network(network_id))
        if not data:
            return None
        network = self.adopted(SegmentNetwork.from_json(data))
        self.add_network(network, adopted=True)
        log.info("network=%s taken on this host: created on another", network_id[:12])
        return network

    def network(self, network_id: str) -> SegmentNetwork:
        self._ensure_loaded()
        network = self.networks.get(network_id)
        if network is None and self.cluster_wide:
            network = self._adopt(network_id)
        if network is None:
            raise NotFound(f"network {network_id} is not known to the {self.layout.driver} driver on host {self.host_id}")
        return network

    def add_network(self, network: SegmentNetwork, *, adopted: bool = False) -> None:
        """This host's network; for the cluster too in global scope, unless `adopted` from it (rewriting
        the record could bring back one just deleted on the host that made it)."""
        self._ensure_loaded()
        with self._lock:
            self._check_segment_free(network)
            paths = [self.layout.host_network(self.host_id, network.network_id)]
            if self.cluster_wide and not adopted:
                self.store.create(self.layout.global_networks)
                paths.append(self.layout.global_network(network.network_id))
            previous = self.networks.get(network.network_id)
            for path in paths:
                self.store.put(path, encode(network.to_json()))
            self.networks[network.network_id] = network
            try:
                self._watch(network.segment)
                self.networks_changed()
                self.sync()
            except BaseException:
                if previous is None:  # a failed CreateNetwork leaves no network behind (dockerd never deletes it)
                    self.networks.pop(network.network_id, None)
                    for path in paths:
                        self.store.delete(path)
                raise
        self._wake.set()

    def _check_segment_free(self, network: SegmentNetwork) -> None:
        for other in self.networks.values():
            if other.segment == network.segment and other.subnet != network.subnet and other.network_id != network.network_id:
                raise Conflict(f"{self.segment_label(network.segment)} is already used on host {self.host_id} by network "
                               f"{other.network_id[:12]} with subnet {other.subnet.cidr}, not {network.subnet.cidr}")

    def remove_network(self, network_id: str) -> None:
        self._ensure_loaded()
        with self._lock:
            for endpoint in [e for e in self.endpoints.values() if e.network_id == network_id]:
                self.remove_endpoint(endpoint.endpoint_id)
            if self.cluster_wide:
                self.store.delete(self.layout.global_network(network_id))
            self.store.delete(self.layout.host_network(self.host_id, network_id))
            self.networks.pop(network_id, None)
            self.networks_changed()
            self.sync()

    # -- endpoints -------------------------------------------------------------------------------

    def endpoint(self, endpoint_id: str) -> SegmentEndpoint:
        self._ensure_loaded()
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id} is not known to the {self.layout.driver} driver on host {self.host_id}")
        return endpoint

    def add_endpoint(self, endpoint: SegmentEndpoint) -> None:
        self._ensure_loaded()
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
                try:
                    self._forget_endpoint(endpoint)  # nothing half-made stays behind
                    self._remove_unplugged()
                except AcsnetError:
                    self._drop_port(endpoint)  # the store failed too: its records are audit's to find
                raise

    def _claim_segment_address(self, endpoint: SegmentEndpoint) -> None:
        """Record the address on its segment for every host, in one commit with this host's record;
        a record of the same address left by a host that is gone is removed in the same commit."""
        where = self.segment_label(endpoint.segment)
        for attempt in (1, 2):
            if self.store.commit(self._claim_operations(endpoint)):
                return
            self._made.clear()  # a parent may have been removed; the second attempt makes it again
        raise Conflict(f"address {endpoint.ip} on {where} changed hands while it was claimed; retry")

    def _claim_operations(self, endpoint: SegmentEndpoint) -> list:
        segment = self.layout.segment(endpoint.segment)
        where = self.segment_label(endpoint.segment)
        self._make(segment, self.layout.host_endpoints(self.host_id))
        operations = []
        for name in self.store.children(segment):
            if name.split("~")[0] != endpoint.ip:
                continue
            node = self.store.get(self.layout.record_key(endpoint.segment, name))
            if node is None:
                continue
            holder = SegmentRecord.from_json(node.json())
            stale_here = holder.host == self.host_id and holder.endpoint_id not in self.endpoints
            if not stale_here and holder.host != self.host_id and self.store.host_alive(holder.host):
                raise Conflict(f"address {endpoint.ip} on {where} is in use by an endpoint on host {holder.host}")
            if not stale_here and holder.host == self.host_id:
                raise Conflict(f"address {endpoint.ip} on {where} is in use by another endpoint on this host")
            operations.append(Delete(self.layout.record_key(endpoint.segment, name), node.version))
        return operations + [
            Create(self.layout.record(endpoint.segment, endpoint.ip, endpoint.endpoint_id), encode(self.record_for(endpoint).to_json())),
            Create(self.layout.host_endpoint(self.host_id, endpoint.endpoint_id), encode(endpoint.to_json())),
        ]

    def _make(self, *paths: str) -> None:
        """Make parent nodes once per process: a create of an existing node still costs ZooKeeper a
        logged transaction (6 ms here), on every CreateEndpoint."""
        for path in paths:
            if path not in self._made:
                self.store.create(path)
                self._made.add(path)

    def _attach(self, endpoint: SegmentEndpoint, create_veth: bool = False) -> None:
        network = self.networks.get(endpoint.network_id)
        mtu = network.mtu if network else self.uplink_mtu
        if create_veth:
            links.create_veth(endpoint.host_port, endpoint.container_port, mtu=mtu, container_mac=endpoint.mac)
            if not self.veth_offloads:
                links.disable_tx_checksum(endpoint.host_port)
                links.disable_tx_checksum(endpoint.container_port)
        self.ovsdb.add_port(self.bridge, endpoint.host_port, **self.port_options(endpoint), external_ids={
            ENDPOINT_ID: endpoint.endpoint_id, DRIVER_ID: self.layout.driver, "acsnet-network": endpoint.network_id,
            "acsnet-ip": endpoint.ip, "attached-mac": endpoint.mac})
        self._ports.add(endpoint.host_port)

    @property
    def veth_offloads(self) -> bool:
        """Whether container veths keep their TX checksum and segmentation offloads. The kernel datapath
        completes them; the userspace one only with TSO in effect, which its bridge's port shows (read
        each time, 0.1 ms: ovs-vswitchd may have restarted with it changed)."""
        return not self.userspace_datapath or (self.tso_capable and links.segmentation_offload(self.bridge))

    def remove_endpoint(self, endpoint_id: str) -> None:
        self._ensure_loaded()
        with self._lock:
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is None:
                return  # already gone: idempotent
            self._forget_endpoint(endpoint)
            self.sync(retire_later=True)  # DeleteEndpoint waits for the flows, not the port's removal

    def _forget_endpoint(self, endpoint: SegmentEndpoint) -> None:
        """The records go first: if the store fails, the endpoint is still known here and a retried
        DeleteEndpoint finds it. Its port goes after the next sync has removed the flows that name it."""
        records = [self.layout.record(endpoint.segment, endpoint.ip, endpoint.endpoint_id),
                   self.layout.host_endpoint(self.host_id, endpoint.endpoint_id)]
        if not self.store.commit([Delete(path) for path in records]):  # one was gone already
            for path in records:
                self.store.delete(path)
        self.endpoint_forgotten(endpoint)
        self._unplug(endpoint)

    def _drop_port(self, endpoint: SegmentEndpoint) -> None:
        self._unplug(endpoint)
        self._remove_unplugged()

    def _unplug(self, endpoint: SegmentEndpoint) -> None:
        """The endpoint is no longer this host's; its port waits in `_unplugged` for removal."""
        self.endpoints.pop(endpoint.endpoint_id, None)
        self._ports.discard(endpoint.host_port)
        self._unplugged.append(endpoint.host_port)

    def _remove_unplugged(self, *, now: bool = True) -> None:
        """Ports of forgotten endpoints, which no installed flow names any more, leave OVSDB (without
        waiting for ovs-vswitchd to let go of them) and their veths are deleted; by the retirer thread
        if not `now`: DeleteEndpoint need wait for neither (about 9 and 20 ms). Veths go by index, so that
        one of the same name made meanwhile by a retried CreateEndpoint is never the one removed."""
        while self._unplugged:
            port = self._unplugged.pop()
            retired = (port, links.index_of(port))
            if now:
                self._retire(*retired)
            else:
                self._retiring.put(retired)

    def _retire_forever(self) -> None:
        while (retired := self._retiring.get()) is not None:
            try:
                self._retire(*retired)
            except Exception:  # the thread must outlive an OVS hiccup; audit finds what is left
                log.exception("port=%s not removed", retired[0])

    def _retire(self, port: str, index: int | None) -> None:
        with self._lock:
            if port not in self._ports:  # not attached again by a retried CreateEndpoint meanwhile
                self.ovsdb.delete_port(self.bridge, port, wait=False)
        if index is not None:
            links.delete_index(index)

    # -- segments and flows ----------------------------------------------------------------------

    def _watch(self, number: int) -> None:
        if number in self._watched:
            return
        self._watched.add(number)
        self._segments.setdefault(number, {})

        def on_change(names: list[str]) -> None:  # on the store's thread: hand over, never block
            self._segment_names[number] = names
            self._wake.set()

        self.store.watch_children(self.layout.segment(number), on_change)
        self._refresh_segment(number)

    def _refresh_segment(self, number: int) -> bool:
        """Bring the cached records of a segment in line with its names; True if a record of another
        host changed (this host's own records do not change its flows). Records are immutable, so only
        new names are read."""
        names = self._segment_names.get(number)
        if names is None:
            names = self.store.children(self.layout.segment(number))
            self._segment_names[number] = names
        cache = self._segments.setdefault(number, {})
        changed = False
        for gone in set(cache) - set(names):
            changed |= cache.pop(gone).host != self.host_id
        for name in set(names) - set(cache):
            data = self.store.get_json(self.layout.record_key(number, name))
            if data:
                cache[name] = SegmentRecord.from_json(data)
                changed |= cache[name].host != self.host_id
                if cache[name].host != self.host_id:
                    if self.withdraw_dead_hosts:
                        self._watch_host(cache[name].host)
                    if self._loaded:
                        self._arrived.append((number, cache[name]))
        return changed

    def _watch_host(self, host: str) -> None:
        """Follow whether a host is alive (any of its plugins holds a store session)."""
        if host in self._alive:
            return
        self._alive[host] = True

        def on_change(sessions: list[str]) -> None:  # on the store's thread
            self._alive[host] = bool(sessions)
            self._wake.set()

        HostSessions.watch_all(self.store, host, on_change)

    def _liveness_changed(self) -> bool:
        alive = frozenset(h for h, up in self._alive.items() if up)
        changed, self._alive_in_flows = alive != self._alive_in_flows, alive
        return changed

    def remote_records(self, number: int) -> list[SegmentRecord]:
        """Other hosts' records on a segment, as last seen (sorted, so flows come out the same)."""
        records = [r for r in self._segments.get(number, {}).values() if r.host != self.host_id
                   and (not self.withdraw_dead_hosts or self._alive.get(r.host, True))]
        return sorted(records, key=lambda r: (r.ip, r.host, r.endpoint_id))

    def attached_endpoints(self) -> list[SegmentEndpoint]:
        """This host's endpoints whose port is on the bridge."""
        return [e for e in self.endpoints.values() if e.host_port in self._ports]

    def sync(self, *, retire_later: bool = False) -> None:
        """Install the flows of the current state, then remove the ports of forgotten endpoints (which
        the flows no longer name): now, or on the retirer thread if `retire_later`."""
        with self._lock:
            self.before_sync()
            flows = self.flows()
            self._flow_table.install(flows)
            self._remove_unplugged(now=not retire_later)
            self.after_sync()
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
            marks = self.flow_marks(network)
            mine = sum(1 for f in flows if any(m in f for m in marks))
            self.metrics.flows.labels(network_id[:12]).set(mine)
            counted += mine
        self.metrics.flows.labels("shared").set(max(len(flows) - counted, 0))

    def _repaired(self) -> None:
        if self.metrics is not None:
            self.metrics.reconcile_repairs.inc()

    # -- the worker ------------------------------------------------------------------------------

    def next_wake(self) -> float:
        """Seconds the worker may sleep; a driver with timed work of its own wakes it sooner."""
        return self.resync_seconds / 3

    def _work(self) -> None:
        last_full = last_orphan_check = time.monotonic()
        while not self._stopped.is_set():
            self._wake.wait(timeout=max(0.05, min(self.next_wake(), ORPHAN_CHECK_SECONDS)))
            self._wake.clear()
            try:
                if not self._loaded:
                    self._initial_load()
                with self._lock:
                    changed = any([self._refresh_segment(number) for number in list(self._watched)])
                    if self.cluster_wide:
                        self._forget_old_cluster_node()
                        self._drop_networks_gone_from_cluster()
                        if self.adopt_global_networks:
                            self._adopt_networks_new_in_cluster()
                    if self._liveness_changed() or changed:
                        self.sync()
                    arrived, self._arrived = self._arrived, []
                if arrived:
                    self.records_arrived(arrived)
                self.background()
                if time.monotonic() - last_orphan_check >= ORPHAN_CHECK_SECONDS:
                    last_orphan_check = time.monotonic()
                    self._sweep_orphans()
                if time.monotonic() - last_full > self.resync_seconds:
                    last_full = time.monotonic()
                    with self._lock:
                        self._reconcile_ports()
                        if not self._flow_table.check():
                            self._repaired()
                        self.sync()
            except Exception:  # the agent must outlive a store outage or an OVS hiccup
                log.exception("%s agent pass failed; retrying", self.layout.driver)
                time.sleep(1)

    def _sweep_orphans(self) -> None:
        """Remove endpoints no container uses. A joined endpoint's container end lives in the
        container's namespace; one still in the host's namespace long after creation was never joined
        (or was left and never deleted). dockerd makes such orphans when a plugin dies inside
        CreateEndpoint: its retry re-sends a drained, empty body, the create fails on dockerd's side,
        dockerd releases the address, and never sends a DeleteEndpoint — while the segment record
        would keep that address blocked on every host."""
        present = links.names()
        now = time.monotonic()
        with self._lock:
            idle = {e.endpoint_id for e in self.endpoints.values() if e.container_port in present}
            for gone in set(self._idle_since) - idle:
                del self._idle_since[gone]
            orphans = []
            for endpoint_id in idle:
                first_seen = self._idle_since.setdefault(endpoint_id, now)
                endpoint = self.endpoints[endpoint_id]
                if now - first_seen >= self.orphan_grace and time.time() - endpoint.since >= self.orphan_grace:
                    orphans.append(endpoint)
            for endpoint in orphans:
                log.warning("endpoint=%s ip=%s removed: no container joined it in %gs (orphaned by dockerd)",
                            endpoint.endpoint_id, endpoint.ip, self.orphan_grace)
                self._repaired()
                self._idle_since.pop(endpoint.endpoint_id, None)
                self._forget_endpoint(endpoint)
            if orphans:
                self.sync()
