"""A swarm vpc network's route limit, on the real vpc driver and segment agents over the real embedded
store, with `RecordingDatapath` standing in for OVS and the kernel (and its count of the network's
routes read from the store as the vpc datapath reads it). The lab shows the limit on real nodes
(tests/test_swarm.py); here, what a lab cannot time: two nodes adding endpoints at the same moment."""

from __future__ import annotations

import netaddr
import pytest

from acsnet.errors import Exhausted
from acsnet.plugins.protocol import EndpointCreate
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS, SegmentNetwork
from acsnet.plugins.vpc.driver import VpcDriver
from acsnet.plugins.vpc.model import record_group
from tests.test_agent_recording_datapath import Cluster

SUBNET = netaddr.IPNetwork("100.87.0.0/24")
NETWORK_ID = "s" * 64
SEGMENT = record_group(SUBNET)


@pytest.fixture
def cluster(embedded_url):
    made = Cluster(embedded_url, driver="vpc")
    yield made
    made.close()


def node(cluster: Cluster, host: str, stale_counts: int = 0) -> VpcDriver:
    """A node's vpc driver on a swarm network of max_routes=2; its first `stale_counts` counts of the
    network's routes miss one record (another node's, committed just after the count was read)."""
    agent = cluster.start(host)
    store = cluster.stores[host]
    stale = [stale_counts]

    def swarm_routes(network: SegmentNetwork) -> int:
        routes = len(state.segment_record_names(store, LAYOUTS["vpc"], network.segment))
        if stale[0]:
            stale[0] -= 1
            return routes - 1
        return routes

    agent.datapath.swarm_routes = swarm_routes
    agent.add_network(SegmentNetwork(NETWORK_ID, SEGMENT, SUBNET, "100.87.0.1", None, 1500, swarm=True, max_routes=2))
    return VpcDriver(agent, "global")


def create(driver: VpcDriver, number: int) -> None:
    driver.create_endpoint(EndpointCreate.from_json({"NetworkID": NETWORK_ID, "EndpointID": f"{number:02d}" * 32,
                                                     "Interface": {"Address": f"100.87.0.{number}/24"}}))


def records(cluster: Cluster) -> list[str]:
    return sorted(state.segment_record_names(next(iter(cluster.stores.values())), LAYOUTS["vpc"], SEGMENT))


def test_the_endpoint_past_the_route_limit_is_refused_and_leaves_nothing(cluster):
    h1, h2 = node(cluster, "h1"), node(cluster, "h2")
    create(h1, 2)
    create(h2, 3)
    with pytest.raises(Exhausted, match=r"has reached its route limit \(max_routes=2\): 2 of its addresses"):
        create(h1, 4)
    assert [r.split("~")[0] for r in records(cluster)] == ["100.87.0.2", "100.87.0.3"]
    assert sorted(h1.agent.endpoints) == ["02" * 32]


def test_a_node_whose_count_missed_another_nodes_record_takes_its_endpoint_back(cluster):
    """h2 counts 1 route where h1's second endpoint already made 2: it passes the first check, stores its
    record, counts 3 after it, and takes the endpoint back: the limit is never exceeded."""
    h1, h2 = node(cluster, "h1"), node(cluster, "h2", stale_counts=1)
    create(h1, 2)
    create(h1, 3)
    with pytest.raises(Exhausted, match=r"max_routes=2"):
        create(h2, 4)
    assert [r.split("~")[0] for r in records(cluster)] == ["100.87.0.2", "100.87.0.3"]
    assert h2.agent.endpoints == {}
    assert state.read_host_endpoints(cluster.stores["h2"], LAYOUTS["vpc"], "h2") == {}
