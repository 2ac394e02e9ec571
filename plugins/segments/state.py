"""The segment drivers' records, read and written by the segment agent and by code outside the drivers
(ops, audit, tests). Keys come from the driver's `Layout` (`acsnet.plugins.segments.model`), the one
place that builds them; nothing else joins a store path of these records.

    host networks     <driver>/hosts/<host>/networks/<network-id>      SegmentNetwork
    host endpoints    <driver>/hosts/<host>/endpoints/<endpoint-id>    SegmentEndpoint
    segment records   <driver>/segments/<number>/<ip>~<endpoint-id12>  SegmentRecord
    published ports   <driver>/hosts/<host>/published/<endpoint-id>    [{"port", "host_port", ...}]
    global networks   <driver>/global-networks/<network-id>            SegmentNetwork (global scope)
    cluster node      <driver>/hosts/<host>/cluster-node               the address dockerd announced
    names changed     <driver>/hosts/<host>/container-names            NamesChanged (the container namer's)

Writes that must happen together (an endpoint's record on its segment and on its host) are offered as
operations for the caller's one commit.
"""

from __future__ import annotations

import json
import logging
from typing import Callable

from acsnet.errors import Conflict
from acsnet.plugins.segments.model import (Layout, NamesChanged, SegmentEndpoint, SegmentNetwork, SegmentRecord,
                                          record_name_ip)
from acsnet.store import Create, Delete, LeavesChange, Store, Versioned, encode, read_each

log = logging.getLogger(__name__)


def host_network_ids(store: Store, layout: Layout, host: str) -> list[str]:
    return store.children(layout.host_networks(host))


def host_endpoint_ids(store: Store, layout: Layout, host: str) -> list[str]:
    return store.children(layout.host_endpoints(host))


def read_host_network(store: Store, layout: Layout, host: str, network_id: str) -> SegmentNetwork | None:
    data = store.get_json(layout.host_network(host, network_id))
    return SegmentNetwork.from_json(data) if data else None


def read_host_networks(store: Store, layout: Layout, host: str) -> dict[str, SegmentNetwork]:
    return read_each(store, host_network_ids(store, layout, host), lambda network_id: layout.host_network(host, network_id),
                     SegmentNetwork.from_json)


def write_host_network(store: Store, layout: Layout, host: str, network: SegmentNetwork) -> None:
    store.put(layout.host_network(host, network.network_id), encode(network.to_json()))


def hosts(store: Store, layout: Layout) -> list[str]:
    """Hosts that have (or had) networks or endpoints of this driver."""
    return store.children(layout.hosts)


def watch_hosts(store: Store, layout: Layout, callback: Callable[[list[str]], None]) -> None:
    store.watch_children(layout.hosts, callback)


def watch_host_networks(store: Store, layout: Layout, host: str, callback: Callable[[list[str]], None]) -> None:
    store.watch_children(layout.host_networks(host), callback)


def watch_host_endpoints(store: Store, layout: Layout, host: str, callback: Callable[[list[str]], None]) -> None:
    store.watch_children(layout.host_endpoints(host), callback)


def read_host_endpoint(store: Store, layout: Layout, host: str, endpoint_id: str) -> SegmentEndpoint | None:
    data = store.get_json(layout.host_endpoint(host, endpoint_id))
    return SegmentEndpoint.from_json(data) if data else None


def read_host_endpoints(store: Store, layout: Layout, host: str) -> dict[str, SegmentEndpoint]:
    return read_each(store, host_endpoint_ids(store, layout, host), lambda endpoint_id: layout.host_endpoint(host, endpoint_id),
                     SegmentEndpoint.from_json)


def write_host_endpoint(store: Store, layout: Layout, host: str, endpoint: SegmentEndpoint) -> None:
    store.put(layout.host_endpoint(host, endpoint.endpoint_id), encode(endpoint.to_json()))


def name_host_endpoint(store: Store, layout: Layout, host: str, endpoint_id: str, container_id: str,
                       container_name: str) -> bool:
    """Write the container's id and name into the endpoint's record, only as read now: an endpoint
    DeleteEndpoint removed meanwhile is not brought back. False if it is gone or changed meanwhile."""
    node = store.get(layout.host_endpoint(host, endpoint_id))
    if node is None or not node.value:
        return False
    endpoint = SegmentEndpoint.from_json(node.json())
    if (endpoint.container_id, endpoint.container_name) == (container_id, container_name):
        return True
    return store.compare_and_set(layout.host_endpoint(host, endpoint_id),
                                 encode(endpoint.named(container_id, container_name).to_json()), node.version)


def read_names_changed(store: Store, layout: Layout, host: str) -> NamesChanged | None:
    data = store.get_json(layout.host_container_names(host))
    return NamesChanged.from_json(data) if data else None


def write_names_changed(store: Store, layout: Layout, host: str, changed: NamesChanged) -> None:
    store.put(layout.host_container_names(host), encode(changed.to_json()))


def announce_names_changed(store: Store, layout: Layout, host: str, endpoint_ids: list[str]) -> int:
    """Tell the host's watchers these endpoint records were named: the count one more than the last,
    by compare-and-set (the host's driver and `acsnet front` both announce). The count written."""
    path = layout.host_container_names(host)
    for _ in range(20):
        node = store.get(path)
        try:
            count = NamesChanged.from_json(node.json()).count + 1 if node is not None and node.value else 1
        except (ValueError, KeyError, TypeError):
            count = 1  # unreadable: start over (a watcher then reads the host's records again)
        value = encode(NamesChanged(count, tuple(endpoint_ids)).to_json())
        if store.create(path, value) if node is None else store.compare_and_set(path, value, node.version):
            return count
    raise Conflict(f"{path} changed 20 times while it was announced")


def watch_names_changed(store: Store, layout: Layout, host: str, callback: Callable[[NamesChanged | None], None]) -> None:
    """One value watch per host: called with the host's `NamesChanged` now and after each change."""
    def on_value(node) -> None:
        try:
            callback(NamesChanged.from_json(node.json()) if node is not None and node.value else None)
        except (ValueError, KeyError, TypeError):
            callback(None)  # not ours to judge here: read as "every record again"

    store.watch_value(layout.host_container_names(host), on_value)


def clear_host_endpoint(store: Store, layout: Layout, host: str, endpoint_id: str) -> bool:
    return store.delete(layout.host_endpoint(host, endpoint_id))


def segment_numbers(store: Store, layout: Layout) -> list[str]:
    return store.children(layout.segments)


def read_segment_records(store: Store, layout: Layout, number: int | str) -> dict[str, SegmentRecord]:
    """A segment's records by name (`<ip>~<endpoint-id12>`)."""
    return read_each(store, store.children(layout.segment(number)), lambda name: layout.record_key(number, name),
                     SegmentRecord.from_json)


def watch_segment(store: Store, layout: Layout, number: int | str, callback: Callable[[LeavesChange], None]) -> None:
    store.watch_leaves(layout.segment(number), callback)


def prepare_segment(store: Store, layout: Layout, number: int) -> None:
    """Make the segment's node, which a record's `Create` in a commit needs."""
    store.create(layout.segment(number))


def segment_record_operation(layout: Layout, number: int, record: SegmentRecord) -> Create:
    return Create(layout.record(number, record.ip, record.endpoint_id), encode(record.to_json()))


def clear_endpoint_record(store: Store, layout: Layout, endpoint: SegmentEndpoint) -> bool:
    """The segment record of this endpoint's address."""
    return store.delete(layout.record(endpoint.segment, endpoint.ip, endpoint.endpoint_id))


def global_network_ids(store: Store, layout: Layout) -> list[str]:
    return store.children(layout.global_networks)


def write_segment_record(store: Store, layout: Layout, number: int, record: SegmentRecord) -> bool:
    return store.create(layout.record(number, record.ip, record.endpoint_id), encode(record.to_json()))


def clear_segment_record(store: Store, layout: Layout, number: int | str, name: str) -> bool:
    """Delete the record as read now (False if it is gone or changed meanwhile)."""
    node = store.get(layout.record_key(number, name))
    return node is not None and store.commit([Delete(layout.record_key(number, name), node.version)])


def clear_segment_records(store: Store, layout: Layout, number: int | str) -> None:
    """Every record of the segment; its node stays (hosts watch it)."""
    for name in store.children(layout.segment(number)):
        store.delete(layout.record_key(number, name))


def read_published(store: Store, layout: Layout, host: str, endpoint_id: str) -> list[dict]:
    return store.get_json(layout.published(host, endpoint_id)) or []


def read_cluster_node(store: Store, layout: Layout, host: str) -> str | None:
    """Global scope: the node address `host`'s dockerd announced (DiscoverNew), if it did."""
    data = store.get(layout.host_cluster_node(host))
    return data.value.decode() if data is not None else None


def write_cluster_node(store: Store, layout: Layout, host: str, address: str) -> None:
    store.put(layout.host_cluster_node(host), address.encode())


def clear_cluster_node(store: Store, layout: Layout, host: str) -> None:
    store.delete(layout.host_cluster_node(host))


def clear_host_network(store: Store, layout: Layout, host: str, network_id: str) -> bool:
    return store.delete(layout.host_network(host, network_id))


def prepare_host_endpoints(store: Store, layout: Layout, host: str) -> None:
    """Make the parent of the host's endpoint records, which a `Create` in a commit needs."""
    store.create(layout.host_endpoints(host))


def host_endpoint_operation(layout: Layout, host: str, endpoint: SegmentEndpoint) -> Create:
    return Create(layout.host_endpoint(host, endpoint.endpoint_id), encode(endpoint.to_json()))


def segment_record_names(store: Store, layout: Layout, number: int | str) -> list[str]:
    """A segment's record names (`<ip>~<endpoint-id12>`): immutable records, so the names say it all."""
    return store.children(layout.segment(number))


def read_segment_record(store: Store, layout: Layout, number: int | str, name: str) -> SegmentRecord | None:
    data = store.get_json(layout.record_key(number, name))
    return SegmentRecord.from_json(data) if data else None


def read_segment_records_named(store: Store, layout: Layout, number: int | str, names: list[str]) -> dict[str, SegmentRecord]:
    """The named records of a segment, read in one batch; a record gone meanwhile is left out."""
    nodes = store.get_many([layout.record_key(number, name) for name in names])
    return parse_segment_records({name: node.value for name, node in zip(names, nodes) if node is not None})


def parse_segment_records(values: dict[str, bytes | None]) -> dict[str, SegmentRecord]:
    """Records by name from their stored values (a relay hands them over with their names); an empty or
    missing one (the record was gone) is left out."""
    return {name: SegmentRecord.from_json(json.loads(value)) for name, value in values.items() if value}


def read_address_holders(store: Store, layout: Layout, number: int, ip: str,
                         names: list[str] | None = None) -> list[tuple[SegmentRecord, Delete]]:
    """The records of `ip` on the segment, each with the operation that deletes it as read now. `names`:
    the segment's record names as a watch of it last said, instead of listing them (a round trip, and
    the whole segment's names: 20,000 at 1,000 hosts with 100 endpoints in 10 networks)."""
    if names is None:
        names = segment_record_names(store, layout, number)
    keys = [layout.record_key(number, name) for name in names if record_name_ip(name) == ip]
    if not keys:
        return []
    return [(SegmentRecord.from_json(node.json()), Delete(key, node.version))
            for key, node in zip(keys, store.get_many(keys)) if node is not None]


def endpoint_clear_operations(layout: Layout, host: str, endpoint: SegmentEndpoint) -> list[Delete]:
    """An endpoint's two records (on its segment and on its host), for one commit."""
    return [Delete(layout.record(endpoint.segment, endpoint.ip, endpoint.endpoint_id)),
            Delete(layout.host_endpoint(host, endpoint.endpoint_id))]


def clear_endpoint_records(store: Store, layout: Layout, host: str, endpoint: SegmentEndpoint) -> None:
    """Both of an endpoint's records: in one commit, or one by one if one was gone already."""
    operations = endpoint_clear_operations(layout, host, endpoint)
    if not store.commit(operations):
        for operation in operations:
            store.delete(operation.path)


def watch_global_networks(store: Store, layout: Layout, callback: Callable[[list[str]], None]) -> None:
    store.watch_children(layout.global_networks, callback)


def read_global_network(store: Store, layout: Layout, network_id: str) -> SegmentNetwork | None:
    data = store.get_json(layout.global_network(network_id))
    return SegmentNetwork.from_json(data) if data else None


def global_network_exists(store: Store, layout: Layout, network_id: str) -> bool:
    return store.get(layout.global_network(network_id)) is not None


def write_global_network(store: Store, layout: Layout, network: SegmentNetwork) -> None:
    store.create(layout.global_networks)
    store.put(layout.global_network(network.network_id), encode(network.to_json()))


def clear_global_network(store: Store, layout: Layout, network_id: str) -> bool:
    return store.delete(layout.global_network(network_id))


def move_legacy_global_networks(store: Store, layout: Layout, *, worked: bool) -> None:
    """Global networks made before they had a key of their own sat beside the vpc driver's network
    ranges (which broke vpc in global scope); they are moved, or every host would drop them as
    deleted. A driver whose global networks never worked there (`worked` False) removes what failed
    CreateNetworks left instead (dockerd never deletes a network it failed to create)."""
    store.create(layout.global_networks)
    for name in store.children(layout.legacy_global_networks):
        node: Versioned | None = store.get(layout.legacy_global_network(name))
        if node is None or not node.value or node.json().get("network_id") != name:
            continue  # a vpc network range, not a network record
        if not worked:
            log.info("network=%s removed: left behind by a CreateNetwork that failed", name[:12])
            for host in store.children(layout.hosts):  # the one that made it
                store.delete(layout.host_network(host, name))
            store.delete(layout.legacy_global_network(name))
        elif store.commit([Create(layout.global_network(name), node.value), Delete(layout.legacy_global_network(name), node.version)]):
            log.info("network=%s global record moved to %s", name[:12], layout.global_networks)
        elif store.get(layout.global_network(name)) is not None:
            store.delete(layout.legacy_global_network(name))  # another host moved it first


def published_endpoint_ids(store: Store, layout: Layout, host: str) -> list[str]:
    return store.children(layout.published(host))


def write_published(store: Store, layout: Layout, host: str, endpoint_id: str, publications: list[dict]) -> None:
    store.create(layout.published(host))
    store.put(layout.published(host, endpoint_id), encode(publications))


def clear_published(store: Store, layout: Layout, host: str, endpoint_id: str) -> bool:
    return store.delete(layout.published(host, endpoint_id))
