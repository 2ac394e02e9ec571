"""A datapath that stands in for Open vSwitch: it records, per host and in memory, the ports, veths and
flow table the segment agent would program, and touches neither OVS nor the kernel.

For fast tests of the real agent on a real store (the embedded one) and for benchmarks that run many
agents in one process; never for a plugin that serves dockerd. `RecordedSwitch` is what a host's OVS
and kernel would keep across a plugin restart: give a restarted agent's `RecordingDatapath` the same one.

The flow table is, by default, one line per fact the datapath was handed (easy to read and to assert
on); give `table` (e.g. `acsnet.plugins.vxlan.agent.vxlan_table`) to record a driver's real flows, or
`parts` (`VXLAN_TABLE_PARTS`) to have a change (an endpoint here, another host's record) change only its
own flows, as the vxlan driver does on OVS.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable

from acsnet.errors import DatapathError
from acsnet.ovsctl.openflow import flow_identity
from acsnet.plugins.segments.datapath import Datapath, HostView, RemoteChange
from acsnet.plugins.segments.model import SegmentEndpoint, SegmentRecord
from acsnet.plugins.segments.table_parts import TableInParts, TableParts


def fact_table(view: HostView) -> list[str]:
    """One line per local endpoint and per remote record: what any driver's flows are made from."""
    lines = [f"local segment={e.segment} ip={e.ip} mac={e.mac} port={e.host_port}"
             for e in sorted(view.endpoints, key=lambda e: (e.segment, e.ip))]
    for segment in view.segments():
        lines += [f"remote segment={segment} ip={r.ip} mac={r.mac} host={r.host} vtep={r.vtep}"
                  for r in view.remote_records(segment)]
    return lines


@dataclasses.dataclass
class RecordedSwitch:
    """One host's switch and kernel links, as recorded (they outlive a plugin restart)."""

    ports: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # port -> external_ids
    options: dict[str, dict] = dataclasses.field(default_factory=dict)  # port -> its OVSDB settings
    links: dict[str, int] = dataclasses.field(default_factory=dict)  # link name in the host's namespace -> index
    table: dict[str, str] = dataclasses.field(default_factory=dict)  # the flow table by identity (a fact line: itself)
    installs: int = 0
    changes: int = 0  # changes of some flows only (`change_flows`)
    announced: list[str] = dataclasses.field(default_factory=list)  # addresses announced (gratuitous ARPs)
    tso: bool = True  # whether endpoint veths keep their TX offloads now (`Bridge.veth_offloads`)
    offloads_off: set[str] = dataclasses.field(default_factory=set)  # links whose TX offloads were turned off
    started: int = 1  # which start of the switch this is (`restart`)
    _next_index: int = 100
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def restart(self) -> None:
        """ovs-vswitchd restarted: it starts with no flows (ports and links stay, as OVSDB and the kernel keep them)."""
        with self.lock:
            self.table = {}
            self.started += 1

    @property
    def flows(self) -> list[str]:
        """The flow table, as installed and changed since."""
        with self.lock:
            return list(self.table.values())

    def take_container_end(self, endpoint: SegmentEndpoint) -> None:
        """What dockerd does at Join: the container end leaves the host's namespace."""
        with self.lock:
            self.links.pop(endpoint.container_port, None)

    def lose_veth(self, endpoint: SegmentEndpoint) -> None:
        """What a reboot or a dead container does: the veth is gone (its port may stay in OVSDB)."""
        with self.lock:
            self.links.pop(endpoint.host_port, None)
            self.links.pop(endpoint.container_port, None)


def _identity(flow: str) -> str:
    return flow_identity(flow) if flow.startswith("cookie=") else flow


class RecordingBridge:
    """The `Bridge` interface on a `RecordedSwitch` (stands in for OVS and netlink)."""

    def __init__(self, name: str, switch: RecordedSwitch):
        self.name = name
        self.switch = switch
        self._installed_on: int | None = None  # the switch's start the whole table was last installed on

    def reachable(self) -> bool:
        return True

    def ports(self) -> dict[str, dict[str, str]]:
        with self.switch.lock:
            return {name: dict(ids) for name, ids in self.switch.ports.items()}

    def veth_exists(self, port: str) -> bool:
        return port in self.switch.links

    def plug(self, endpoint: SegmentEndpoint, *, mtu: int, options: dict, external_ids: dict, create_veth: bool) -> None:
        with self.switch.lock:
            if create_veth:
                for name in (endpoint.host_port, endpoint.container_port):
                    self.switch.links[name] = self.switch._next_index
                    self.switch._next_index += 1
            self.switch.ports[endpoint.host_port] = dict(external_ids)
            self.switch.options[endpoint.host_port] = dict(options)

    @property
    def veth_offloads(self) -> bool:
        return self.switch.tso

    def read_offloads(self) -> bool:
        return self.switch.tso

    def make_spare(self, host_end: str, container_end: str, *, mtu: int, options: dict, offloads: bool,
                   external_ids: dict) -> None:
        with self.switch.lock:
            for name in (host_end, container_end):
                self.switch.links[name] = self.switch._next_index
                self.switch._next_index += 1
                if not offloads:
                    self.switch.offloads_off.add(name)
            self.switch.ports[host_end] = dict(external_ids)
            self.switch.options[host_end] = dict(options)

    def fit_spare(self, endpoint: SegmentEndpoint, *, mtu: int | None, options: dict, external_ids: dict,
                  offloads: bool | None = None) -> None:
        if offloads is not None:
            with self.switch.lock:
                ends = {endpoint.host_port, endpoint.container_port}
                self.switch.offloads_off = self.switch.offloads_off - ends if offloads else self.switch.offloads_off | ends
        self.label(endpoint.host_port, options=options, external_ids=external_ids)

    def label(self, port: str, *, options: dict, external_ids: dict) -> None:
        with self.switch.lock:
            if port not in self.switch.ports:
                raise DatapathError(f"cannot label port {port}: it is not a port of {self.name}")
            self.switch.ports[port] = dict(external_ids)
            self.switch.options[port].update(options)

    def remove_port(self, port: str) -> None:
        with self.switch.lock:
            self.switch.ports.pop(port, None)
            self.switch.options.pop(port, None)
            self.switch.links.pop(port, None)

    def port_index(self, port: str) -> int | None:
        return self.switch.links.get(port)

    def detach(self, port: str) -> None:
        with self.switch.lock:
            self.switch.ports.pop(port, None)
            self.switch.options.pop(port, None)

    def delete_veth(self, index: int) -> None:
        with self.switch.lock:
            for name in [n for n, i in self.switch.links.items() if i == index]:
                del self.switch.links[name]
                # the peer goes with it, as a veth pair's does
                peer = "vc" + name[2:] if name.startswith("vh") else None
                if peer:
                    self.switch.links.pop(peer, None)

    def host_links(self) -> set[str]:
        with self.switch.lock:
            return set(self.switch.links)

    def install_flows(self, flows: list[str]) -> None:
        with self.switch.lock:
            self.switch.table = {_identity(f): f for f in flows}
            self.switch.installs += 1
            self._installed_on = self.switch.started

    def change_flows(self, flows: list[str], deleted: list[str]) -> bool:
        with self.switch.lock:
            for flow in flows:
                self.switch.table[_identity(flow)] = flow
            for key in deleted:
                self.switch.table.pop(key, None)
            self.switch.changes += 1
        return True

    def flows_intact(self) -> bool:
        return self._installed_on in (None, self.switch.started)

    def switch_started(self) -> int | None:
        return self.switch.started

    def close(self) -> None:
        pass  # nothing runs beside the recording


class RecordingDatapath(Datapath):
    """Stands in for OVS: a driver's datapath whose bridge, ports and flows are recorded in a
    `RecordedSwitch` instead of programmed. `driver` picks the store layout and the ports' owner;
    `withdraw_dead_hosts` defaults to what vxlan does."""

    def __init__(self, driver: str, switch: RecordedSwitch | None = None, *, host_mac: str = "02:00:00:00:00:01",
                 vtep: str = "", uplink_mtu: int = 1500, withdraw_dead_hosts: bool | None = None,
                 table: Callable[[HostView], list[str]] = fact_table, parts: TableParts | None = None):
        self.driver = driver
        self.switch = switch if switch is not None else RecordedSwitch()
        self.bridge = RecordingBridge(f"rec-{driver}", self.switch)
        self.host_mac = host_mac
        self.vtep = vtep
        self.uplink_mtu = uplink_mtu
        self.withdraw_dead_hosts = driver == "vxlan" if withdraw_dead_hosts is None else withdraw_dead_hosts
        self.table = parts.table if parts is not None else table
        self.table_in_parts = TableInParts(parts) if parts is not None else None
        self.host_id = ""

    def start(self, agent) -> None:
        self.host_id = agent.host_id

    def record_for(self, endpoint: SegmentEndpoint) -> SegmentRecord:
        return SegmentRecord(self.host_id, self.host_mac, self.vtep, endpoint.ip, endpoint.mac, endpoint.endpoint_id,
                             endpoint.ip6)

    def port_options(self) -> dict:
        return {"tag": 4095} if self.driver in ("vlan", "vpc") else {}

    def program(self, view: HostView) -> list[str]:
        flows = self.table(view) if self.table_in_parts is None else self.table_in_parts.whole(view)
        self.bridge.install_flows(flows)
        return flows

    def program_change(self, change: RemoteChange, view: HostView | None = None) -> bool:
        if self.table_in_parts is None or not self.table_in_parts.programmed:
            return False
        return self.bridge.change_flows(*self.table_in_parts.change(change, view))

    def announce(self, view: HostView, joined: list[SegmentEndpoint], arrived: list[tuple[int, SegmentRecord]]) -> None:
        with self.switch.lock:
            self.switch.announced += [e.ip for e in joined] + [r.ip for _, r in arrived]
