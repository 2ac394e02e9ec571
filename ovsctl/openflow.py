"""The flows of one acsnet driver on a bridge, as acsnet installs them. Each driver's flows carry its
own cookie, and only flows of that cookie are ever changed: the vlan and vpc drivers share the host
bridge.

`replace_flows` makes the flows of a cookie exactly the given ones in one bundle (`ovs-ofctl --bundle
add-flows`: delete every flow of the cookie, add the new table), so packets meet either the old table
or the new one, never a gap. It rebuilds everything after a restart.

`FlowTable` remembers what it last installed so that one endpoint's change sends only its own flows:
measured on a lab host, a bundled install costs 30-40 ms whatever it changes (the bundle commit in
ovs-vswitchd), one `add-flows` call of a few lines about 9 ms. A change is sent as `add` lines first,
then `delete_strict` lines, so that nothing is ever missing between two states: an `add` of a flow
whose match and priority exist replaces its actions in place.

Of those 9 ms, about 7 were ovs-ofctl starting (loading its 16 libraries: `ovs-ofctl --version` alone
takes as long), 3.7 ms of CPU each time, and about 1 its exit; talking to the switch took the rest.
An ovs-ofctl started ahead (`WarmOfctl`, until 2026-12-05) took the start off the request but not its
CPU, on every change of every host. So a change goes over one OpenFlow connection the process keeps
(`OpenFlowConnection`): the messages ovs-ofctl would send for the same lines (NXM over OpenFlow 1.0, as
ovs-ofctl picks; `acsnet.ovsctl.flow_mods` writes them byte for byte) and a barrier. They name ports by
OpenFlow number (as ovs-ofctl's `--no-names`), which `numbered` writes in for the port names from
OVSDB; a name OVSDB does not know refuses the change, as ovs-ofctl refuses an unknown name, and the
next install is whole, by name. A line flow_mods does not know is refused the same way.

Every flow is written `cookie=C,table=T,priority=P[,match],actions=A`; what is before `,actions=`
(less the cookie) is the flow's identity.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import threading
from typing import Callable, Iterable

from acsnet.errors import DatapathError
from acsnet.ovsctl import flow_mods
from acsnet.ovsctl.command import check_interface_name, run

log = logging.getLogger(__name__)


def replace_flows(bridge: str, cookie: str, flows: list[str], timeout: float = 20.0) -> None:
    """The flows of `cookie` on the bridge become `flows`, in one transaction."""
    run(["ovs-ofctl", "--bundle", "add-flows", check_interface_name(bridge), "-"],
        input_text="\n".join([f"delete cookie={cookie}/-1", *flows]) + "\n", timeout=timeout)


def count_flows(bridge: str, cookie: str, timeout: float = 10.0) -> int:
    out = run(["ovs-ofctl", "--no-stats", "dump-flows", check_interface_name(bridge), f"cookie={cookie}/-1"], timeout=timeout)
    return sum(1 for line in out.splitlines() if "cookie=" in line)


def flow(cookie: str, table: int, priority: int, match: str, actions: str) -> str:
    """A flow written the one way acsnet writes them (each pipeline binds its cookie)."""
    match = f",{match}" if match else ""
    return f"cookie={cookie},table={table},priority={priority}{match},actions={actions}"


def flow_identity(flow: str) -> str:
    """`table=T,priority=P[,match]` of a flow written as acsnet writes them."""
    head, found, _ = flow.partition(",actions=")
    if not found or not head.startswith("cookie="):
        raise ValueError(f"flow not in acsnet's form cookie=...,actions=...: {flow!r}")
    return head.split(",", 1)[1]


# A port named where a flow matches or outputs to it; OpenFlow's reserved ports (LOCAL, IN_PORT...)
# and numbers are what they are.
PORT_REFERENCE = re.compile(r"(?<=in_port=)[A-Za-z0-9_.-]+|(?<=output:)[A-Za-z0-9_.-]+")
RESERVED_PORTS = frozenset({"LOCAL", "IN_PORT", "NORMAL", "FLOOD", "ALL", "CONTROLLER", "TABLE", "NONE", "ANY"})

PortNumbers = Callable[[Iterable[str]], dict[str, int]]  # port names -> OpenFlow numbers (those known)


def port_names(lines: Iterable[str]) -> set[str]:
    """The port names the lines use (`in_port=NAME`, `output:NAME`)."""
    return {name for line in lines for name in PORT_REFERENCE.findall(line)
            if not name.isdigit() and name not in RESERVED_PORTS}


def numbered(lines: list[str], numbers: dict[str, int]) -> list[str]:
    """The lines with each port name replaced by its OpenFlow number."""
    missing = port_names(lines) - set(numbers)
    if missing:
        raise DatapathError(f"no OpenFlow port number for {', '.join(sorted(missing))} (not on the switch)")

    def number(found: re.Match) -> str:
        return str(numbers.get(found.group(0), found.group(0)))

    return [PORT_REFERENCE.sub(number, line) for line in lines]


class OpenFlowConnection:
    """One OpenFlow connection to a bridge's management socket (`<OVS rundir>/<bridge>.mgmt`, where
    ovs-ofctl connects), opened at first use in the process that uses it and kept: a change is its flow
    mods and a barrier, answered when the barrier's reply comes, with no process to start. The flows are
    the bytes ovs-ofctl would send (`acsnet.ovsctl.flow_mods`), by port number, as ovs-ofctl's `--no-names`.

    A connection the switch closed (ovs-vswitchd restarted, or it dropped an idle connection) is opened
    again and the change sent again, once: adds and strict deletes may be repeated. A flow the switch
    refuses, a line flow_mods cannot write, or no answer within the timeout raises DatapathError (the
    flows before the refused one are in, as with ovs-ofctl)."""

    def __init__(self, bridge: str, rundir: str | None = None):
        self.bridge = check_interface_name(bridge)
        # ovs-ofctl's own rule: OVS_RUNDIR, else Debian's run directory
        self.path = os.path.join(rundir or os.environ.get("OVS_RUNDIR", "/var/run/openvswitch"), f"{self.bridge}.mgmt")
        self._socket: socket.socket | None = None
        self._received = b""
        self._xid = 0
        self._lock = threading.Lock()

    def add_flows(self, lines: list[str], timeout: float) -> None:
        """Send the lines (flows and `delete_strict` lines, with port numbers), as `ovs-ofctl add-flows`."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._socket is None:
                        self._connect(timeout)
                    self._transact(lines, timeout)
                    return
                except flow_mods.Unencodable as e:  # found before any of the change was sent
                    raise DatapathError(f"flow not sent over OpenFlow ({e})") from None
                except TimeoutError:
                    self._close()
                    raise DatapathError(f"ovs-vswitchd did not answer within {timeout:g}s on {self.path}") from None
                except OSError as e:
                    self._close()
                    if attempt == 2 or isinstance(e, (FileNotFoundError, ConnectionRefusedError)):
                        raise DatapathError(f"no OpenFlow connection to bridge {self.bridge} ({self.path}: {e})") from None

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket, self._received = None, b""

    def _next_xid(self) -> int:
        self._xid = self._xid % 0xFFFFFF00 + 1
        return self._xid

    def _connect(self, timeout: float) -> None:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.settimeout(timeout)
            connection.connect(self.path)
            first = self._next_xid()
            self._xid += 3
            connection.sendall(b"".join(flow_mods.session_setup(first)))
        except BaseException:
            connection.close()
            raise
        self._socket = connection  # the switch's hello, and any refusal of the set-up, come with the first barrier

    def _transact(self, lines: list[str], timeout: float) -> None:
        assert self._socket is not None
        self._socket.settimeout(timeout)
        lines_by_xid = {self._next_xid(): line for line in lines}
        messages = [flow_mods.encode_flow_mod(line, xid) for xid, line in lines_by_xid.items()]  # all, before any is sent
        barrier = self._next_xid()
        self._socket.sendall(b"".join(messages) + flow_mods.barrier(barrier))
        refused = []
        while True:
            message_type, xid, body = self._receive()
            if message_type == flow_mods.OFPT_ECHO_REQUEST:
                self._socket.sendall(flow_mods.message(flow_mods.OFPT_ECHO_REPLY, xid, body))
            elif message_type == flow_mods.OFPT_ERROR:
                kind, code = struct.unpack("!HH", body[:4]) if len(body) >= 4 else (0, 0)
                refused.append(f"{lines_by_xid.get(xid, 'the connection set-up')} (OpenFlow error type {kind} code {code})")
            elif message_type == flow_mods.OFPT10_BARRIER_REPLY and xid == barrier:
                break
        if refused:
            raise DatapathError(f"bridge {self.bridge} refused: {'; '.join(refused)}")

    def _receive(self) -> tuple[int, int, bytes]:
        """The next message: (type, xid, body)."""
        assert self._socket is not None
        while True:
            if len(self._received) >= 8:
                length = struct.unpack("!H", self._received[2:4])[0]
                if length < 8:
                    raise ConnectionError(f"a message of length {length} from the switch")
                if len(self._received) >= length:
                    one, self._received = self._received[:length], self._received[length:]
                    return one[1], struct.unpack("!I", one[4:8])[0], one[8:]
            data = self._socket.recv(65536)
            if not data:
                raise ConnectionResetError("the switch closed the connection")
            self._received += data


class FlowTable:
    """The flows of one bridge that carry `cookie`, as this process last installed them. Changes go
    through an `OpenFlowConnection`, with the port numbers `port_numbers` gives (OVSDB's)."""

    def __init__(self, bridge: str, cookie: str, port_numbers: PortNumbers, timeout: float = 20.0):
        self.bridge = check_interface_name(bridge)
        self.cookie = cookie
        self.timeout = timeout
        self._port_numbers = port_numbers
        self._connection = OpenFlowConnection(bridge)
        self._installed: dict[str, str] | None = None  # identity -> flow; None: not known, install whole

    def close(self) -> None:
        self._connection.close()

    def _send(self, changes: list[str]) -> None:
        """One change, as `add` and `delete_strict` lines by port name."""
        if changes:
            self._connection.add_flows(numbered(changes, self._port_numbers(port_names(changes))), self.timeout)

    def install(self, flows: list[str]) -> None:
        """Install `flows` as the whole table: only the difference when the installed table is known,
        else (or if the difference is refused, e.g. it names a port that is gone) the whole table."""
        desired = {flow_identity(f): f for f in flows}
        installed, self._installed = self._installed, None  # unknown until this install has succeeded
        if installed is not None:
            changes = [f for key, f in desired.items() if installed.get(key) != f]
            changes += [f"delete_strict cookie={self.cookie}/-1,{key}" for key in installed if key not in desired]
            try:
                self._send(changes)
                self._installed = desired
                return
            except DatapathError as e:
                log.info("bridge=%s flow change refused (%s); installing the whole table", self.bridge, e.message)
        replace_flows(self.bridge, self.cookie, flows, timeout=self.timeout)
        self._installed = desired

    def change(self, flows: list[str], deleted: list[str]) -> bool:
        """Add or replace `flows` and delete the flows of the identities `deleted`, the rest of the table
        as installed: one `add-flows`. False, nothing done, if the installed table is not known or the
        change is refused (the next `install` is then whole)."""
        installed, self._installed = self._installed, None
        if installed is None:
            return False
        changes = flows + [f"delete_strict cookie={self.cookie}/-1,{key}" for key in deleted]
        try:
            self._send(changes)
        except DatapathError as e:
            log.info("bridge=%s flow change refused (%s); the next install is whole", self.bridge, e.message)
            return False
        for flow in flows:
            installed[flow_identity(flow)] = flow
        for key in deleted:
            installed.pop(key, None)
        self._installed = installed
        return True

    def check(self) -> bool:
        """False if the switch no longer holds as many flows of the cookie as were installed (someone
        removed some, or ovs-vswitchd restarted empty): the next install is then whole. A flow changed
        in place is not noticed; a restart of the plugin, or any refused change, repairs that."""
        if self._installed is None or count_flows(self.bridge, self.cookie, self.timeout) == len(self._installed):
            return True
        log.info("bridge=%s flows of cookie %s changed behind our back; installing them whole", self.bridge, self.cookie)
        self._installed = None
        return False


def packet_out(bridge: str, actions: str, packet: bytes, timeout: float = 10.0) -> None:
    """Send `packet` (a whole Ethernet frame) into the bridge's pipeline as if from the controller."""
    run(["ovs-ofctl", "packet-out", check_interface_name(bridge),
         f"in_port=controller,packet={packet.hex()},actions={actions}"], timeout=timeout)
