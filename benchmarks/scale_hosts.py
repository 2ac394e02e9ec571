"""Simulated hosts for the scale benchmark: one process runs many hosts' vxlan agents — the real
`SegmentAgent` and the real ZooKeeper store, one session per host — with `RecordingDatapath` standing
in for Open vSwitch: each host's flow table (the vxlan driver's real flows) is kept in memory.

The orchestrator (`benchmarks/scale.py`) drives a process through a pipe of commands; the answers carry
what the process measured: commit and arrival times, flows computed, its CPU time and memory.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import re
import resource
import threading
import time

import netaddr

from acsnet.errors import AcsnetError
from acsnet.plugins.segments import state
from acsnet.plugins.segments.agent import SegmentAgent
from acsnet.plugins.segments.datapath import HostView
from acsnet.plugins.segments.model import LAYOUTS, SegmentEndpoint, SegmentNetwork, SegmentRecord
from acsnet.plugins.segments.ports import DRIVER_ID, ENDPOINT_ID
from acsnet.plugins.segments.recording import RecordedSwitch, RecordingBridge, RecordingDatapath
from acsnet.plugins.vxlan.agent import VXLAN_TABLE_PARTS
from acsnet.store import Store
from acsnet.store.relayed import RelayedStore
from acsnet.store.zookeeper import ZooKeeperStore

DRIVER = "vxlan"
LAYOUT = LAYOUTS[DRIVER]
FIRST_VNI = 5000
# What the flow table of a remote endpoint looks like (vxlan_flows' table 10): its MAC to its host's VTEP.
REMOTE_FLOW = re.compile(r"reg1=(\d+),dl_dst=([0-9a-f:]+),actions=set_field:\d+->tun_id")


# -- the simulated cluster's layout (the same in every process, from the same numbers) --------------

@dataclasses.dataclass(frozen=True)
class Layout:
    hosts: int
    endpoints_per_host: int
    networks: int
    networks_per_host: int  # networks a host has endpoints in (every network exists on every host)

    def host_name(self, index: int) -> str:
        return f"sim{index:04d}"

    def network(self, k: int) -> SegmentNetwork:
        return SegmentNetwork(f"{k:02d}" + "d" * 62, FIRST_VNI + k, netaddr.IPNetwork(f"10.{16 * k}.0.0/12"), None, None, 1450)

    def host_networks(self, index: int) -> list[int]:
        return [(index + j) % self.networks for j in range(self.networks_per_host)]

    def endpoint(self, index: int, slot: int, generation: int = 0) -> SegmentEndpoint:
        """Endpoint `slot` of host `index`; a later `generation` is a new endpoint on the same address
        (a container replaced)."""
        k = self.host_networks(index)[slot % self.networks_per_host]
        network = self.network(k)
        serial = index * self.endpoints_per_host + slot
        ip = str(netaddr.IPAddress(network.subnet.first + 2 + serial))
        tag = generation * 10_000_000 + serial
        mac = f"02:{generation & 255:02x}:{tag >> 24 & 255:02x}:{tag >> 16 & 255:02x}:{tag >> 8 & 255:02x}:{tag & 255:02x}"
        return SegmentEndpoint(f"{generation:04x}{serial:08x}" + "e" * 52, network.network_id, network.segment, ip,
                               network.subnet.prefixlen, mac, time.time())

    def record(self, index: int, endpoint: SegmentEndpoint) -> SegmentRecord:
        """The segment record of host `index`'s endpoint, as its agent writes it."""
        return SegmentRecord(self.host_name(index), self.host_mac(index), self.vtep(index), endpoint.ip, endpoint.mac,
                             endpoint.endpoint_id)

    def vtep(self, index: int) -> str:
        return str(netaddr.IPAddress(netaddr.IPAddress("198.18.0.0").value + index))

    def host_mac(self, index: int) -> str:
        return f"02:00:00:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}"


_HOST_NAME = re.compile(r"sim\d{4}")  # Layout.host_name's
_ENDPOINT_ID = re.compile(r"[0-9a-f]{64}")


def watch_kind(path: str) -> str:
    """A watched path with its host names, numbers and endpoint IDs generalised: watches count by kind."""
    def general(part: str) -> str:
        if _HOST_NAME.fullmatch(part):
            return "<host>"
        if part.isdigit():
            return "<n>"
        return "<id>" if _ENDPOINT_ID.fullmatch(part) else part
    return "/".join(general(part) for part in path.split("/"))


def remote_macs(flows: list[str]) -> set[tuple[int, str]]:
    """(VNI, MAC) of every remote endpoint a recorded vxlan table sends through the tunnel."""
    return {(int(m.group(1)), m.group(2)) for m in map(REMOTE_FLOW.search, flows) if m}


def table_mismatches(flows: list[str], expected: set[tuple[int, str]], segments: set[int]) -> tuple[int, int]:
    """(missing, stale): remote endpoints on `segments` the table lacks, and ones it has but should not."""
    actual = {(vni, mac) for vni, mac in remote_macs(flows) if vni in segments}
    return len(expected - actual), len(actual - expected)


# -- measuring what the agents do -------------------------------------------------------------------

class CommitClock(ZooKeeperStore):
    """The real ZooKeeper store, noting when its last successful commit returned (a record's commit)."""

    last_commit = 0.0

    def commit(self, operations) -> bool:
        committed = super().commit(operations)
        if committed:
            self.last_commit = time.time()
        return committed


@dataclasses.dataclass
class Tally:
    """What every datapath of this process did (under `lock`)."""

    programs: int = 0
    flows: int = 0
    arrivals: dict[str, list[tuple[str, float]]] = dataclasses.field(default_factory=dict)  # endpoint id -> (host, when)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class SimulatedDatapath(RecordingDatapath):
    """The recording stand-in for OVS with the vxlan driver's real flow table (changed record by record,
    as the vxlan driver does on OVS), counting the flows each program or change computes and noting
    when another host's record reached this host's table (the agent announces a record that arrived
    once its flows are installed)."""

    def __init__(self, tally: Tally, switch: RecordedSwitch, *, host_mac: str, vtep: str):
        super().__init__(DRIVER, switch, host_mac=host_mac, vtep=vtep, parts=VXLAN_TABLE_PARTS)
        self.tally = tally

    def program_change(self, change, view=None) -> bool:
        done = super().program_change(change, view)
        if done:
            with self.tally.lock:
                self.tally.programs += 1
                self.tally.flows += self.table_in_parts.computed
        return done

    def program(self, view: HostView) -> list[str]:
        flows = super().program(view)
        with self.tally.lock:
            self.tally.programs += 1
            self.tally.flows += len(flows)
        return flows

    def announce(self, view: HostView, joined: list[SegmentEndpoint], arrived: list[tuple[int, SegmentRecord]]) -> None:
        now = time.time()
        with self.tally.lock:
            for _vni, record in arrived:
                self.tally.arrivals.setdefault(record.endpoint_id, []).append((self.host_id, now))


def usage() -> dict:
    """This process's CPU seconds and resident memory (bytes)."""
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": own.ru_utime + own.ru_stime, "rss": rss}


# -- one process of simulated hosts ----------------------------------------------------------------

def agents_among(indexes: list[int], agent_indexes: list[int] | None) -> list[int]:
    """The hosts of `indexes` whose agent runs (`agent_indexes`; None: every one)."""
    if agent_indexes is None:
        return list(indexes)
    running = set(agent_indexes)
    return [i for i in indexes if i in running]


class HostProcess:
    def __init__(self, url: str, layout: Layout, indexes: list[int], relays: list[tuple[str, int]] = (),
                 agent_indexes: list[int] | None = None):
        self.url = url
        self.layout = layout
        self.indexes = indexes
        self.relays = list(relays)  # store relays the hosts' leaves watches come through (none: each its own)
        # The hosts whose agent runs (None: every host). The others are their state in the store and their
        # live sessions, all held by one session of this process (`present`): what the agents that run see
        # of a cluster larger than the machine can run an agent for each host of.
        self.agent_indexes = agents_among(indexes, agent_indexes)
        self.tally = Tally()
        self.switches = {i: RecordedSwitch() for i in self.agent_indexes}
        self.stores: dict[int, Store] = {}
        self.clocks: dict[int, CommitClock] = {}
        self.agents: dict[int, SegmentAgent] = {}
        self.present: Store | None = None  # the session holding the agent-less hosts' live sessions
        self.endpoints: dict[int, dict[int, SegmentEndpoint]] = {i: {} for i in self.agent_indexes}  # host -> slot -> endpoint
        self.pool = concurrent.futures.ThreadPoolExecutor(16)

    def populate(self) -> dict:
        """Write this process's hosts as a cluster that ran for a while leaves them: every network on
        every host (local scope), each host's endpoints and their segment records, its switch holding
        their veths; in batched commits, before any agent runs."""
        store = ZooKeeperStore(self.url, timeout=60.0)
        try:
            for k in range(self.layout.networks):
                state.prepare_segment(store, LAYOUT, self.layout.network(k).segment)
            for index in self.indexes:
                host = self.layout.host_name(index)
                for k in range(self.layout.networks):
                    state.write_host_network(store, LAYOUT, host, self.layout.network(k))
                state.prepare_host_endpoints(store, LAYOUT, host)
                operations = []
                network_mtu = self.layout.network(0).mtu
                for slot in range(self.layout.endpoints_per_host):
                    endpoint = self.layout.endpoint(index, slot)
                    operations += [state.segment_record_operation(LAYOUT, endpoint.segment, self.layout.record(index, endpoint)),
                                   state.host_endpoint_operation(LAYOUT, host, endpoint)]
                    if index not in self.endpoints:
                        continue  # an agent-less host: its state is the store's alone
                    self.endpoints[index][slot] = endpoint
                    # its port and veth, as the agent attached them when the endpoint was made; the
                    # container joined (its end left the host's namespace)
                    RecordingBridge("sim", self.switches[index]).plug(
                        endpoint, mtu=network_mtu, options={}, create_veth=True,
                        external_ids={ENDPOINT_ID: endpoint.endpoint_id, DRIVER_ID: DRIVER})
                    self.switches[index].take_container_end(endpoint)
                for start in range(0, len(operations), 200):
                    assert store.commit(operations[start:start + 200]), f"populating {host} failed"
        finally:
            store.close()
        return usage()

    def start_agents(self, at_once: int = 16) -> dict:
        """Every host's agent starts as a plugin does: its session, then the first load of its state;
        `at_once` of them at a time (at most the pool's 16)."""
        def start(index: int) -> None:
            host = self.layout.host_name(index)
            clock = store = CommitClock(self.url, timeout=60.0, session_timeout=30.0)
            if self.relays:  # each host its relay first, spread over them, the others after
                first = index % len(self.relays)
                store = RelayedStore(clock, self.relays[first:] + self.relays[:first], timeout=60.0)
                store.relay_answered(timeout=60.0)  # as a plugin started after its relay
            try:
                store.register_host(host, DRIVER, {"host_id": host})
            except AcsnetError:  # as a plugin does: it serves on, and the store registers it once connected
                pass
            datapath = SimulatedDatapath(self.tally, self.switches[index], host_mac=self.layout.host_mac(index),
                                         vtep=self.layout.vtep(index))
            agent = SegmentAgent(store, datapath, host, orphan_grace=1e9)  # the containers joined long ago
            agent.start()
            self.stores[index], self.clocks[index], self.agents[index] = store, clock, agent

        pacing = threading.Semaphore(at_once)

        def start_paced(index: int) -> None:
            with pacing:
                start(index)

        agentless = [i for i in self.indexes if i not in self.switches]
        if agentless:  # alive before any agent looks: their records are in the agents' flows
            self.present = ZooKeeperStore(self.url, timeout=60.0, session_timeout=30.0)
            for index in agentless:
                host = self.layout.host_name(index)
                self.present.register_host(host, DRIVER, {"host_id": host})
        list(self.pool.map(start_paced, self.agent_indexes))
        return usage()

    def replace(self, index: int, slot: int, generation: int) -> tuple[str, float]:
        """A container replaced on host `index`: its endpoint deleted, a new one made on the same address.
        Answers the new endpoint's id and when its record was committed."""
        agent = self.agents[index]
        old = self.endpoints[index][slot]
        new = self.layout.endpoint(index, slot, generation)
        agent.remove_endpoint(old.endpoint_id)
        agent.add_endpoint(new)
        self.switches[index].take_container_end(new)  # dockerd's Join
        self.endpoints[index][slot] = new
        return new.endpoint_id, self.clocks[index].last_commit

    def counters(self) -> dict:
        with self.tally.lock:
            return {"programs": self.tally.programs, "flows": self.tally.flows, **usage()}

    def watches(self) -> dict[str, int]:
        """The ZooKeeper watches this process's sessions keep, by kind (`watch_kind`): each host's own
        session's (a relayed host's store follows its segments through the relay, whose watches are the
        relay's) and the agent-less hosts' session's."""
        stores = [store.direct if isinstance(store, RelayedStore) else store for store in self.stores.values()]
        stores += [self.present] if self.present is not None else []
        return dict(collections.Counter(watch_kind(path) for store in stores for path in store.watched_paths()))

    def arrivals(self) -> dict[str, list[tuple[str, float]]]:
        with self.tally.lock:
            arrivals, self.tally.arrivals = self.tally.arrivals, {}
        return arrivals

    def check(self, expected: dict[int, set[tuple[int, str, int]]], timeout: float) -> dict:
        """Wait until every host's table holds exactly the other hosts' endpoints on the segments it has
        endpoints in (`expected`: VNI -> (VNI, MAC, host index)); answer what is still missing or stale."""
        deadline = time.monotonic() + timeout
        while True:
            missing = stale = unconverged = 0
            samples = []
            for index in self.agent_indexes:
                segments = {self.layout.network(k).segment for k in self.layout.host_networks(index)}
                want = {(vni, mac) for vni in segments for (vni, mac, owner) in expected.get(vni, ()) if owner != index}
                m, s = table_mismatches(self.switches[index].flows, want, segments)
                missing, stale, unconverged = missing + m, stale + s, unconverged + bool(m or s)
                if (m or s) and len(samples) < 3:
                    actual = {(vni, mac) for vni, mac in remote_macs(self.switches[index].flows) if vni in segments}
                    cached = {(vni, r.mac) for vni in segments for r in self.agents[index].remote.records(vni)}
                    samples.append({"host": self.layout.host_name(index), "missing": sorted(want - actual)[:3],
                                    "stale": sorted(actual - want)[:3], "missing_from_agent_cache": len(want - cached)})
            if not unconverged or time.monotonic() > deadline:
                return {"missing": missing, "stale": stale, "unconverged_hosts": unconverged, "samples": samples}
            time.sleep(0.5)

    def stop(self) -> None:
        """Every host stopped, on the pool's threads (one after another, a loaded process of 250 hosts
        took minutes, its other hosts' sessions expiring meanwhile)."""
        def stop_host(index: int) -> None:
            self.agents.pop(index).stop()
            self.stores.pop(index).close()

        list(self.pool.map(stop_host, list(self.agents)))
        self.pool.shutdown(wait=False)
        if self.present is not None:
            self.present.close()


def serve(url: str, layout: Layout, indexes: list[int], connection, relays: list[tuple[str, int]] = (),
          agent_indexes: list[int] | None = None) -> None:
    """A host process's loop: each command is (name, args); replaces run on a pool of threads (hosts
    in parallel, as they would be) and answer as they finish."""
    hosts = HostProcess(url, layout, indexes, relays, agent_indexes)
    connection.send(("ready", usage()))
    lock = threading.Lock()

    def answer(message) -> None:
        with lock:
            connection.send(message)

    def replace(args) -> None:
        try:
            answer(("replaced", hosts.replace(*args)))
        except Exception as e:  # reported to the orchestrator, which counts it as an error
            answer(("replace-failed", f"{type(e).__name__}: {e}"))

    while True:
        name, args = connection.recv()
        if name == "replace":
            hosts.pool.submit(replace, args)
            continue
        if name == "stop":
            hosts.stop()
            answer(("stopped", None))
            return
        try:
            answer((name, getattr(hosts, name)(*args)))
        except Exception as e:
            answer(("error", f"{name}: {type(e).__name__}: {e}"))
