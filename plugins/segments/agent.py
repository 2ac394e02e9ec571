"""The segment agent: for one driver (vlan, vxlan, vpc) on one host, the single owner of its store
watches, its endpoints' ports and the flow table of its bridge. What the driver's datapath needs is
its `Datapath` object's (`acsnet.plugins.segments.datapath`); the agent is the same for every driver.

Desired state lives in the store (this host's networks and endpoints, and the segment records of
every host on the segments this host has endpoints in, or had within `WATCH_LINGER_SECONDS`); OVS is
programmed from it. Reconcile is the normal path: `sync` hands the whole state to the datapath, which installs it atomically, whether one
endpoint changed or the plugin just restarted. Where the datapath can (`Datapath.program_change`), an
endpoint of this host changes only the flows of this host's own state, and another host's record that
came or went only its own: work in proportion to the change, not to every endpoint of the segments. A worker thread (`worker`) handles watch events, removes endpoints
dockerd orphaned, runs the datapath's own work and re-syncs periodically (repairing flows someone
removed); request handlers never wait on it, except for the flows of their own change.

Its parts, each in its own module: the records it reads and writes (`state`), its endpoint ports
(`ports`), other hosts' records and liveness (`watch`), global scope (`cluster`), the loop (`worker`),
and the names of its endpoints' containers, asked of the local dockerd off the request path (`containers`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from acsnet.after_answer import CommitQueue, Journal
from acsnet.docker_api import DockerAddress, DockerUnreachable
from acsnet.errors import AcsnetError, Conflict, DatapathError, NotFound, StoreUnavailable
from acsnet.metrics import PluginMetrics
from acsnet.plugins.segments import state
from acsnet.plugins.segments.cluster import ClusterScope
from acsnet.plugins.segments.containers import ContainerNamer
from acsnet.plugins.segments.datapath import Datapath, HostView
from acsnet.plugins.segments.model import LAYOUTS, SegmentEndpoint, SegmentNetwork
from acsnet.plugins.segments.ports import ORPHAN_GRACE_SECONDS, SPARE_PAIRS, EndpointPorts, OrphanSweep
from acsnet.plugins.segments.watch import RemoteRecords
from acsnet.plugins.segments.worker import Worker
from acsnet.store import Store

log = logging.getLogger(__name__)

# How long a segment stays watched after this host's last endpoint on it went. Watching a segment costs
# the request that starts it store round trips (the watch's node made: a logged ZooKeeper write; its
# names and records read): 4-8 ms of a CreateEndpoint measured on a lab host, which `docker run --rm`
# in a loop paid for every container. Within this time the next container on the segment pays none.
WATCH_LINGER_SECONDS = 60.0
CLAIM_WAIT_SECONDS = 30.0  # at most two attempts of a few store calls, each bounded by the store's timeout
# How long a claim waits for another live host's record of its address to go before refusing it: that
# host may have answered the endpoint's removal and not committed it yet (its clear queue, below), while
# its IPAM's release, answered after, committed first and the address was handed out here.
HANDOVER_SECONDS = 2.0
HANDOVER_POLL_SECONDS = 0.02
CLEARS_CLOSE_SECONDS = 5.0  # at exit, the endpoint removals answered are committed within this; the journal keeps the rest
# How often the worker reads the bridge's TSO state again (`Bridge.veth_offloads`): a veth made with it
# stale in between still works (without offloads where OVS completes them: slower TCP; with them where
# it still does until its restart), and a spare is fitted to the state read as it is taken.
OFFLOADS_READ_SECONDS = 5.0


class HeldByLiveHost(Conflict):
    """A claim's address is recorded by an endpoint of another host that is alive."""


class SegmentAgent:
    def __init__(self, store: Store, datapath: Datapath, host_id: str, *, cluster_wide: bool = False,
                 resync_seconds: float = 30.0, orphan_grace: float = ORPHAN_GRACE_SECONDS,
                 metrics: PluginMetrics | None = None, docker: DockerAddress | None = None,
                 watch_linger: float = WATCH_LINGER_SECONDS, spare_pairs: int = SPARE_PAIRS,
                 clear_journal: str | None = None):
        """With `clear_journal` (a plugin's agent), DeleteEndpoint answers once the removal of the
        endpoint's records is in that file, and commits it just after (`acsnet.after_answer`); without
        it (tests', the simulation's), before it answers. Its flows change just after either way."""
        self.store = store
        self.watch_linger = watch_linger
        self.datapath = datapath
        self.layout = LAYOUTS[datapath.driver]
        self.host_id = host_id
        self.metrics = metrics
        self.networks: dict[str, SegmentNetwork] = {}
        self.endpoints: dict[str, SegmentEndpoint] = {}
        self._lock = threading.RLock()
        self.worker = Worker(f"{datapath.driver}-agent", self, resync_seconds=resync_seconds,
                             next_wake=self.next_wake)
        self.ports = EndpointPorts(datapath.bridge, datapath.driver, self._lock, spares=spare_pairs,
                                   port_options=datapath.port_options())
        self.remote = RemoteRecords(store, self.layout, host_id, withdraw_dead_hosts=datapath.withdraw_dead_hosts,
                                    wake=self.wake)
        # Global scope: see acsnet.plugins.segments.cluster.
        self.cluster = ClusterScope(store, self.layout, host_id, self.wake) if cluster_wide else None
        self._joined: queue.SimpleQueue[SegmentEndpoint] = queue.SimpleQueue()  # for the datapath to announce
        self.orphans = OrphanSweep(orphan_grace)
        self._loaded = False
        self._made: set[int] = set()  # segments whose store node this process made or found
        self._idle_segments: dict[int, float] = {}  # watched segments with no endpoint here -> since when
        self._flows_behind = False  # a DeleteEndpoint answered before its flows' change (the worker's next)
        self._switch_started: int | None = None  # ovs-vswitchd's pid at the last pass (`switch_restarted`)
        self._offloads_read = time.monotonic()  # when the bridge's TSO state was last read (`switch_restarted`)
        self._claimer = ThreadPoolExecutor(1, thread_name_prefix=f"{datapath.driver}-claim")  # see add_endpoint
        self._clears: CommitQueue[SegmentEndpoint] | None = None
        if clear_journal:
            self._clears = CommitQueue(Journal(clear_journal, SegmentEndpoint), self._commit_clear,
                                       name=f"{datapath.driver}-clears",
                                       describe=lambda e: f"endpoint={e.endpoint_id[:12]} ip={e.ip} records' removal")
        self.namer = ContainerNamer(store, self.layout, host_id, docker, self._endpoint_list) if docker else None
        self.docker = docker
        # Local scope: the networks loaded at start, until the local dockerd said which it still has.
        self._unconfirmed_networks: set[str] = set()
        self._docker_problem: str | None = None  # said once

    @property
    def bridge(self) -> str:
        return self.datapath.bridge.name

    @property
    def uplink_mtu(self) -> int:
        return self.datapath.uplink_mtu

    @property
    def lock(self) -> threading.RLock:
        """Held while the state or the datapath changes (the datapath's own work takes it too)."""
        return self._lock

    def wake(self) -> None:
        """Have the worker run a pass soon (from any thread; never blocks)."""
        self.worker.wake()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the desired state, make OVS match it, then keep it matching. If the store does not
        answer now, the worker keeps trying: the plugin serves (and fails requests clearly) meanwhile."""
        self.datapath.start(self)
        try:
            self._initial_load()
        except AcsnetError as e:
            log.warning("%s agent could not load its state yet (%s); retrying in the background", self.layout.driver, e.message)
        self.worker.start()
        self.ports.start()
        with self._lock:  # the spares' MTU: one of this host's networks' (the next endpoint's, likely)
            self.ports.spare_mtu = next((n.mtu for n in self.networks.values()), self.datapath.default_mtu)
        self.ports.refill_spares()
        if self.namer is not None:
            self.namer.start()

    def stop(self) -> None:
        self.worker.stop()
        self.ports.stop()
        self.datapath.bridge.close()
        self._claimer.shutdown(wait=False)
        if self._clears is not None:
            self._clears.close(CLEARS_CLOSE_SECONDS)
        if self.namer is not None:
            self.namer.stop()

    def _endpoint_list(self) -> list[SegmentEndpoint]:
        with self._lock:
            return list(self.endpoints.values())

    def _initial_load(self) -> None:
        with self._lock:
            state.move_legacy_global_networks(self.store, self.layout, worked=self.datapath.legacy_global_networks_worked)
            self.networks.update(state.read_host_networks(self.store, self.layout, self.host_id))
            # an endpoint whose removal was answered before a restart is gone: its records' removal is
            # being committed again (`_clears`), and its port, owned by nobody now, goes below
            removed = {e.endpoint_id for e in self._clears.replayed} if self._clears is not None else set()
            self.endpoints.update((endpoint_id, endpoint) for endpoint_id, endpoint
                                  in state.read_host_endpoints(self.store, self.layout, self.host_id).items()
                                  if endpoint_id not in removed)
            self.datapath.load()
            if self.cluster is None and self.docker is not None:
                self._unconfirmed_networks = {i for i, n in self.networks.items() if not n.swarm}
            self._reconcile_ports()
            for number in {e.segment for e in self.endpoints.values()}:
                self.remote.watch(number, collect_arrivals=False)
            if self.cluster is not None:
                self.cluster.watch_networks()
            self.sync()
            self._loaded = True

    def ensure_loaded(self) -> None:
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

    def _reconcile_ports(self) -> None:
        """Remove ports no endpoint owns; re-attach endpoints whose veth survived; forget endpoints
        whose veth is gone (their container is gone: a reboot, or a crash while we were down)."""
        survey = self.ports.survey(self.endpoints)
        for _ in survey.removed:
            self._repaired()
        for endpoint in survey.veth_gone:
            log.info("endpoint=%s forgotten: its veth is gone", endpoint.endpoint_id)
            self._repaired()
            self._forget_endpoint(endpoint)
        for endpoint in survey.detached:
            log.info("endpoint=%s port re-attached", endpoint.endpoint_id)
            self._repaired()
            self._attach(endpoint)

    # -- dockerd's cluster, as it announces itself (global scope) --------------------------------

    def dockerd_activated(self) -> None:
        if self.cluster is not None:
            self.cluster.dockerd_activated()

    def remember_cluster_node(self, address: str) -> None:
        if self.cluster is not None:
            with self._lock:
                self.cluster.remember_node(address)

    def cluster_announced(self) -> bool:
        return self.cluster is not None and self.cluster.announced()

    def _follow_cluster(self) -> None:
        """Drop the networks deleted on another host; take those new in the cluster if the datapath
        takes every global network at once."""
        for network_id in self.cluster.gone([n.network_id for n in self.networks.values() if not n.swarm]):
            log.info("network=%s removed: deleted on another host", network_id[:12])
            self.remove_network(network_id)
        if not self.datapath.adopt_global_networks:
            return
        for network_id in self.cluster.new(self.networks):
            try:
                self._adopt(network_id)
            except AcsnetError as e:
                self.cluster.not_adopted.add(network_id)  # said once; its first endpoint here tries again
                log.warning("network=%s not taken on this host: %s", network_id[:12], e.message)

    def _adopt(self, network_id: str) -> SegmentNetwork | None:
        found = state.read_global_network(self.store, self.layout, network_id)
        if found is None:
            return None
        network = self.datapath.adopt(found)
        self.add_network(network, adopted=True)
        log.info("network=%s taken on this host: created on another", network_id[:12])
        return network

    # -- networks --------------------------------------------------------------------------------

    def network(self, network_id: str) -> SegmentNetwork:
        self.ensure_loaded()
        network = self.networks.get(network_id)
        if network is None and self.cluster is not None:
            network = self._adopt(network_id)
        if network is None:
            raise NotFound(f"network {network_id} is not known to the {self.layout.driver} driver on host {self.host_id}")
        return network

    def add_network(self, network: SegmentNetwork, *, adopted: bool = False) -> None:
        """This host's network; for the cluster too in global scope, unless `adopted` from it (rewriting
        the record could bring back one just deleted on the host that made it)."""
        self.ensure_loaded()
        with self._lock:
            self._check_segment_free(network)
            cluster_record = self.cluster is not None and not adopted and not network.swarm
            previous = self.networks.get(network.network_id)
            state.write_host_network(self.store, self.layout, self.host_id, network)
            if cluster_record:
                state.write_global_network(self.store, self.layout, network)
            self.networks[network.network_id] = network
            try:
                self.sync()
            except BaseException:
                if previous is None:  # a failed CreateNetwork leaves no network behind (dockerd never deletes it)
                    self.networks.pop(network.network_id, None)
                    state.clear_host_network(self.store, self.layout, self.host_id, network.network_id)
                    if cluster_record:
                        state.clear_global_network(self.store, self.layout, network.network_id)
                raise
        self.wake()

    def _check_segment_free(self, network: SegmentNetwork) -> None:
        def subnets(n: SegmentNetwork) -> str:
            return " and ".join(str(s.cidr) for s in (n.subnet, n.subnet6) if s is not None)

        for other in self.networks.values():
            if other.segment == network.segment and other.network_id != network.network_id and (
                    other.subnet != network.subnet or other.subnet6 != network.subnet6):
                raise Conflict(f"{self.datapath.describe(network)} is already used on host {self.host_id} by network "
                               f"{other.network_id[:12]} with subnet {subnets(other)}, not {subnets(network)}")

    def remove_network(self, network_id: str) -> None:
        self.ensure_loaded()
        with self._lock:
            for endpoint in [e for e in self.endpoints.values() if e.network_id == network_id]:
                self.remove_endpoint(endpoint.endpoint_id)
            network = self.networks.get(network_id)
            if self.cluster is not None and not (network is not None and network.swarm):
                state.clear_global_network(self.store, self.layout, network_id)
            state.clear_host_network(self.store, self.layout, self.host_id, network_id)
            self.networks.pop(network_id, None)
            self.sync()

    # -- endpoints -------------------------------------------------------------------------------

    def endpoint(self, endpoint_id: str) -> SegmentEndpoint:
        self.ensure_loaded()
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id} is not known to the {self.layout.driver} driver on host {self.host_id}")
        return endpoint

    def add_endpoint(self, endpoint: SegmentEndpoint) -> None:
        self.ensure_loaded()
        handover_ends = self._await_handover(endpoint)
        with self._lock:
            if endpoint.endpoint_id in self.endpoints:
                if not self.datapath.bridge.veth_exists(self.endpoints[endpoint.endpoint_id].host_port):
                    raise Conflict(f"endpoint {endpoint.endpoint_id} exists but its veth is gone; delete it first")
                return  # dockerd retrying: idempotent
            endpoint = self.ports.take_spare(endpoint)  # named after its pair from here on, in the store too
            # The claim's store round trips (its address's holders read, one commit) go beside the port
            # (a spare labelled, or a veth and port made: the kernel, ovs-vswitchd) and, on a segment
            # this host follows already, beside the flows too: each took 4-15 ms of a CreateEndpoint on
            # a lab host, one after the other. The request answers only once all are done. The first
            # endpoint on a segment waits for its claim first: the claim makes the segment's node,
            # which the watch started next needs.
            followed = endpoint.segment in self.remote.watched
            claim = self._claimer.submit(self._claim_segment_address, endpoint, handover_ends)
            try:
                fitted = self._attach(endpoint, create_veth=True)
            except BaseException:
                self._undo_endpoint(endpoint, claimed=self._claim_failure(claim) is None)
                raise
            if not followed:
                self._raise_failed_claim(endpoint, claim)
            try:
                self.endpoints[endpoint.endpoint_id] = endpoint
                # the segment's first endpoint here: the other hosts' records on it, read now, are in
                # the flows this request waits for
                self.remote.watch(endpoint.segment, collect_arrivals=False)
                self._idle_segments.pop(endpoint.segment, None)
                # a port that a DeleteEndpoint just before left for the worker goes on the retirer, not here
                self.sync(whole=False, retire_later=True)
                if fitted is not None:
                    self._wait_fitted(fitted)
            except BaseException:
                self._undo_endpoint(endpoint, claimed=self._claim_failure(claim) is None)
                raise
            if followed:
                self._raise_failed_claim(endpoint, claim, programmed=True)

    def _wait_fitted(self, fitted: Future) -> None:
        """A spare's fitting (its OVSDB commit has the switch's timeout; this wait is bounded too, in case)."""
        try:
            fitted.result(timeout=CLAIM_WAIT_SECONDS)
        except FutureTimeout:
            raise DatapathError(f"labelling a port in OVSDB took over {CLAIM_WAIT_SECONDS:g}s; retry") from None

    def _raise_failed_claim(self, endpoint: SegmentEndpoint, claim: Future, *, programmed: bool = False) -> None:
        """If the claim did not commit, nothing of the endpoint stays: its flows if `programmed` (before
        its port, which they name), then its port; and the claim's error is raised."""
        failure = self._claim_failure(claim)
        if failure is None:
            return
        if programmed:
            self.endpoints.pop(endpoint.endpoint_id, None)
            try:
                self.sync(whole=False)
            except AcsnetError:
                pass  # the worker's next pass removes them; the claim's error is the request's
        self._undo_endpoint(endpoint, claimed=False)
        raise failure

    def _claim_failure(self, claim: Future) -> BaseException | None:
        """How the claim ended: None if it committed. Each of its store calls has the store's timeout;
        this wait is bounded too, in case."""
        try:
            return claim.exception(timeout=CLAIM_WAIT_SECONDS)
        except FutureTimeout:
            return StoreUnavailable(f"the claim of an address on the store took over {CLAIM_WAIT_SECONDS:g}s; retry")

    def _undo_endpoint(self, endpoint: SegmentEndpoint, *, claimed: bool) -> None:
        """Nothing half-made stays behind: the port, and the records if the claim committed them."""
        if claimed:
            try:
                self._forget_endpoint(endpoint)
                self._remove_unplugged_ports()
                return
            except AcsnetError:
                pass  # the store failed too: its records are audit's to find
        self.endpoints.pop(endpoint.endpoint_id, None)
        self.ports.unplug(endpoint)
        self._remove_unplugged_ports()

    def _remove_unplugged_ports(self) -> None:
        """The ports of forgotten endpoints, now; after the flows' change a DeleteEndpoint left to the
        worker (`_flows_behind`), whose port its flows still name until then (a failed change leaves
        them all to the worker's pass)."""
        if not self._flows_behind:
            self.ports.remove_unplugged()
            return
        try:
            self.sync(whole=False)
        except AcsnetError:
            pass

    def joined(self, endpoint: SegmentEndpoint) -> None:
        """A container joined the endpoint: the worker has the datapath announce its address (Join must
        not wait behind a sync: no lock taken)."""
        self._joined.put(endpoint)
        self.wake()
        if self.namer is not None:
            self.namer.wake()

    def container_started(self, endpoint_id: str) -> bool:
        """Whether dockerd lists the endpoint's container as running (the namer found it): dockerd has
        then finished its network (addresses, link up, routes). False without a namer. Any thread."""
        return self.namer is not None and bool(self.namer.written.get(endpoint_id, ("", ""))[0])

    def _await_handover(self, endpoint: SegmentEndpoint) -> float | None:
        """Before the agent's lock is taken: on a segment this host follows, wait for the record of the
        endpoint's address that another live host holds, as its watch names it, to go (HANDOVER_SECONDS),
        so that the wait holds up no other request of this host. The end of the wait, for the claim to
        wait no longer; None if there was nothing to wait for (the claim's own check decides)."""
        holders = self.remote.other_hosts_naming(endpoint.segment, endpoint.ip)
        if not holders:
            return None
        try:
            if not any(self.store.host_alive(host) for host in holders):
                return None  # a dead host's record: the claim removes it
        except AcsnetError:
            return None  # the claim finds the store away too, and says so
        ends = time.monotonic() + HANDOVER_SECONDS
        while time.monotonic() < ends and self.remote.other_hosts_naming(endpoint.segment, endpoint.ip):
            time.sleep(HANDOVER_POLL_SECONDS)
        return ends

    def _claim_segment_address(self, endpoint: SegmentEndpoint, handover_ends: float | None = None) -> None:
        """Record the address on its segment for every host, in one commit with this host's record;
        a record of the same address left by a host that is gone is removed in the same commit.
        `handover_ends`: when the wait for another live host's record of it, begun before, ends."""
        network = self.networks.get(endpoint.network_id)
        where = self.datapath.describe(network) if network else f"{self.datapath.segment_name} {endpoint.segment}"
        attempts = 0
        while True:
            try:
                operations = self._claim_operations(endpoint, where)
            except HeldByLiveHost:
                # It may be a removal that host answered and has not committed yet (see HANDOVER_SECONDS).
                handover_ends = handover_ends or time.monotonic() + HANDOVER_SECONDS
                if time.monotonic() >= handover_ends:
                    raise
                time.sleep(HANDOVER_POLL_SECONDS)
                continue
            if self.store.commit(operations):
                return
            attempts += 1
            if attempts == 2:
                raise Conflict(f"address {endpoint.ip} on {where} changed hands while it was claimed; retry")
            self._made.clear()  # a parent may have been removed; the second attempt makes it again

    def _claim_operations(self, endpoint: SegmentEndpoint, where: str) -> list:
        if endpoint.segment not in self._made:
            # once per process: a create of an existing node still costs ZooKeeper a logged
            # transaction (6 ms here), on every CreateEndpoint
            state.prepare_segment(self.store, self.layout, endpoint.segment)
            state.prepare_host_endpoints(self.store, self.layout, self.host_id)
            self._made.add(endpoint.segment)
        operations = []
        # A segment this host follows (it has or just had endpoints on it) is not listed again: its
        # watch's names are current to within its notice, and listing them was one of the claim's two
        # round trips (4-10 ms on a lab host, where they meet ovs-vswitchd adding the port beside
        # them). That notice widens by a few milliseconds the window in which two hosts claiming the
        # same address at once both succeed; the window was already there between the listing and
        # the commit, and the IPAM, which allocates each address once, is what guards a pool.
        names = self.remote.names(endpoint.segment)
        for holder, delete in state.read_address_holders(self.store, self.layout, endpoint.segment, endpoint.ip, names):
            stale_here = holder.host == self.host_id and holder.endpoint_id not in self.endpoints
            if not stale_here and holder.host != self.host_id and self.store.host_alive(holder.host):
                raise HeldByLiveHost(f"address {endpoint.ip} on {where} is in use by an endpoint on host {holder.host}")
            if not stale_here and holder.host == self.host_id:
                raise Conflict(f"address {endpoint.ip} on {where} is in use by another endpoint on this host")
            operations.append(delete)
        return operations + [
            state.segment_record_operation(self.layout, endpoint.segment, self.datapath.record_for(endpoint)),
            state.host_endpoint_operation(self.layout, self.host_id, endpoint),
        ]

    def _attach(self, endpoint: SegmentEndpoint, create_veth: bool = False) -> Future | None:
        """See `EndpointPorts.attach` (a spare is fitted beside the caller: the future says when)."""
        network = self.networks.get(endpoint.network_id)
        return self.ports.attach(endpoint, mtu=network.mtu if network else self.datapath.uplink_mtu, create_veth=create_veth)

    def remove_endpoint(self, endpoint_id: str) -> None:
        self.ensure_loaded()
        with self._lock:
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is None:
                return  # already gone: idempotent
            # DeleteEndpoint waits for neither its flows' change nor its port's removal: the worker
            # makes the change as the request answers (`_flows_behind`), and the port leaves after it.
            # The change (ovs-ofctl, 4-6 ms on a lab host) was the whole of a DeleteEndpoint answered
            # before its records' commit, and nothing needs it first: the container and its netns are
            # gone, and any request's own change under the lock, a CreateEndpoint's for the same
            # address among them, carries it too. With a journal, the records' removal is committed
            # after the answer as well, in order (`_clears`): until it lands, the address only stays
            # this host's a little longer, and another host handed it waits for it (HANDOVER_SECONDS).
            # Without one, the commit is the request's: if it fails the endpoint is still this host's,
            # known here (a retried DeleteEndpoint finds it), with its flows and its port.
            if self._clears is None:
                state.clear_endpoint_records(self.store, self.layout, self.host_id, endpoint)
            else:
                self._clears.submit(endpoint)
            self.ports.attached.discard(endpoint.host_port)  # out of the flows; retired after they change
            self._forget_endpoint(endpoint, records_cleared=True)
            self._flows_behind = True
        self.wake()

    def _forget_endpoint(self, endpoint: SegmentEndpoint, *, records_cleared: bool = False) -> None:
        """The records go first: if the store fails, the endpoint is still known here and a retried
        DeleteEndpoint finds it. Its port goes after the next sync has removed the flows that name it."""
        if not records_cleared:
            state.clear_endpoint_records(self.store, self.layout, self.host_id, endpoint)
        self.datapath.endpoint_removed(endpoint)
        self.endpoints.pop(endpoint.endpoint_id, None)
        self.ports.unplug(endpoint)
        if not any(e.segment == endpoint.segment for e in self.endpoints.values()):
            # no container here needs the segment's other hosts: the worker unwatches it, unless one
            # comes back within `watch_linger` (WATCH_LINGER_SECONDS)
            self._idle_segments.setdefault(endpoint.segment, time.monotonic())

    def _commit_clear(self, endpoint: SegmentEndpoint) -> None:
        """An endpoint's removal answered before its commit (the clear queue's thread)."""
        state.clear_endpoint_records(self.store, self.layout, self.host_id, endpoint)

    @property
    def clears_pending(self) -> int:
        """Endpoint removals answered and not yet in the store."""
        return len(self._clears) if self._clears is not None else 0

    # -- the state, as the datapath is programmed from it ----------------------------------------

    def view(self, *, remote: bool = True) -> HostView:
        """The state as it stands (under the lock); without other hosts' records unless `remote`."""
        networks = tuple(sorted(self.networks.values(), key=lambda n: n.network_id))
        attached = tuple(e for e in self.endpoints.values() if e.host_port in self.ports.attached)
        segments = sorted({n.segment for n in networks}) if remote else []
        return HostView(self.host_id, networks, attached, tuple((s, self.remote.records(s)) for s in segments))

    def sync(self, *, retire_later: bool = False, whole: bool = True) -> None:
        """Program the datapath with the current state (only what changed since, unless `whole`), then
        remove the ports of forgotten endpoints (which the flows no longer name): now, or on the
        retirer thread if `retire_later`."""
        with self._lock:
            change = self.remote.take_change()  # a whole program has it in its view
            flows = None
            if whole or not self.datapath.program_change(change, self.view(remote=False)):
                flows = self.datapath.program(self.view())
            self._flows_behind = False
            if self.metrics is not None:
                self._report(flows)
            self.ports.remove_unplugged(now=not retire_later)

    def _report(self, flows: list[str] | None) -> None:
        """The gauges; the flows' only with a whole table (`flows`), which a change does not compute."""
        self.metrics.reconcile_runs.inc()
        self.metrics.endpoints.clear()
        for network_id in self.networks:
            endpoints = sum(1 for e in self.endpoints.values() if e.network_id == network_id)
            self.metrics.endpoints.labels(network_id[:12]).set(endpoints)
        if flows is None:
            return
        self.metrics.flows.clear()
        counted = 0
        for network_id, network in self.networks.items():
            marks = self.datapath.flow_marks(network)
            mine = sum(1 for f in flows if any(m in f for m in marks))
            self.metrics.flows.labels(network_id[:12]).set(mine)
            counted += mine
        self.metrics.flows.labels("shared").set(max(len(flows) - counted, 0))

    def _repaired(self) -> None:
        if self.metrics is not None:
            self.metrics.reconcile_repairs.inc()

    # -- the worker's passes ---------------------------------------------------------------------

    def catch_up(self) -> None:
        if not self._loaded:
            self._initial_load()
        with self._lock:
            if self._flows_behind:  # first: DeleteEndpoint answered, its port waits for this
                self.sync(whole=False, retire_later=True)
            changed = self._unwatch_idle_segments()
            changed = self.remote.refresh_all(collect_arrivals=self._loaded) or changed
            if self.cluster is not None:
                self.cluster.forget_old_node()
                self._follow_cluster()
            changed = self.remote.liveness_changed() or changed
            if changed and not self.datapath.program_change(self.remote.take_change()):
                self.sync()
            arrived = self.remote.take_arrived()
            view = self.view(remote=False)  # every pass: other hosts' records are the driver's to ask for
        joined = []
        while not self._joined.empty():
            joined.append(self._joined.get_nowait())
        if arrived or joined:
            self.datapath.announce(view, joined, arrived)
        self.datapath.background(view)

    def _unwatch_idle_segments(self) -> bool:
        """Stop following the segments this host has had no endpoint on for `watch_linger`: their other
        hosts' records leave the cache and the flows. True if one did."""
        now, ended = time.monotonic(), False
        for segment, since in list(self._idle_segments.items()):
            if any(e.segment == segment for e in self.endpoints.values()):
                del self._idle_segments[segment]
            elif now - since >= self.watch_linger:
                del self._idle_segments[segment]
                self.remote.unwatch(segment)
                ended = True
        return ended

    def next_wake(self) -> float | None:
        """Seconds until the worker has timed work: the datapath's own, or a lingering watch to end."""
        due = [self.datapath.next_wake()]
        if self._idle_segments:
            due.append(max(0.0, min(list(self._idle_segments.values())) + self.watch_linger - time.monotonic()))
        return min((d for d in due if d is not None), default=None)

    def switch_restarted(self) -> bool:
        """ovs-vswitchd restarted (a new pid: one file read a pass) starts with none of the flows: until the
        next periodic check, up to `resync_seconds`, every container's traffic would stop. The worker
        wakes at least every ORPHAN_CHECK_SECONDS, so the flows are back within that. Every
        OFFLOADS_READ_SECONDS, the bridge's TSO state is read again here, off the request path
        (`Bridge.veth_offloads` says why)."""
        started = self.datapath.bridge.switch_started()
        restarted = None not in (started, self._switch_started) and started != self._switch_started
        if restarted or time.monotonic() - self._offloads_read >= OFFLOADS_READ_SECONDS:
            self.datapath.bridge.read_offloads()  # first: if it fails, the next pass sees the restart still
            self._offloads_read = time.monotonic()
        if started is not None:
            self._switch_started = started
        return restarted

    def reconcile(self) -> None:
        """The periodic check: ports, and the flows whole if the switch lost some; else what changed of
        this host's own state (other hosts' records did not change unseen: each came with its watch event)."""
        with self._lock:
            self._reconcile_ports()
            self.remote.recheck_unlisted()  # its change, if any, is the next catch-up's
            intact = self.datapath.bridge.flows_intact()
            if not intact:
                self._repaired()
            self.sync(whole=not intact)

    def forget_networks_dockerd_deleted(self) -> None:
        """Local scope: a network dockerd deleted while this plugin was down (dockerd deletes it anyway
        when DeleteNetwork cannot reach the driver) is removed here too, with what it holds (a vpc
        host subnet, its gateways): those loaded at start that the local dockerd does not list. Asked
        until dockerd answers once, by the worker and outside the lock (dockerd may be waiting on this
        plugin). Networks made since the start are never checked: dockerd lists one only after the
        driver answered its CreateNetwork. A swarm network is listed only on nodes running its tasks,
        and a global one is followed through the store: neither is checked."""
        if not self._unconfirmed_networks:
            return
        try:
            status, body = self.docker.get_json("/networks", timeout=5.0)
        except DockerUnreachable as e:
            if e.message != self._docker_problem:
                log.info("networks deleted while this plugin was down not looked for yet: %s", e.message)
            self._docker_problem = e.message
            return
        if status != 200 or not isinstance(body, list):
            return
        listed = {n.get("Id") for n in body if isinstance(n, dict)}
        with self._lock:
            for network_id in sorted(self._unconfirmed_networks - listed):
                if network_id in self.networks:
                    log.info("network=%s removed: the local dockerd deleted it while this plugin was down", network_id[:12])
                    self.remove_network(network_id)
            self._unconfirmed_networks = set()

    def sweep_orphans(self) -> None:
        """Remove endpoints no container uses (`ports.OrphanSweep` says which and why), and networks
        the local dockerd deleted while this plugin was down."""
        self.forget_networks_dockerd_deleted()
        present = self.datapath.bridge.host_links()
        with self._lock:
            orphans = self.orphans.find(self.endpoints.values(), present)
            for endpoint in orphans:
                log.warning("endpoint=%s ip=%s removed: no container joined it in %gs (orphaned by dockerd)",
                            endpoint.endpoint_id, endpoint.ip, self.orphans.grace)
                self._repaired()
                self._forget_endpoint(endpoint)
            if orphans:
                self.sync()
