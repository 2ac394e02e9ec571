"""The two interfaces the protocol server serves. A driver takes and returns the typed values of
`acsnet.plugins.protocol` and raises `AcsnetError`s; it never sees HTTP or JSON."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from acsnet.plugins.protocol import (
    AddressGrant,
    AddressRelease,
    AddressRequest,
    EndpointCreate,
    EndpointInterface,
    EndpointRef,
    ExternalConnectivity,
    JoinRequest,
    JoinResult,
    NetworkAllocate,
    NetworkCreate,
    PoolGrant,
    PoolRequest,
)


@dataclasses.dataclass(frozen=True)
class NetworkCapabilities:
    scope: str  # "local" or "global" (global needs dockerd's --cluster-store)
    connectivity_scope: str

    def to_json(self) -> dict:
        return {"Scope": self.scope, "ConnectivityScope": self.connectivity_scope}


class NetworkDriver(abc.ABC):
    """A libnetwork remote network driver (vlan, vxlan, vpc)."""

    name: str

    @abc.abstractmethod
    def capabilities(self) -> NetworkCapabilities:
        """Must never fail: one failed GetCapabilities disables the driver until dockerd restarts."""

    @abc.abstractmethod
    def create_network(self, request: NetworkCreate) -> None: ...

    @abc.abstractmethod
    def delete_network(self, network_id: str) -> None: ...

    @abc.abstractmethod
    def create_endpoint(self, request: EndpointCreate) -> EndpointInterface | None:
        """Return only the interface fields that came empty (changing a given one fails the container)."""

    @abc.abstractmethod
    def delete_endpoint(self, ref: EndpointRef) -> None: ...

    @abc.abstractmethod
    def endpoint_info(self, ref: EndpointRef) -> dict[str, Any]: ...

    @abc.abstractmethod
    def join(self, request: JoinRequest) -> JoinResult: ...

    @abc.abstractmethod
    def leave(self, ref: EndpointRef) -> None: ...

    def program_external_connectivity(self, request: ExternalConnectivity) -> None:
        """Port publishing for drivers that do it; nothing to do otherwise."""

    def revoke_external_connectivity(self, ref: EndpointRef) -> None:
        """Undo `program_external_connectivity`; nothing to do otherwise."""

    def discover_new(self, discovery_type: int, data: Any) -> None:
        """Node discovery (global connectivity scope only); acsnet learns peers from its store instead."""

    def discover_delete(self, discovery_type: int, data: Any) -> None:
        """See `discover_new`."""

    def allocate_network(self, request: NetworkAllocate) -> dict[str, str]:
        """A swarm manager allocates a swarm-scope network before any node creates it: what is returned
        becomes the network's driver options (`-o`) on every node. A driver refuses bad options here,
        so that `docker network create` fails, not every task later."""
        return dict(request.options)

    def free_network(self, network_id: str) -> None:
        """The swarm manager removed the network (after every node deleted it): free what allocate_network took."""


class IpamDriver(abc.ABC):
    """A libnetwork remote IPAM driver."""

    @abc.abstractmethod
    def capabilities(self) -> dict[str, bool]: ...

    @abc.abstractmethod
    def default_address_spaces(self) -> tuple[str, str]:
        """(local, global) address-space names."""

    @abc.abstractmethod
    def request_pool(self, request: PoolRequest) -> PoolGrant: ...

    @abc.abstractmethod
    def release_pool(self, pool_id: str) -> None: ...

    @abc.abstractmethod
    def request_address(self, request: AddressRequest) -> AddressGrant: ...

    @abc.abstractmethod
    def release_address(self, request: AddressRelease) -> None: ...
