"""Which part of each vpc network a host holds: claimed when the host joins a network (the route limit
checked), kept while the host exists, given up by `acsnet host-leave`. Store I/O only: the agent and
the CLI both use it."""

from __future__ import annotations

import logging
import time

import netaddr

from acsnet.errors import Conflict, StoreUnavailable
from acsnet.ipam.state import HostSubnetAssignment
from acsnet.plugins.vpc import model
from acsnet.plugins.vpc.model import HostSubnet
from acsnet.plugins.vpc.state import HostSubnetRecord, SubnetClaim, VpcNetworkSettings
from acsnet.store import Store

log = logging.getLogger(__name__)


class Membership:
    def __init__(self, store: Store, host_id: str, underlay: str, mac: str | None = None, *,
                 grace: float = model.SUBNET_GRACE_SECONDS):
        self.store = store
        self.host_id = host_id
        self.underlay = underlay
        self.mac = mac
        self.grace = grace  # how long the subnet of a host that left stays its own

    def held(self, networks) -> list[HostSubnet]:
        """This host's subnets of these networks (all vpc networks if None), as long as it has not left."""
        if networks is None:
            networks = self.networks()
        found = []
        for network in sorted({netaddr.IPNetwork(n).cidr for n in networks}):
            record = HostSubnetRecord.read(self.store, network, self.host_id)
            if record is not None and not record.left_at:
                found.append(record)
        return found

    def networks(self) -> list[netaddr.IPNetwork]:
        """The range of every vpc network any host has."""
        return VpcNetworkSettings.read_all(self.store)

    def claim(self, network: netaddr.IPNetwork, size: int, max_routes: int) -> HostSubnet:
        """This host's part of the network: the one it holds, or the first free one, unless the network
        has as many host subnets (routes) as max_routes already. One commit: the host's record, its
        claim on the subnet, the IPAM's view, and the network's claim counter (which orders hosts that
        join at once, so the limit holds)."""
        network = network.cidr
        settings = {"host_subnet_size": size, "max_routes": max_routes}
        VpcNetworkSettings.write(self.store, network, {**settings, "claims": 0})
        HostSubnetAssignment.prepare(self.store, network)
        for _attempt in range(20):
            node = VpcNetworkSettings.read_versioned(self.store, network)
            stored = node.json()
            if (stored["host_subnet_size"], stored["max_routes"]) != (size, max_routes):
                raise Conflict(f"network {network} exists with host_subnet_size={stored['host_subnet_size']} and "
                               f"max_routes={stored['max_routes']}; create it with the same options on every host")
            records = {h: HostSubnetRecord.read_versioned(self.store, network, h) for h in HostSubnetRecord.hosts(self.store, network)}
            mine = records.get(self.host_id)
            if mine is not None and not mine.json().get("left_at"):
                held = HostSubnet.from_json(mine.json())
                if (held.underlay, held.mac) != (self.underlay, self.mac):  # the host's NIC changed
                    held = HostSubnet(**{**held.to_json(), "underlay": self.underlay, "mac": self.mac})
                    if not HostSubnetRecord.replace(self.store, held, mine.version):
                        continue
                self._ensure_ipam_view(held)
                return held
            now = time.time()
            operations, active = [], {}
            for host, record in records.items():
                if record is None:
                    continue
                data = record.json()
                if host == self.host_id or (data.get("left_at") and now - data["left_at"] > self.grace):
                    operations += self._release_operations(network, HostSubnet.from_json(data), record.version)
                else:
                    active[host] = HostSubnet.from_json(data)
            if len(active) >= max_routes:
                raise Conflict(f"network {network} has reached its route limit (max_routes={max_routes}): "
                               f"{len(active)} hosts hold subnets ({', '.join(sorted(active))}); host {self.host_id} "
                               "cannot join it")
            taken = {h.subnet for h in active.values()}
            previous = HostSubnet.from_json(mine.json()).subnet if mine is not None else None
            candidates = ([previous] if previous and previous not in taken else []) + \
                [str(s) for s in network.subnet(size) if str(s) not in taken]
            if not candidates:
                raise Conflict(f"network {network} has no /{size} left for host {self.host_id}")
            mine_now = HostSubnet(self.host_id, str(network), candidates[0], self.underlay, mac=self.mac)
            operations += [
                VpcNetworkSettings.replace_operation(network, {**settings, "claims": stored.get("claims", 0) + 1}, node.version),
                SubnetClaim.create_operation(network, candidates[0], self.host_id),
                HostSubnetRecord.create_operation(mine_now),
            ] + HostSubnetAssignment.claim_operations(network, self.host_id, candidates[0])
            if self.store.commit(operations):
                log.info("network=%s host subnet %s claimed", network, candidates[0])
                return mine_now
        raise StoreUnavailable(f"network {network}: host subnet claim kept colliding with other hosts; retry")

    def mark_gone(self, network: netaddr.IPNetwork, live: set[str]) -> list[str]:
        """Hosts of the network none of whose plugins holds a store session any more are marked left,
        now, as `host-leave` does: their subnets are free after the grace period. (The other hosts stop
        routing to them at once anyway: they follow liveness.) A host that comes back claims its subnet
        again: the same one, unless another host took it after the grace."""
        marked = []
        for host in HostSubnetRecord.hosts(self.store, network):
            if host == self.host_id or host in live:
                continue
            node = HostSubnetRecord.read_versioned(self.store, network, host)
            if node is None or node.json().get("left_at"):
                continue
            gone = HostSubnet(**{**node.json(), "left_at": time.time()})
            if HostSubnetRecord.replace(self.store, gone, node.version):
                log.info("network=%s host=%s gone from the store: subnet %s free after %gs", network, host, gone.subnet, self.grace)
                marked.append(host)
        return marked

    def settings(self, network: netaddr.IPNetwork) -> tuple[int, int] | None:
        """host_subnet_size and max_routes of a network, as its first host created it."""
        stored = VpcNetworkSettings.read(self.store, network.cidr)
        return (stored["host_subnet_size"], stored["max_routes"]) if stored else None

    def _release_operations(self, network, record: HostSubnet, version: int) -> list:
        return [HostSubnetRecord.delete_operation(network, record.host, version)] + \
            SubnetClaim.release_operations(self.store, network, record.subnet) + HostSubnetAssignment.release_operations(self.store, network, record.host)

    def _ensure_ipam_view(self, own: HostSubnet) -> None:
        HostSubnetAssignment.write(self.store, netaddr.IPNetwork(own.network), self.host_id, own.subnet)

    def leave(self) -> list[HostSubnet]:
        """This host leaves every vpc network: the other hosts withdraw its routes at once, its subnets
        are free again after the grace period. (The caller withdraws what its route provider made.)"""
        own = self.held(None)
        for record in own:
            network = netaddr.IPNetwork(record.network)
            node = HostSubnetRecord.read_versioned(self.store, network, self.host_id)
            if node is not None:
                left = HostSubnet(**{**node.json(), "left_at": time.time()})
                HostSubnetRecord.replace(self.store, left, node.version)
            HostSubnetAssignment.clear(self.store, network, self.host_id)
        return own
