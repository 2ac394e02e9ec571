"""The flows of one acsnet driver on a bridge, as acsnet installs them. Each driver's flows carry its
own cookie, and only flows of that cookie are ever changed: the vlan and vpc drivers share the host
bridge.

`replace_flows` makes the flows of a cookie exactly the given ones in one bundle (`ovs-ofctl --bundle
add-flows`: delete every flow of the cookie, add the new table), so packets meet either the old table
or the new one, never a gap. It rebuilds everything after a restart.

`FlowTable` remembers what it last installed so that one endpoint's change sends only its own flows:
measured on a lab host, a bundled install costs 30-40 ms whatever it changes (the bundle commit in
ovs-vswitchd), one `add-flows` call of a few lines about 9 ms. The change goes in one `ovs-ofctl
add-flows` (NXM over OpenFlow 1.0: with 1.3 and later every call costs 20 ms more here) as `add` lines
first, then `delete_strict` lines, so that nothing is ever missing between two states: an `add` of a
flow whose match and priority exist replaces its actions in place.

Of those 9 ms, about 7 are ovs-ofctl starting (loading its 16 libraries: `ovs-ofctl --version` alone
takes as long); talking to the switch takes the rest. So a change goes to an ovs-ofctl started ahead
(`WarmOfctl`), already waiting for its flows on stdin: 4.6 ms instead of 10.5 at p50 on a lab host
(benchmarks/flow_change.py), on each CreateEndpoint and DeleteEndpoint. Such a process cannot know a port made after it started (ovs-ofctl
reads the bridge's port names when it starts), so it is given OpenFlow port numbers (`--no-names`),
which `numbered` writes in for the port names from OVSDB; a name OVSDB does not know refuses the
change, as ovs-ofctl refuses an unknown name, and the next install is whole, by name.

Every flow is written `cookie=C,table=T,priority=P[,match],actions=A`; what is before `,actions=`
(less the cookie) is the flow's identity.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from typing import Callable, Iterable

from acsnet.errors import DatapathError
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


class WarmOfctl:
    """`ovs-ofctl --no-names add-flows BRIDGE -`, started before it is needed: it has loaded its
    libraries and waits on stdin, so a change costs only the talk with the switch. Each one used is
    replaced at once, and the spare loads meanwhile. The first spare starts at first use, in the process
    that uses it (never one that forks workers after). A spare that died is replaced then and there."""

    def __init__(self, bridge: str):
        self.argv = ["ovs-ofctl", "--no-names", "add-flows", check_interface_name(bridge), "-"]
        self._spare: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def add_flows(self, lines: list[str], timeout: float) -> None:
        """Send the lines (flows and `delete_strict` lines, with port numbers), as `ovs-ofctl add-flows`."""
        with self._lock:
            process, self._spare = self._spare, None
            if process is None or process.poll() is not None:
                process = self._start()
            try:
                _, errors = process.communicate("\n".join(lines) + "\n", timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise DatapathError(f"ovs-ofctl did not answer within {timeout:g}s: {' '.join(self.argv[2:4])}") from None
            finally:
                self._spare = self._start()
            if process.returncode != 0:
                raise DatapathError(f"ovs-ofctl {' '.join(self.argv[2:4])}: {errors.strip()}")

    def close(self) -> None:
        """End the spare (it would otherwise read end-of-file when this process exits, and send nothing)."""
        with self._lock:
            process, self._spare = self._spare, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def _start(self) -> subprocess.Popen:
        try:
            return subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
        except FileNotFoundError:
            raise DatapathError("ovs-ofctl is not installed (apt-get install openvswitch-switch)") from None


class FlowTable:
    """The flows of one bridge that carry `cookie`, as this process last installed them. Changes go
    through a `WarmOfctl`, with the port numbers `port_numbers` gives (OVSDB's)."""

    def __init__(self, bridge: str, cookie: str, port_numbers: PortNumbers, timeout: float = 20.0):
        self.bridge = check_interface_name(bridge)
        self.cookie = cookie
        self.timeout = timeout
        self._port_numbers = port_numbers
        self._ofctl = WarmOfctl(bridge)
        self._installed: dict[str, str] | None = None  # identity -> flow; None: not known, install whole

    def close(self) -> None:
        self._ofctl.close()

    def _send(self, changes: list[str]) -> None:
        """One change, as `add` and `delete_strict` lines by port name."""
        if changes:
            self._ofctl.add_flows(numbered(changes, self._port_numbers(port_names(changes))), self.timeout)

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
