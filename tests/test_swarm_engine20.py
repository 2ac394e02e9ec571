"""Swarm-mode services on Docker 20.10: the same tests as tests/test_swarm.py's on 26 (imported, so
they run again here with this module's lab), on a swarm of three 20.10 hosts running the managed
plugins (`acsnet lab up --plugins managed --swarm`): a vxlan service across the nodes, scaled up and
down, removed with its network leaving nothing; vlan and vpc services the same; options refused in
AllocateNetwork; and what swarm sends the manager's and the workers' plugins. A few minutes: most of it is the lab's install."""

from __future__ import annotations

import uuid

import pytest

from acsnet.lab.topology import Lab
from tests.test_swarm import (  # collected again here, with this module's `swarm`
    test_a_service_on_a_vlan_network_spans_the_swarm_reaches_the_vlans_router_and_leaves_nothing,
    test_a_service_on_a_vpc_network_spans_the_swarm_each_address_routed_to_its_node_and_leaves_nothing,
    test_a_service_on_a_vxlan_network_spans_the_swarm_and_leaves_nothing,
    test_bad_options_are_refused_by_the_manager_allocation,
    test_what_swarm_sends_the_manager_and_the_workers_plugins,
)

__all__ = ["test_a_service_on_a_vxlan_network_spans_the_swarm_and_leaves_nothing",
           "test_a_service_on_a_vlan_network_spans_the_swarm_reaches_the_vlans_router_and_leaves_nothing",
           "test_a_service_on_a_vpc_network_spans_the_swarm_each_address_routed_to_its_node_and_leaves_nothing",
           "test_bad_options_are_refused_by_the_manager_allocation",
           "test_what_swarm_sends_the_manager_and_the_workers_plugins"]


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp("swarm20") / "lab"), f"acsnet-v{uuid.uuid4().hex[:4]}")
    lab.up(hosts=3, engine="20.10", plugins="managed", swarm=True)
    assert lab.engine == "20.10"
    yield lab
    lab.down()
    assert lab.leftovers() == []
