"""The segment drivers' records, read and written for code outside the drivers (ops, audit, tests).
Keys come from the driver's `Layout` (`acsnet.plugins.segments.model`), the one place that builds them.

    host networks     <driver>/hosts/<host>/networks/<network-id>      SegmentNetwork
    host endpoints    <driver>/hosts/<host>/endpoints/<endpoint-id>    SegmentEndpoint
    segment records   <driver>/segments/<number>/<ip>~<endpoint-id12>  SegmentRecord
    published ports   <driver>/hosts/<host>/published/<endpoint-id>    [{"port", "host_port", ...}]
    global networks   <driver>/global-networks/<network-id>            SegmentNetwork
    cluster node      <driver>/hosts/<host>/cluster-node               the address dockerd announced
"""

from __future__ import annotations

from typing import Callable

from acsnet.plugins.segments.model import Layout, SegmentEndpoint, SegmentNetwork, SegmentRecord
from acsnet.store import Create, Delete, Store, encode


def host_network_ids(store: Store, layout: Layout, host: str) -> list[str]:
    return store.children(layout.host_networks(host))


def host_endpoint_ids(store: Store, layout: Layout, host: str) -> list[str]:
    return store.children(layout.host_endpoints(host))


def read_host_network(store: Store, layout: Layout, host: str, network_id: str) -> SegmentNetwork | None:
    data = store.get_json(layout.host_network(host, network_id))
    return SegmentNetwork.from_json(data) if data else None


def read_host_networks(store: Store, layout: Layout, host: str) -> dict[str, SegmentNetwork]:
    found = {}
    for network_id in host_network_ids(store, layout, host):
        network = read_host_network(store, layout, host, network_id)
        if network is not None:
            found[network_id] = network
    return found


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
    found = {}
    for endpoint_id in host_endpoint_ids(store, layout, host):
        endpoint = read_host_endpoint(store, layout, host, endpoint_id)
        if endpoint is not None:
            found[endpoint_id] = endpoint
    return found


def write_host_endpoint(store: Store, layout: Layout, host: str, endpoint: SegmentEndpoint) -> None:
    store.put(layout.host_endpoint(host, endpoint.endpoint_id), encode(endpoint.to_json()))


def clear_host_endpoint(store: Store, layout: Layout, host: str, endpoint_id: str) -> bool:
    return store.delete(layout.host_endpoint(host, endpoint_id))


def segment_numbers(store: Store, layout: Layout) -> list[str]:
    return store.children(layout.segments)


def read_segment_records(store: Store, layout: Layout, number: int | str) -> dict[str, SegmentRecord]:
    """A segment's records by name (`<ip>~<endpoint-id12>`)."""
    found = {}
    for name in store.children(layout.segment(number)):
        data = store.get_json(layout.record_key(number, name))
        if data:
            found[name] = SegmentRecord.from_json(data)
    return found


def watch_segment(store: Store, layout: Layout, number: int | str, callback: Callable[[list[str]], None]) -> None:
    store.watch_children(layout.segment(number), callback)


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
