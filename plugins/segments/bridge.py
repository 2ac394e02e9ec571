"""The OVS I/O every segment driver shares on its bridge: endpoint ports and their veths, and the flow
table of the driver's cookie. `Bridge` is the interface the agent's port lifecycle and sync call;
`OvsBridge` does it on Open vSwitch and the kernel; `acsnet.plugins.segments.recording` records it in
memory instead (standing in for OVS)."""

from __future__ import annotations

from typing import Protocol

from acsnet.ovsctl import links, openflow
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.plugins.segments.model import SegmentEndpoint


class Bridge(Protocol):
    name: str

    def reachable(self) -> bool:
        """Whether the switch answers (the plugin's /healthz)."""

    def ports(self) -> dict[str, dict[str, str]]:
        """The bridge's ports, each with its OVSDB external_ids."""

    def veth_exists(self, port: str) -> bool:
        """Whether the host end of an endpoint's veth exists (OVSDB may list ports whose veth is gone)."""

    def plug(self, endpoint: SegmentEndpoint, *, mtu: int, options: dict, external_ids: dict, create_veth: bool) -> None:
        """Put the endpoint's port on the bridge, making its veth first if `create_veth`."""

    def make_spare(self, host_end: str, container_end: str, *, mtu: int, options: dict, offloads: bool,
                   external_ids: dict) -> None:
        """Make a veth pair no endpoint has yet (its TX offloads kept if `offloads`) and put its host end
        on the bridge, waiting for the switch to open it."""

    def fit_spare(self, endpoint: SegmentEndpoint, *, mtu: int | None, options: dict, external_ids: dict,
                  offloads: bool | None = None) -> None:
        """Hand a spare pair to `endpoint`: both ends' MTU if `mtu`, their TX offloads turned on or off if
        `offloads` says which, and its port's labels and options; nothing for the switch to open."""

    def label(self, port: str, *, options: dict, external_ids: dict) -> None:
        """The port gets these labels, replacing what it had, and its options."""

    @property
    def veth_offloads(self) -> bool:
        """Whether endpoint veths keep their TX offloads now."""

    def read_offloads(self) -> bool:
        """`veth_offloads` read afresh from the host (the worker's, every few seconds)."""

    def remove_port(self, port: str) -> None:
        """Take a port off the bridge and delete its veth, now."""

    def port_index(self, port: str) -> int | None:
        """The veth's index, by which `delete_veth` deletes it later (never one of the same name made meanwhile)."""

    def detach(self, port: str) -> None:
        """Take a port whose flows are gone off the bridge, without waiting for the switch to let go of it."""

    def delete_veth(self, index: int) -> None:
        """Delete a veth by its index."""

    def host_links(self) -> set[str]:
        """Names of the links in the host's namespace (a container end still there was never joined)."""

    def install_flows(self, flows: list[str]) -> None:
        """Install `flows` as the whole flow table of the driver's cookie."""

    def change_flows(self, flows: list[str], deleted: list[str]) -> bool:
        """Add or replace `flows` and delete the flows of the identities `deleted` (`table=T,priority=P,match`),
        the rest of the table as last installed; False, nothing done, if that table is not known."""

    def flows_intact(self) -> bool:
        """False if the switch lost flows since the last install (the next install is then whole)."""

    def switch_started(self) -> int | None:
        """Which start of the switch this is (ovs-vswitchd's pid), read cheaply; None if not known."""

    def close(self) -> None:
        """End what the bridge keeps running for its changes (at the agent's stop)."""


class OvsBridge:
    """A driver's bridge on Open vSwitch: ports through OVSDB, veths through netlink, flows through
    OpenFlow (only the difference to what this process installed last, over a connection it keeps)."""

    def __init__(self, ovsdb: Ovsdb, name: str, cookie: str, *, userspace_datapath: bool):
        self.ovsdb = ovsdb
        self.name = name
        self.userspace_datapath = userspace_datapath
        self._flow_table = openflow.FlowTable(name, cookie, ovsdb.ofports)
        self._offloads: tuple[int | None, bool] | None = None  # (ovs-vswitchd's pid, `veth_offloads`) as last read

    @property
    def tso_capable(self) -> bool:
        """Whether the driver's packets may cross OVS with TCP segmentation and checksums still to do (the
        userspace datapath's TSO). Yes on a bridge whose packets leave through ports OVS hands them to
        as they are; a bridge behind a tunnel port says otherwise (vxlan's `TunnelBridge`)."""
        return True

    @property
    def veth_offloads(self) -> bool:
        """Whether container veths keep their TX checksum and segmentation offloads. The kernel datapath
        completes them; the userspace one only with TSO in effect, which its bridge's port shows. That
        read is a SIOCETHTOOL ioctl, which the kernel serves under its rtnl lock: after an overlay
        container, while dockerd started the next one, it kept a CreateEndpoint waiting 6-9 ms (README,
        "The TSO read off the request path"). So it is the last read, kept while ovs-vswitchd's pid is
        the same (a file read, no lock): TSO goes on or off only with a restart of it. The worker reads
        it again every few seconds too (`read_offloads`): a restarted ovs-vswitchd writes its pid before
        it opens the bridge's port, and `host-setup --no-userspace-tso` turns the port's off at once."""
        read = self._offloads
        if read is not None and read[0] is not None and read[0] == self.ovsdb.switch_pid():
            return read[1]
        return self.read_offloads()

    def read_offloads(self) -> bool:
        started = self.ovsdb.switch_pid()
        offloads = not self.userspace_datapath or (self.tso_capable and links.segmentation_offload(self.name))
        self._offloads = (started, offloads)
        return offloads

    def reachable(self) -> bool:
        return self.ovsdb.reachable()

    def ports(self) -> dict[str, dict[str, str]]:
        return {name: info["external_ids"] for name, info in self.ovsdb.ports(self.name).items()}

    def veth_exists(self, port: str) -> bool:
        return links.exists(port)

    def plug(self, endpoint: SegmentEndpoint, *, mtu: int, options: dict, external_ids: dict, create_veth: bool) -> None:
        if create_veth:
            self._make_veth(endpoint.host_port, endpoint.container_port, mtu, endpoint.mac, self.veth_offloads)
        self.ovsdb.add_port(self.name, endpoint.host_port, **options, external_ids=external_ids)

    def make_spare(self, host_end: str, container_end: str, *, mtu: int, options: dict, offloads: bool,
                   external_ids: dict) -> None:
        self._make_veth(host_end, container_end, mtu, None, offloads)
        self.ovsdb.add_port(self.name, host_end, **options, external_ids=external_ids)

    @staticmethod
    def _make_veth(host_end: str, container_end: str, mtu: int, container_mac: str | None, offloads: bool) -> None:
        links.create_veth(host_end, container_end, mtu=mtu, container_mac=container_mac)
        if not offloads:
            links.disable_tx_checksum(host_end)
            links.disable_tx_checksum(container_end)

    def fit_spare(self, endpoint: SegmentEndpoint, *, mtu: int | None, options: dict, external_ids: dict,
                  offloads: bool | None = None) -> None:
        # The container end's MAC is dockerd's to set: it sets the endpoint's (from CreateEndpoint's
        # request or answer) as it moves the end into the container (shared/PROTOCOL.md, "Interfaces").
        # Setting it here too cost 5-10 ms of a CreateEndpoint on a lab host (a netlink socket, a lookup
        # by name, the change); the MTU it does not set for a remote driver, so that is set, if it differs.
        if mtu:
            links.set_mtu([endpoint.host_port, endpoint.container_port], mtu)
        if offloads is not None:  # before Join: the container end is still in the host's namespace
            for end in (endpoint.host_port, endpoint.container_port):
                (links.enable_tx_checksum if offloads else links.disable_tx_checksum)(end)
        self.label(endpoint.host_port, options=options, external_ids=external_ids)

    def label(self, port: str, *, options: dict, external_ids: dict) -> None:
        self.ovsdb.label_port(self.name, port, external_ids=external_ids, tag=options.get("tag"))

    def remove_port(self, port: str) -> None:
        self.ovsdb.delete_port(self.name, port)
        links.delete(port)

    def port_index(self, port: str) -> int | None:
        return links.index_of(port)

    def detach(self, port: str) -> None:
        self.ovsdb.delete_port(self.name, port, wait=False)

    def delete_veth(self, index: int) -> None:
        links.delete_index(index)

    def host_links(self) -> set[str]:
        return links.names()

    def install_flows(self, flows: list[str]) -> None:
        self._flow_table.install(flows)

    def change_flows(self, flows: list[str], deleted: list[str]) -> bool:
        return self._flow_table.change(flows, deleted)

    def flows_intact(self) -> bool:
        return self._flow_table.check()

    def switch_started(self) -> int | None:
        return self.ovsdb.switch_pid()

    def close(self) -> None:
        self._flow_table.close()
