"""libnetwork's remote-plugin JSON protocol as typed values.

One parser per request, run by the server before any driver code: a driver receives only well-formed
values (netaddr networks and addresses, dicts that are dicts), and every malformed field becomes an
`InvalidRequest` naming the field. The options every driver reads the same way (the MTU, published
and exposed ports) become typed values here too, through `acsnet.plugins.options`. Replies are
dataclasses the server turns into JSON. Field names and shapes follow what dockerd 20.10 really sends
(shared/PROTOCOL.md): nil maps arrive as `null`, the gateway and aux addresses of CreateNetwork are
CIDRs with the pool's mask.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import netaddr

from acsnet.errors import InvalidRequest
from acsnet.plugins.options import ExposedPort, PortBinding, parse_exposed_ports, parse_mtu, parse_port_bindings

# -- field readers -------------------------------------------------------------------------------


def _field(body: dict, name: str, kind: type, *, required: bool = True, default: Any = None):
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"missing field {name!r}")
        return default
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise InvalidRequest(f"field {name!r} must be a {_KIND_NAMES.get(kind, kind.__name__)}, not {type(value).__name__}")


_KIND_NAMES = {str: "string", dict: "JSON object", list: "JSON array", bool: "boolean", int: "integer"}


def _identifier(body: dict, name: str) -> str:
    value = _field(body, name, str)
    if not value or len(value) > 128 or not all(c.isalnum() or c in "-_." for c in value):
        raise InvalidRequest(f"field {name!r} is not a valid identifier: {value!r}")
    return value


def _options(body: dict, name: str = "Options") -> dict:
    return _field(body, name, dict, required=False, default={})


def parse_network(text: str, what: str) -> netaddr.IPNetwork:
    try:
        if "/" not in text:
            raise ValueError("no prefix length")
        return netaddr.IPNetwork(text)
    except (netaddr.AddrFormatError, ValueError, TypeError) as e:
        raise InvalidRequest(f"{what} {text!r} is not a valid CIDR ({e})") from None


def parse_address(text: str, what: str) -> netaddr.IPAddress:
    try:
        if "/" in text:
            raise ValueError("a plain address has no prefix length")
        return netaddr.IPAddress(text)
    except (netaddr.AddrFormatError, ValueError, TypeError) as e:
        raise InvalidRequest(f"{what} {text!r} is not a valid IP address ({e})") from None


def _exact_network(text: str, what: str) -> netaddr.IPNetwork:
    """A subnet as users mean it: host bits must be zero (10.0.5.1/24 is a mistake, not a pool)."""
    network = parse_network(text, what)
    if network.ip != network.network:
        raise InvalidRequest(f"{what} {text!r} has host bits set; did you mean {network.cidr}?")
    return network


# -- IpamDriver requests -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PoolRequest:
    address_space: str
    pool: netaddr.IPNetwork | None  # None: carve one from the default supernet
    sub_pool: netaddr.IPNetwork | None  # --ip-range
    options: dict[str, str]
    v6: bool

    @classmethod
    def from_json(cls, body: dict) -> "PoolRequest":
        space = _field(body, "AddressSpace", str, required=False, default="")
        pool_text = _field(body, "Pool", str, required=False, default="")
        sub_text = _field(body, "SubPool", str, required=False, default="")
        v6 = _field(body, "V6", bool, required=False, default=False)
        options = _options(body)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
            raise InvalidRequest("field 'Options' must map strings to strings")
        pool = _exact_network(pool_text, "Pool") if pool_text else None
        sub_pool = _exact_network(sub_text, "SubPool") if sub_text else None
        if sub_pool is not None and pool is None:
            raise InvalidRequest(f"SubPool {sub_text!r} given without a Pool")
        if pool is not None:
            if pool.version == 4 and v6:
                raise InvalidRequest(f"Pool {pool_text!r} is IPv4 but V6 is true")
            # A given pool says its family: a swarm manager (Docker 26) asks for a network's IPv6 pool
            # with V6 false (and the gateway's RequestAddress options as the pool's), where dockerd on
            # one host sends V6 true.
            v6 = pool.version == 6
            if sub_pool is not None and sub_pool not in pool:
                raise InvalidRequest(f"SubPool {sub_text!r} is not inside Pool {pool_text!r}")
        return cls(space, pool, sub_pool, options, v6)


@dataclasses.dataclass(frozen=True)
class AddressRequest:
    pool_id: str
    address: netaddr.IPAddress | None  # None: the next free one
    options: dict[str, Any]

    GATEWAY_TYPE = "com.docker.network.gateway"
    MAC_OPTION = "com.docker.network.endpoint.macaddress"

    @property
    def is_gateway(self) -> bool:
        return self.options.get("RequestAddressType") == self.GATEWAY_TYPE

    @property
    def mac(self) -> str | None:
        mac = self.options.get(self.MAC_OPTION)
        return mac if isinstance(mac, str) and mac else None

    @classmethod
    def from_json(cls, body: dict) -> "AddressRequest":
        pool_id = _field(body, "PoolID", str)
        if not pool_id:
            raise InvalidRequest("field 'PoolID' is empty")
        text = _field(body, "Address", str, required=False, default="")
        address = parse_address(text, "Address") if text else None
        return cls(pool_id, address, _options(body))


@dataclasses.dataclass(frozen=True)
class AddressRelease:
    pool_id: str
    address: netaddr.IPAddress

    @classmethod
    def from_json(cls, body: dict) -> "AddressRelease":
        pool_id = _field(body, "PoolID", str)
        return cls(pool_id, parse_address(_field(body, "Address", str), "Address"))


def parse_pool_id(body: dict) -> str:
    pool_id = _field(body, "PoolID", str)
    if not pool_id:
        raise InvalidRequest("field 'PoolID' is empty")
    return pool_id


@dataclasses.dataclass(frozen=True)
class PoolGrant:
    pool_id: str
    pool: netaddr.IPNetwork
    data: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return {"PoolID": self.pool_id, "Pool": str(self.pool.cidr), "Data": self.data}


@dataclasses.dataclass(frozen=True)
class AddressGrant:
    address: netaddr.IPAddress
    prefixlen: int

    def to_json(self) -> dict:
        return {"Address": f"{self.address}/{self.prefixlen}", "Data": {}}


# -- NetworkDriver requests ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class IPAMData:
    address_space: str
    pool: netaddr.IPNetwork
    gateway: netaddr.IPNetwork | None
    aux_addresses: dict[str, netaddr.IPNetwork]

    @classmethod
    def from_json(cls, item: Any, field_name: str) -> "IPAMData":
        if not isinstance(item, dict):
            raise InvalidRequest(f"each entry of {field_name!r} must be a JSON object")
        pool = parse_network(_field(item, "Pool", str), f"{field_name} Pool")
        gateway_text = _field(item, "Gateway", str, required=False, default="")
        gateway = parse_network(gateway_text, f"{field_name} Gateway") if gateway_text else None
        aux = {}
        for name, text in _field(item, "AuxAddresses", dict, required=False, default={}).items():
            if not isinstance(text, str):
                raise InvalidRequest(f"{field_name} AuxAddresses[{name!r}] must be a string")
            aux[name] = parse_network(text, f"{field_name} AuxAddresses[{name!r}]")
        return cls(_field(item, "AddressSpace", str, required=False, default=""), pool.cidr, gateway, aux)


def _ipam_data(body: dict, name: str) -> list[IPAMData]:
    return [IPAMData.from_json(item, name) for item in _field(body, name, list, required=False, default=[])]


@dataclasses.dataclass(frozen=True)
class NetworkCreate:
    network_id: str
    options: dict[str, Any]
    generic: dict[str, Any]  # the `-o k=v` driver options (values are strings from the CLI)
    ipv4: list[IPAMData]
    ipv6: list[IPAMData]
    mtu: int | None = None  # -o com.docker.network.driver.mtu (None: the driver's default)

    GENERIC = "com.docker.network.generic"
    INTERNAL = "com.docker.network.internal"

    @property
    def internal(self) -> bool:
        return self.options.get(self.INTERNAL) is True

    @classmethod
    def from_json(cls, body: dict) -> "NetworkCreate":
        options = _options(body)
        generic = options.get(cls.GENERIC) or {}
        if not isinstance(generic, dict):
            raise InvalidRequest(f"option {cls.GENERIC!r} must be a JSON object")
        return cls(_identifier(body, "NetworkID"), options, generic, _ipam_data(body, "IPv4Data"), _ipam_data(body, "IPv6Data"),
                   parse_mtu(generic))


@dataclasses.dataclass(frozen=True)
class NetworkAllocate:
    """AllocateNetwork, sent by a swarm manager once per swarm-scope network of a global-scope driver,
    before any node creates it. Unlike CreateNetwork, its Options are the `-o` pairs themselves (not
    under com.docker.network.generic), and IPv4Data carries no AddressSpace (observed on Docker 26.1)."""

    network_id: str
    options: dict[str, str]
    ipv4: list[IPAMData]
    ipv6: list[IPAMData]

    @classmethod
    def from_json(cls, body: dict) -> "NetworkAllocate":
        options = _options(body)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
            raise InvalidRequest("field 'Options' must map strings to strings")
        ipv4, ipv6 = _ipam_data(body, "IPv4Data"), _ipam_data(body, "IPv6Data")
        # A swarm manager (Docker 26) sends a dual-stack network's IPv6 pool in IPv4Data, beside the IPv4
        # one, and IPv6Data null: each pool is taken for what it is.
        return cls(_identifier(body, "NetworkID"), options, [d for d in ipv4 if d.pool.version == 4],
                   [d for d in ipv4 if d.pool.version == 6] + ipv6)

    def as_create(self) -> "NetworkCreate":
        """The CreateNetwork the nodes will get, for the drivers' own option parsers."""
        return NetworkCreate(self.network_id, {NetworkCreate.GENERIC: dict(self.options)}, dict(self.options),
                             self.ipv4, self.ipv6)


@dataclasses.dataclass(frozen=True)
class EndpointInterface:
    address: netaddr.IPNetwork | None
    address_ipv6: netaddr.IPNetwork | None
    mac: netaddr.EUI | None

    def to_json(self) -> dict:
        return {
            "Address": str(self.address) if self.address else "",
            "AddressIPv6": str(self.address_ipv6) if self.address_ipv6 else "",
            "MacAddress": str(self.mac).replace("-", ":").lower() if self.mac else "",
        }

    @classmethod
    def from_json(cls, item: Any) -> "EndpointInterface":
        if item is None:
            return cls(None, None, None)
        if not isinstance(item, dict):
            raise InvalidRequest("field 'Interface' must be a JSON object")
        v4 = _field(item, "Address", str, required=False, default="")
        v6 = _field(item, "AddressIPv6", str, required=False, default="")
        mac_text = _field(item, "MacAddress", str, required=False, default="")
        try:
            mac = netaddr.EUI(mac_text) if mac_text else None
        except (netaddr.AddrFormatError, ValueError):
            raise InvalidRequest(f"Interface MacAddress {mac_text!r} is not a valid MAC address") from None
        return cls(
            parse_network(v4, "Interface Address") if v4 else None,
            parse_network(v6, "Interface AddressIPv6") if v6 else None,
            mac,
        )


@dataclasses.dataclass(frozen=True)
class EndpointCreate:
    network_id: str
    endpoint_id: str
    interface: EndpointInterface
    options: dict[str, Any]

    @classmethod
    def from_json(cls, body: dict) -> "EndpointCreate":
        return cls(
            _identifier(body, "NetworkID"),
            _identifier(body, "EndpointID"),
            EndpointInterface.from_json(body.get("Interface")),
            _options(body),
        )


@dataclasses.dataclass(frozen=True)
class EndpointRef:
    """The request of DeleteEndpoint, EndpointOperInfo, Leave and RevokeExternalConnectivity."""

    network_id: str
    endpoint_id: str

    @classmethod
    def from_json(cls, body: dict) -> "EndpointRef":
        return cls(_identifier(body, "NetworkID"), _identifier(body, "EndpointID"))


@dataclasses.dataclass(frozen=True)
class JoinRequest:
    network_id: str
    endpoint_id: str
    sandbox_key: str
    options: dict[str, Any]
    # The container's published ports. libnetwork passes the sandbox's options to every Join, and they
    # hold them whatever the network: dockerd gives them to no driver of an internal network otherwise
    # (neither in CreateEndpoint nor by ProgramExternalConnectivity).
    port_bindings: tuple[PortBinding, ...] = ()

    @classmethod
    def from_json(cls, body: dict) -> "JoinRequest":
        options = _options(body)
        return cls(
            _identifier(body, "NetworkID"),
            _identifier(body, "EndpointID"),
            _field(body, "SandboxKey", str, required=False, default=""),
            options,
            parse_port_bindings(options),
        )


@dataclasses.dataclass(frozen=True)
class ExternalConnectivity:
    network_id: str
    endpoint_id: str
    options: dict[str, Any]
    port_bindings: tuple[PortBinding, ...] = ()  # com.docker.network.portmap (`-p`, `-P`)
    exposed_ports: tuple[ExposedPort, ...] = ()  # com.docker.network.endpoint.exposedports

    @classmethod
    def from_json(cls, body: dict) -> "ExternalConnectivity":
        options = _options(body)
        return cls(_identifier(body, "NetworkID"), _identifier(body, "EndpointID"), options,
                   parse_port_bindings(options), parse_exposed_ports(options))


def parse_network_id(body: dict) -> str:
    return _identifier(body, "NetworkID")


@dataclasses.dataclass(frozen=True)
class StaticRoute:
    destination: netaddr.IPNetwork
    next_hop: netaddr.IPAddress | None  # None: a connected route (RouteType 1)

    def to_json(self) -> dict:
        if self.next_hop is None:
            return {"Destination": str(self.destination), "RouteType": 1, "NextHop": ""}
        return {"Destination": str(self.destination), "RouteType": 0, "NextHop": str(self.next_hop)}


@dataclasses.dataclass(frozen=True)
class JoinResult:
    src_name: str  # the container end of the veth pair, which libnetwork moves into the sandbox
    dst_prefix: str = "eth"
    gateway: netaddr.IPAddress | None = None
    gateway_ipv6: netaddr.IPAddress | None = None
    static_routes: tuple[StaticRoute, ...] = ()
    disable_gateway_service: bool = False

    def to_json(self) -> dict:
        return {
            "InterfaceName": {"SrcName": self.src_name, "DstPrefix": self.dst_prefix},
            "Gateway": str(self.gateway) if self.gateway else "",
            "GatewayIPv6": str(self.gateway_ipv6) if self.gateway_ipv6 else "",
            "StaticRoutes": [r.to_json() for r in self.static_routes],
            "DisableGatewayService": self.disable_gateway_service,
        }
