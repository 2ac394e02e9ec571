"""Global scope: dockerd's cluster as it announces itself, and the cluster-wide network list.

dockerd sends CreateNetwork and DeleteNetwork of a global network to one host only. The network is kept
cluster-wide too; other hosts adopt it at their first endpoint (or at once, if the datapath says
`adopt_global_networks`), and drop it when it goes."""

from __future__ import annotations

from typing import Callable

from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import Layout
from acsnet.store import Store


class ClusterScope:
    def __init__(self, store: Store, layout: Layout, host_id: str, wake: Callable[[], None]):
        self.store = store
        self.layout = layout
        self.host_id = host_id
        self._wake = wake
        self.network_ids: list[str] | None = None  # the cluster's global networks, as the watch last said
        # Whether dockerd announced its cluster (DiscoverNew) since it activated the driver; None until
        # it activates the driver in this process (see announced).
        self._announced: bool | None = None
        self._forget_node = False
        self.not_adopted: set[str] = set()  # networks this host could not take (vpc: route limit); said once

    def watch_networks(self) -> None:
        state.watch_global_networks(self.store, self.layout, self._on_networks)

    def _on_networks(self, names: list[str]) -> None:  # on the store's thread
        self.network_ids = names
        self._wake()

    def dockerd_activated(self) -> None:
        """dockerd asked the driver's capabilities: it (re)started, and whether it has a cluster its node
        discovery tells next. No store call here (GetCapabilities must never fail nor wait): the
        worker forgets what an earlier dockerd announced."""
        self._announced = False
        self._forget_node = True
        self._wake()

    def remember_node(self, address: str) -> None:
        """dockerd announced a node of its cluster. Kept in the store too, for a plugin restarted under
        a running dockerd (which neither asks its capabilities nor announces its nodes again)."""
        self._announced = True
        self._forget_node = False
        state.write_cluster_node(self.store, self.layout, self.host_id, address)

    def announced(self) -> bool:
        """Whether this host's dockerd announced a cluster since it last activated the driver."""
        if self._announced is None:  # not activated by dockerd since this process started
            return state.read_cluster_node(self.store, self.layout, self.host_id) is not None
        return self._announced

    def forget_old_node(self) -> None:  # on the worker
        if self._forget_node:
            state.clear_cluster_node(self.store, self.layout, self.host_id)
            self._forget_node = False

    def gone(self, network_ids) -> list[str]:
        """Of this host's networks, those deleted on another host (checked in the store: not just a late
        event)."""
        if self.network_ids is None:
            return []
        return [n for n in network_ids if n not in self.network_ids
                and not state.global_network_exists(self.store, self.layout, n)]

    def new(self, network_ids) -> list[str]:
        """The cluster's networks this host does not have yet (and has not failed to take)."""
        return [n for n in self.network_ids or () if n not in network_ids and n not in self.not_adopted]
