"""The segment drivers' records through their layout and state module, on the embedded store (fast)."""

from __future__ import annotations

import threading

import netaddr

from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS, SegmentEndpoint, SegmentRecord
from acsnet.store import open_store

VLAN = LAYOUTS["vlan"]


def test_segment_records_read_write_watch_clear(embedded_url):
    store = open_store(embedded_url)
    try:
        endpoint = SegmentEndpoint("e" * 64, "n" * 64, 217, "198.51.100.7", 24, "02:42:00:00:00:07", since=5.0)
        assert state.read_host_endpoints(store, VLAN, "h1") == {} and state.hosts(store, VLAN) == []
        state.write_host_endpoint(store, VLAN, "h1", endpoint)
        assert state.read_host_endpoints(store, VLAN, "h1") == {endpoint.endpoint_id: endpoint}
        assert state.read_host_endpoint(store, VLAN, "h1", endpoint.endpoint_id) == endpoint and state.hosts(store, VLAN) == ["h1"]

        seen, changed = [], threading.Event()

        def on_names(change):
            seen.append(sorted(change.names))  # (the embedded store hands over whole lists)
            changed.set()

        state.watch_segment(store, VLAN, 217, on_names)
        changed.clear()
        record = SegmentRecord("h1", "02:00:00:00:00:01", "", endpoint.ip, endpoint.mac, endpoint.endpoint_id)
        assert state.write_segment_record(store, VLAN, 217, record)
        assert changed.wait(10) and seen[-1] == [f"198.51.100.7~{'e' * 12}"]
        assert state.segment_numbers(store, VLAN) == ["217"]
        assert state.read_segment_records(store, VLAN, 217) == {f"198.51.100.7~{'e' * 12}": record}
        assert state.clear_segment_record(store, VLAN, "217", f"198.51.100.7~{'e' * 12}")
        assert state.read_segment_records(store, VLAN, 217) == {}
        assert state.clear_host_endpoint(store, VLAN, "h1", endpoint.endpoint_id)
        assert state.read_host_endpoints(store, VLAN, "h1") == {}
    finally:
        store.close()


def test_the_layout_written_by_the_previous_version_is_read(embedded_url):
    store = open_store(embedded_url)
    try:
        store.create("/acsnet/vxlan/hosts/h2/published/" + "b" * 64, b'[{"port": 80, "host_port": 8080, "protocol": "tcp"}]')
        store.create("/acsnet/vxlan/segments/42/203.0.113.5~" + "b" * 12,
                     b'{"host":"h2","host_mac":"","vtep":"192.0.2.12","ip":"203.0.113.5","mac":"02:42:00:00:00:05","endpoint_id":"' + b"b" * 64 + b'"}')
        vxlan = LAYOUTS["vxlan"]
        assert state.read_published(store, vxlan, "h2", "b" * 64)[0]["host_port"] == 8080
        (found,) = state.read_segment_records(store, vxlan, 42).values()
        assert found.vtep == "192.0.2.12" and netaddr.IPAddress(found.ip) in netaddr.IPNetwork("203.0.113.0/24")
    finally:
        store.close()


def test_cluster_node_announcement_read_and_write(embedded_url):
    store = open_store(embedded_url)
    try:
        assert state.read_cluster_node(store, VLAN, "h1") is None
        state.write_cluster_node(store, VLAN, "h1", "192.0.2.11")
        assert state.read_cluster_node(store, VLAN, "h1") == "192.0.2.11"
        assert state.read_cluster_node(store, LAYOUTS["vxlan"], "h1") is None
        state.clear_cluster_node(store, VLAN, "h1")
        assert state.read_cluster_node(store, VLAN, "h1") is None
    finally:
        store.close()
