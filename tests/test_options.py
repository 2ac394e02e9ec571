"""The option parsers of the protocol edge (plugins/options.py) and of each driver, on their own: what
dockerd sends becomes typed values, and each bad value an `InvalidRequest` naming it."""

from __future__ import annotations

import netaddr
import pytest

from acsnet.errors import InvalidRequest
from acsnet.plugins.options import (ExposedPort, PortBinding, integer_option, parse_exposed_ports, parse_mtu,
                                    parse_port_bindings)
from acsnet.plugins.protocol import ExternalConnectivity, JoinRequest, NetworkCreate
from acsnet.plugins.vlan.options import VlanOptions, parse_vlan_options
from acsnet.plugins.vpc.options import DEFAULT_MAX_ROUTES, VpcOptions, parse_vpc_options
from acsnet.plugins.vxlan.options import VxlanOptions, parse_vxlan_options

MTU = "com.docker.network.driver.mtu"
PORTMAP = "com.docker.network.portmap"
# What dockerd 20.10 sends for `docker run -p 8080:80 -p 127.0.0.1::53/udp`.
DOCKERD_PORTMAP = [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
                   {"Proto": 17, "IP": "", "Port": 53, "HostIP": "127.0.0.1", "HostPort": 0, "HostPortEnd": 0}]


def network_create(generic: dict) -> NetworkCreate:
    return NetworkCreate.from_json({"NetworkID": "n1", "Options": {"com.docker.network.generic": generic},
                                    "IPv4Data": [{"Pool": "10.0.5.0/24", "Gateway": "10.0.5.254/24"}]})


def test_integer_option():
    assert integer_option(" 217 ", "VlanId", 1, 4094) == 217
    for bad, said in [("x", "got 'x'"), ("0", "got 0"), ("4095", "got 4095"), ("2.5", "got '2.5'"), (None, "got None")]:
        with pytest.raises(InvalidRequest, match=f"VlanId must be an integer from 1 to 4094, {said}"):
            integer_option(bad, "VlanId", 1, 4094)


def test_the_mtu_is_parsed_once_at_the_edge():
    assert parse_mtu({}) is None and parse_mtu({MTU: "1400"}) == 1400
    assert network_create({MTU: "9000"}).mtu == 9000 and network_create({}).mtu is None
    for bad in ["67", "65536", "jumbo", "", "1400.0", True]:
        with pytest.raises(InvalidRequest, match=f"{MTU} must be an integer from 68 to 65535"):
            network_create({MTU: bad})


def test_each_driver_reads_its_own_options_and_leaves_the_mtu_to_the_edge():
    request = network_create({"VlanId": "217", "VxlanId": "130", "host_subnet_size": "26", MTU: "1400"})
    assert parse_vlan_options(request) == VlanOptions(217, None)
    assert parse_vxlan_options(request) == VxlanOptions(130)
    assert parse_vpc_options(request, netaddr.IPNetwork("10.0.0.0/16")) == VpcOptions(26, DEFAULT_MAX_ROUTES)
    for generic, said in [({"VlanId": "0"}, "VlanId must be an integer from 1 to 4094, got 0"),
                          ({"VlanId": "217", "vlan_id": "218"}, "conflicting VLAN options"),
                          ({"VlanId": "217", "gateway_mac": "zz"}, "gateway_mac 'zz' is not a valid MAC address")]:
        with pytest.raises(InvalidRequest, match=said):
            parse_vlan_options(network_create(generic))
    with pytest.raises(InvalidRequest, match="VxlanId must be an integer from 1 to 16777215, got 'x'"):
        parse_vxlan_options(network_create({"vni": "x"}))
    with pytest.raises(InvalidRequest, match="host_subnet_size /16 must be smaller than the network's /16"):
        parse_vpc_options(network_create({"host_subnet_size": "16"}), netaddr.IPNetwork("10.0.0.0/16"))


def test_port_bindings_as_dockerd_sends_them():
    bindings = parse_port_bindings({PORTMAP: DOCKERD_PORTMAP})
    assert bindings == (PortBinding(6, 80, None, 8080), PortBinding(17, 53, netaddr.IPAddress("127.0.0.1"), 0))
    assert [str(b) for b in bindings] == ["8080:80", "53"]
    assert bindings[0].to_json() == DOCKERD_PORTMAP[0]
    assert parse_port_bindings({}) == () and parse_port_bindings({PORTMAP: None}) == () and parse_port_bindings({PORTMAP: []}) == ()
    assert parse_exposed_ports({"com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}]}) == (ExposedPort(6, 80),)


@pytest.mark.parametrize("portmap, said", [
    ("8080:80", "option 'com.docker.network.portmap' must be a JSON array, not str"),
    ([8080], "each entry of option 'com.docker.network.portmap' must be a JSON object, got 8080"),
    ([{"Proto": 6, "HostPort": 8080}], "Port must be an integer from 1 to 65535, got None"),
    ([{"Proto": 6, "Port": 65536}], "Port must be an integer from 1 to 65535, got 65536"),
    ([{"Proto": 6, "Port": 80.0}], "Port must be an integer from 1 to 65535, got 80.0"),
    ([{"Proto": 6, "Port": 80, "HostPort": -1}], "HostPort must be an integer from 0 to 65535, got -1"),
    ([{"Proto": 6, "Port": 80, "HostPort": "8080"}], "HostPort must be an integer from 0 to 65535, got '8080'"),
    ([{"Proto": 47, "Port": 80}], "protocol 47 is not tcp (6), udp (17) or sctp (132)"),
    ([{"Port": 80}], "Proto must be an integer from 0 to 255, got None"),
    ([{"Proto": 6, "Port": 80, "HostIP": "localhost"}], "HostIP 'localhost' is not an IP address"),
    ([{"Proto": 6, "Port": 80, "HostIP": 7}], "HostIP must be a string, got 7"),
])
def test_bad_port_bindings_are_named(portmap, said):
    for parse in (lambda options: parse_port_bindings(options),
                  lambda options: JoinRequest.from_json({"NetworkID": "n1", "EndpointID": "e1", "Options": options}).port_bindings,
                  lambda options: ExternalConnectivity.from_json({"NetworkID": "n1", "EndpointID": "e1",
                                                                  "Options": options}).port_bindings):
        with pytest.raises(InvalidRequest) as refused:
            parse({PORTMAP: portmap})
        assert said in refused.value.message


def test_requests_carry_typed_port_bindings():
    join = JoinRequest.from_json({"NetworkID": "n1", "EndpointID": "e1", "Options": {PORTMAP: DOCKERD_PORTMAP}})
    assert [str(b) for b in join.port_bindings] == ["8080:80", "53"]
    assert JoinRequest.from_json({"NetworkID": "n1", "EndpointID": "e1", "Options": None}).port_bindings == ()
    external = ExternalConnectivity.from_json({"NetworkID": "n1", "EndpointID": "e1", "Options": {
        PORTMAP: DOCKERD_PORTMAP[:1], "com.docker.network.endpoint.exposedports": [{"Proto": 17, "Port": 53}]}})
    assert external.port_bindings == (PortBinding(6, 80, None, 8080),) and external.exposed_ports == (ExposedPort(17, 53),)


def test_a_swarm_vpc_network_takes_max_routes_only_and_refuses_host_subnet_sizes_faked_membership():
    """AllocateNetwork of a swarm vpc network (the driver's own check; the store's vpc membership faked): no
    host holds a part of a swarm network, so the host-subnet options, and a range split into host
    subnets already, are refused where `docker network create` fails."""
    import types
    from acsnet.plugins.protocol import NetworkAllocate
    from acsnet.plugins.vpc.driver import VpcDriver
    from acsnet.plugins.vpc.options import parse_swarm_vpc_options

    assert parse_swarm_vpc_options(network_create({})) == DEFAULT_MAX_ROUTES
    assert parse_swarm_vpc_options(network_create({"max_routes": "8"})) == 8
    for key in ("host_subnet_size", "host_subnet_size_v6"):
        with pytest.raises(InvalidRequest, match=f"{key} does not apply to a swarm vpc network"):
            parse_swarm_vpc_options(network_create({key: "26"}))
    with pytest.raises(InvalidRequest, match="max_routes"):
        parse_swarm_vpc_options(network_create({"max_routes": "0"}))

    split = {}  # range -> (host_subnet_size, max_routes), as the store's vpc membership answers
    membership = types.SimpleNamespace(settings=lambda pool: split.get(str(pool)))
    agent = types.SimpleNamespace(datapath=types.SimpleNamespace(membership=membership))

    def allocate(options: dict, ipv6: list | None = None) -> dict:
        return VpcDriver(agent, "global").allocate_network(NetworkAllocate.from_json(
            {"NetworkID": "s1", "Options": options, "IPv4Data": [{"Pool": "100.87.0.0/24", "Gateway": "100.87.0.1/24"}],
             "IPv6Data": ipv6 or []}))

    assert allocate({"max_routes": "8"}) == {"max_routes": "8", "acsnet.swarm": "true"}
    with pytest.raises(InvalidRequest, match="host_subnet_size does not apply"):
        allocate({"host_subnet_size": "26"})
    with pytest.raises(InvalidRequest, match="a swarm vpc network is IPv4-only for now"):
        allocate({}, [{"Pool": "fd00:87::/64"}])
    with pytest.raises(InvalidRequest, match="one IPv6 subnet per network, got 2: fd00:87::/64, fd00:88::/64"):
        allocate({}, [{"Pool": "fd00:88::/64"}, {"Pool": "fd00:87::/64"}])
    split["100.87.0.0/24"] = (26, 50)
    with pytest.raises(InvalidRequest, match="range 100.87.0.0/24 is a vpc network's already, split into host subnets"):
        allocate({})


def test_a_swarm_managers_ipv6_pool_sent_among_the_ipv4_data_is_taken_as_the_networks_ipv6_pool():
    """Docker 26's swarm manager sends AllocateNetwork with a dual-stack network's IPv6 pool in IPv4Data
    (IPv6Data null), and asks the IPAM for it with V6 false (as captured in tests/test_swarm.py): each
    pool is taken for what it is. An IPv6-only swarm network is refused in AllocateNetwork, naming it."""
    from acsnet.plugins.protocol import NetworkAllocate, PoolRequest
    from acsnet.plugins.segments.driver import network_subnets

    body = {"NetworkID": "s1", "Options": {"VxlanId": "888"}, "IPv6Data": None, "IPv4Data": [
        {"AddressSpace": "", "Gateway": "100.88.0.1/24", "Pool": "100.88.0.0/24"},
        {"AddressSpace": "", "Gateway": "fd00:88::1/64", "Pool": "fd00:88::/64"}]}
    allocation = NetworkAllocate.from_json(body)
    assert [str(d.pool) for d in allocation.ipv4] == ["100.88.0.0/24"]
    assert [(str(d.pool), str(d.gateway)) for d in allocation.ipv6] == [("fd00:88::/64", "fd00:88::1/64")]
    subnets = network_subnets("vxlan", allocation.as_create(), dual_stack=True)
    assert (str(subnets.subnet6), subnets.gateway6) == ("fd00:88::/64", "fd00:88::1")
    only6 = NetworkAllocate.from_json({**body, "IPv4Data": body["IPv4Data"][1:]})
    with pytest.raises(InvalidRequest, match="IPv6-only networks are not supported"):
        network_subnets("vxlan", only6.as_create(), dual_stack=True)
    pool = PoolRequest.from_json({"AddressSpace": "acsnet-global", "Pool": "fd00:88::/64", "V6": False,
                                  "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    assert pool.v6 and str(pool.pool) == "fd00:88::/64"
