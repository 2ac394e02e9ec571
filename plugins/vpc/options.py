"""The vpc driver's network options (`docker network create -d vpc -o ...`), validated."""

from __future__ import annotations

import dataclasses

import netaddr

from acsnet.errors import InvalidRequest
from acsnet.plugins.protocol import NetworkCreate
from acsnet.plugins.options import integer_option

DEFAULT_HOST_SUBNET_SIZE = 24
DEFAULT_MAX_ROUTES = 50  # the route table limit the original platform started with
# A host's IPv6 slice by default: /80 of a /64, else the first of these longer than the network's prefix
# with room for max_routes hosts (16-bit boundaries, so a slice reads as whole groups of the address).
HOST_SUBNET_BOUNDARIES_V6 = (80, 96, 112, 120)
MAX_HOST_SUBNET_SIZE_V6 = 126  # a slice holds its host's gateway and at least one container


@dataclasses.dataclass(frozen=True)
class VpcOptions:
    host_subnet_size: int
    max_routes: int
    host_subnet_size_v6: int | None = None  # a dual-stack network's IPv6 slice per host


def parse_vpc_options(request: NetworkCreate, subnet: netaddr.IPNetwork, subnet6: netaddr.IPNetwork | None = None) -> VpcOptions:
    """`subnet6` is the network's IPv6 pool if it is dual-stack. The route limit counts hosts: a host
    holds one slice of each family, so the IPv6 prefix must have room for max_routes slices."""
    options = request.generic
    size = integer_option(options.get("host_subnet_size", DEFAULT_HOST_SUBNET_SIZE), "host_subnet_size", 1, 30)
    if size <= subnet.prefixlen:
        raise InvalidRequest(f"host_subnet_size /{size} must be smaller than the network's /{subnet.prefixlen} "
                             f"(each host gets a part of {subnet.cidr})")
    max_routes = integer_option(options.get("max_routes", DEFAULT_MAX_ROUTES), "max_routes", 1, 100000)
    if subnet6 is None:
        if "host_subnet_size_v6" in options:
            raise InvalidRequest("host_subnet_size_v6 is for dual-stack networks (--ipv6 with an IPv6 --subnet); "
                                 f"network {subnet.cidr} has no IPv6 subnet")
        return VpcOptions(size, max_routes)
    if "host_subnet_size_v6" not in options:
        return VpcOptions(size, max_routes, default_host_subnet_size_v6(subnet6.cidr, max_routes))
    size6 = integer_option(options["host_subnet_size_v6"], "host_subnet_size_v6", 1, MAX_HOST_SUBNET_SIZE_V6)
    if size6 <= subnet6.prefixlen:
        raise InvalidRequest(f"host_subnet_size_v6 /{size6} must be smaller than the network's /{subnet6.prefixlen} "
                             f"(each host gets a part of {subnet6.cidr})")
    if 2 ** (size6 - subnet6.prefixlen) < max_routes:
        raise InvalidRequest(f"host_subnet_size_v6 /{size6} leaves room for {2 ** (size6 - subnet6.prefixlen)} hosts in "
                             f"{subnet6.cidr}, fewer than max_routes={max_routes} (the route limit counts hosts, and "
                             "each holds an IPv6 slice): give a longer host_subnet_size_v6 or a lower max_routes")
    return VpcOptions(size, max_routes, size6)


def default_host_subnet_size_v6(subnet6: netaddr.IPNetwork, max_routes: int) -> int:
    for size6 in HOST_SUBNET_BOUNDARIES_V6:
        if size6 > subnet6.prefixlen and 2 ** (size6 - subnet6.prefixlen) >= max_routes:
            return size6
    raise InvalidRequest(f"IPv6 subnet {subnet6.cidr} has no room for max_routes={max_routes} host slices at /"
                         + ", /".join(map(str, HOST_SUBNET_BOUNDARIES_V6))
                         + ": give -o host_subnet_size_v6=N (at most /126) or a shorter IPv6 prefix")


def parse_swarm_vpc_options(request: NetworkCreate) -> int:
    """A swarm vpc network's max_routes: its addresses are the swarm's, each routed to the node its task
    landed on by a route of its own, so the route limit counts addresses, and no host holds a part of it."""
    options = request.generic
    for key in ("host_subnet_size", "host_subnet_size_v6"):
        if key in options:
            raise InvalidRequest(f"{key} does not apply to a swarm vpc network: the swarm manager hands out its "
                                 "addresses before their tasks have a node, so no host holds a part of it; each address "
                                 "is routed to its node on its own (max_routes counts them)")
    return integer_option(options.get("max_routes", DEFAULT_MAX_ROUTES), "max_routes", 1, 100000)
