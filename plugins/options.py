"""Docker's options read into typed values, once, where they come in.

The protocol edge (`acsnet.plugins.protocol`) parses the options every driver reads the same way: the
MTU of CreateNetwork (`-o com.docker.network.driver.mtu=N`), the port bindings (`-p`, `-P`) and exposed
ports of Join and ProgramExternalConnectivity. Each driver's own `-o` keys are read by its `options`
module with `integer_option`; this is the one module they share, so no driver imports another.
A bad value is an `InvalidRequest` naming the option and the value, raised before any driver code runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import netaddr

from acsnet.errors import InvalidRequest

MTU_KEY = "com.docker.network.driver.mtu"
MTU_MIN, MTU_MAX = 68, 65535  # IPv4's minimum link MTU; the largest an interface takes
PORTMAP = "com.docker.network.portmap"  # the container's published ports (`-p`, `-P`), as a JSON array
EXPOSED_PORTS = "com.docker.network.endpoint.exposedports"  # its EXPOSEd ports, as a JSON array
PROTOCOLS = {6: "tcp", 17: "udp", 132: "sctp"}  # the IP protocol numbers libnetwork sends as "Proto"


def integer_option(text: Any, what: str, low: int, high: int) -> int:
    """A `-o` value (a string from the CLI) as an integer in [low, high]."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InvalidRequest(f"{what} must be an integer from {low} to {high}, got {text!r}") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{what} must be an integer from {low} to {high}, got {value}")
    return value


def parse_mtu(generic: dict[str, Any]) -> int | None:
    """The network's MTU if `-o com.docker.network.driver.mtu` gives one (None: the driver's default)."""
    return integer_option(generic[MTU_KEY], MTU_KEY, MTU_MIN, MTU_MAX) if MTU_KEY in generic else None


@dataclasses.dataclass(frozen=True)
class PortBinding:
    """One published port: traffic to `host_port`/`proto` on the host goes to `container_port`."""

    proto: int  # a key of PROTOCOLS
    container_port: int
    host_ip: netaddr.IPAddress | None  # None: every address of the host (dockerd sends "")
    host_port: int  # 0: one the driver chooses (`-p 80`, `-P`)

    def __str__(self) -> str:
        """As `docker run -p` spells it."""
        return f"{self.host_port}:{self.container_port}" if self.host_port else str(self.container_port)

    def to_json(self) -> dict[str, Any]:
        """libnetwork's form (`types.PortBinding`)."""
        return {"Proto": self.proto, "IP": "", "Port": self.container_port,
                "HostIP": str(self.host_ip) if self.host_ip is not None else "",
                "HostPort": self.host_port, "HostPortEnd": self.host_port}


@dataclasses.dataclass(frozen=True)
class ExposedPort:
    proto: int
    port: int


def _entries(options: dict[str, Any], key: str) -> list[dict]:
    entries = options.get(key)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InvalidRequest(f"option {key!r} must be a JSON array, not {type(entries).__name__}")
    for entry in entries:
        if not isinstance(entry, dict):
            raise InvalidRequest(f"each entry of option {key!r} must be a JSON object, got {entry!r}")
    return entries


def _integer(entry: dict, name: str, key: str, low: int, high: int, default: int | None = None) -> int:
    value = entry.get(name)
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"{key} entry {entry!r}: {name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _proto(entry: dict, key: str) -> int:
    proto = _integer(entry, "Proto", key, 0, 255)
    if proto not in PROTOCOLS:
        raise InvalidRequest(f"{key} entry {entry!r}: protocol {proto} is not tcp (6), udp (17) or sctp (132)")
    return proto


def _host_ip(entry: dict, key: str) -> netaddr.IPAddress | None:
    text = entry.get("HostIP") or ""
    if not isinstance(text, str):
        raise InvalidRequest(f"{key} entry {entry!r}: HostIP must be a string, got {text!r}")
    try:
        return netaddr.IPAddress(text) if text else None
    except (netaddr.AddrFormatError, ValueError):
        raise InvalidRequest(f"{key} entry {entry!r}: HostIP {text!r} is not an IP address") from None


def parse_port_bindings(options: dict[str, Any]) -> tuple[PortBinding, ...]:
    """The published ports in an endpoint's or a sandbox's options (none if the option is absent)."""
    return tuple(PortBinding(_proto(entry, PORTMAP), _integer(entry, "Port", PORTMAP, 1, 65535), _host_ip(entry, PORTMAP),
                             _integer(entry, "HostPort", PORTMAP, 0, 65535, default=0))
                 for entry in _entries(options, PORTMAP))


def parse_exposed_ports(options: dict[str, Any]) -> tuple[ExposedPort, ...]:
    return tuple(ExposedPort(_proto(entry, EXPOSED_PORTS), _integer(entry, "Port", EXPOSED_PORTS, 1, 65535))
                 for entry in _entries(options, EXPOSED_PORTS))
