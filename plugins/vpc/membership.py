"""Which part of each vpc network a host holds: claimed when the host joins a network (the route limit
checked), kept while the host has a network of the range, released when it has none any more (the
range's settings with the last one), given up after a grace period by `acsnet host-leave`. Store I/O
only: the agent and the CLI both use it."""

from __future__ import annotations

import dataclasses
import logging
import time

import netaddr

from acsnet.errors import Conflict, StoreUnavailable
from acsnet.ipam.state import HostSubnetAssignment
from acsnet.plugins.vpc import model
from acsnet.plugins.vpc.model import HostSubnet, VpcSettings
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

    def claim(self, network: netaddr.IPNetwork, size: int, max_routes: int, subnet6: netaddr.IPNetwork | None = None,
              size6: int | None = None) -> HostSubnet:
        """This host's part of the network: the one it holds, or the first free one (and, on a dual-stack
        network, the first free IPv6 slice of `subnet6`, /`size6`), unless the network has as many hosts
        (routes) as max_routes already: the limit counts hosts, whatever their families. One commit: the
        host's record, its claims on its slices, the IPAM's view of each, and the network's claim counter
        (which orders hosts that join at once, so the limit holds)."""
        network = network.cidr
        wanted = VpcSettings(size, max_routes, subnet6.cidr if subnet6 is not None else None, size6 if subnet6 is not None else None)
        VpcNetworkSettings.write(self.store, network, wanted.to_json(claims=0))
        for _attempt in range(20):
            # Each time: the last host releasing its part removes the IPAM's node of the network.
            HostSubnetAssignment.prepare(self.store, network)
            if wanted.subnet6 is not None:
                HostSubnetAssignment.prepare(self.store, wanted.subnet6)
            node = VpcNetworkSettings.read_versioned(self.store, network)
            if node is None:  # the range's last host released it since: this host is its first again
                VpcNetworkSettings.write(self.store, network, wanted.to_json(claims=0))
                continue
            stored = node.json()
            if stored is None:  # made empty, as a parent (an earlier version's watch made its node): still none
                self.store.commit([VpcNetworkSettings.replace_operation(network, wanted.to_json(claims=0), node.version)])
                continue
            if VpcSettings.from_json(stored) != wanted:
                raise Conflict(f"network {network} exists with {VpcSettings.from_json(stored).describe()}; create it "
                               "with the same options and subnets on every host")
            records = {h: HostSubnetRecord.read_versioned(self.store, network, h) for h in HostSubnetRecord.hosts(self.store, network)}
            mine = records.get(self.host_id)
            if mine is not None and not mine.json().get("left_at"):
                held = HostSubnet.from_json(mine.json())
                if (held.underlay, held.mac) != (self.underlay, self.mac):  # the host's NIC changed
                    held = dataclasses.replace(held, underlay=self.underlay, mac=self.mac)
                    if not HostSubnetRecord.replace(self.store, held, mine.version):
                        continue
                self._ensure_ipam_view(held)
                return held
            operations, active = self._sort_records(network, records, claiming=True)
            if len(active) >= max_routes:
                raise Conflict(f"network {network} has reached its route limit (max_routes={max_routes}): "
                               f"{len(active)} hosts hold subnets ({', '.join(sorted(active))}); host {self.host_id} "
                               "cannot join it")
            previous = HostSubnet.from_json(mine.json()) if mine is not None else None
            subnet = self._free_slice(network, size, {h.subnet for h in active.values()}, previous and previous.subnet)
            subnet6 = None
            if wanted.subnet6 is not None:
                subnet6 = self._free_slice(wanted.subnet6, size6, {h.subnet6 for h in active.values()}, previous and previous.subnet6)
            mine_now = HostSubnet(self.host_id, str(network), subnet, self.underlay, mac=self.mac,
                                  network6=str(wanted.subnet6) if subnet6 else None, subnet6=subnet6)
            operations += [
                VpcNetworkSettings.replace_operation(network, wanted.to_json(claims=stored.get("claims", 0) + 1), node.version),
                SubnetClaim.create_operation(network, subnet, self.host_id),
                HostSubnetRecord.create_operation(mine_now),
            ] + HostSubnetAssignment.claim_operations(network, self.host_id, subnet)
            if subnet6 is not None:
                operations += [SubnetClaim.create_operation(network, subnet6, self.host_id)] + \
                    HostSubnetAssignment.claim_operations(wanted.subnet6, self.host_id, subnet6)
            if self.store.commit(operations):
                log.info("network=%s host subnet %s claimed%s", network, subnet, f" (IPv6 {subnet6})" if subnet6 else "")
                return mine_now
        raise StoreUnavailable(f"network {network}: host subnet claim kept colliding with other hosts; retry")

    def _free_slice(self, network: netaddr.IPNetwork, size: int, taken: set, previous: str | None) -> str:
        """The slice this host held before if it is still free, else the first free one. (A /64 has 2**16
        /80 slices: the generator stops at the first free one, never lists them.)"""
        if previous and previous not in taken:
            return previous
        for candidate in network.subnet(size):
            if str(candidate) not in taken:
                return str(candidate)
        raise Conflict(f"network {network} has no /{size} left for host {self.host_id}")

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
            gone = dataclasses.replace(HostSubnet.from_json(node.json()), left_at=time.time())
            if HostSubnetRecord.replace(self.store, gone, node.version):
                log.info("network=%s host=%s gone from the store: subnet %s free after %gs", network, host, gone.subnet, self.grace)
                marked.append(host)
        return marked

    def settings(self, network: netaddr.IPNetwork) -> VpcSettings | None:
        """What a network's first host decided for all (slice sizes, route limit, IPv6 prefix)."""
        stored = VpcNetworkSettings.read(self.store, network.cidr)
        return VpcSettings.from_json(stored) if stored else None

    def claim_as_stored(self, network: netaddr.IPNetwork, settings: VpcSettings) -> HostSubnet:
        return self.claim(network, settings.host_subnet_size, settings.max_routes, settings.subnet6, settings.host_subnet_size_v6)

    def release(self, network: netaddr.IPNetwork) -> bool:
        """This host has no network of this range any more: its subnet (and IPv6 slice) is free at once.
        One commit with the records of hosts that left longer ago than the grace and, when no host holds
        a subnet of the range after it, the range's settings, so the range can be made again with other
        options. Every such commit moves the settings' version on (as a claim does), so two hosts
        releasing at once cannot both see the other still holding one and leave settings no host
        holds; nor can a host claiming meanwhile lose the settings it joined. True if the settings went."""
        network = network.cidr
        for _attempt in range(20):
            node = VpcNetworkSettings.read_versioned(self.store, network)
            if node is None:
                return True
            records = {h: HostSubnetRecord.read_versioned(self.store, network, h) for h in HostSubnetRecord.hosts(self.store, network)}
            operations, holders = self._sort_records(network, records)
            if holders and records.get(self.host_id) is None:
                return False  # nothing of this host's to give up
            if holders:
                operations.append(VpcNetworkSettings.replace_operation(network, node.json() or {}, node.version))
            else:
                operations += VpcNetworkSettings.delete_operations(self.store, network, node.version)
            if self.store.commit(operations):
                log.info("network=%s this host's subnet released%s", network,
                         "" if holders else ": the last one, the range's settings went with it")
                return not holders
        raise StoreUnavailable(f"network {network}: releasing this host's subnet kept colliding with other hosts; retry")

    def _sort_records(self, network, records: dict, *, claiming: bool = False) -> tuple[list, dict[str, HostSubnet]]:
        """The operations releasing this host's record and those of hosts gone past the grace period,
        and the other hosts' subnets, still held. `claiming`: the same commit claims a part for this
        host, so the IPAM's node of the network stays, whoever else goes."""
        now = time.time()
        operations, held = [], {}
        released: dict[netaddr.IPNetwork, list[str]] = {}  # the IPAM's split networks -> hosts released
        for host, record in records.items():
            if record is None:
                continue
            data = record.json()
            if host == self.host_id or (data.get("left_at") and now - data["left_at"] > self.grace):
                subnet = HostSubnet.from_json(data)
                operations += [HostSubnetRecord.delete_operation(network, host, record.version)] + \
                    SubnetClaim.release_operations(self.store, network, subnet.subnet)
                released.setdefault(network, []).append(host)
                if subnet.subnet6:
                    operations += SubnetClaim.release_operations(self.store, network, subnet.subnet6)
                    released.setdefault(netaddr.IPNetwork(subnet.network6), []).append(host)
            else:
                held[host] = HostSubnet.from_json(data)
        for split, hosts in released.items():  # together: the last ones released take the network's node
            operations += HostSubnetAssignment.release_operations(self.store, split, *hosts, keep_node=claiming)
        return operations, held

    def _ensure_ipam_view(self, own: HostSubnet) -> None:
        HostSubnetAssignment.write(self.store, netaddr.IPNetwork(own.network), self.host_id, own.subnet)
        if own.subnet6:
            HostSubnetAssignment.write(self.store, netaddr.IPNetwork(own.network6), self.host_id, own.subnet6)

    def leave(self) -> list[HostSubnet]:
        """This host leaves every vpc network: the other hosts withdraw its routes at once, its subnets
        are free again after the grace period. (The caller withdraws what its route provider made.)"""
        own = self.held(None)
        for record in own:
            network = netaddr.IPNetwork(record.network)
            node = HostSubnetRecord.read_versioned(self.store, network, self.host_id)
            if node is not None:
                left = dataclasses.replace(HostSubnet.from_json(node.json()), left_at=time.time())
                HostSubnetRecord.replace(self.store, left, node.version)
            HostSubnetAssignment.clear(self.store, network, self.host_id)
            if record.network6:
                HostSubnetAssignment.clear(self.store, netaddr.IPNetwork(record.network6), self.host_id)
        return own
