"""The vpc driver's network options (`docker network create -d vpc -o ...`), validated."""

from __future__ import annotations

import dataclasses

import netaddr

from acsnet.errors import InvalidRequest
from acsnet.plugins.protocol import NetworkCreate
from acsnet.plugins.options import integer_option

DEFAULT_HOST_SUBNET_SIZE = 24
DEFAULT_MAX_ROUTES = 50  # the route table limit the original platform started with


@dataclasses.dataclass(frozen=True)
class VpcOptions:
    host_subnet_size: int
    max_routes: int


def parse_vpc_options(request: NetworkCreate, subnet: netaddr.IPNetwork) -> VpcOptions:
    options = request.generic
    size = integer_option(options.get("host_subnet_size", DEFAULT_HOST_SUBNET_SIZE), "host_subnet_size", 1, 30)
    if size <= subnet.prefixlen:
        raise InvalidRequest(f"host_subnet_size /{size} must be smaller than the network's /{subnet.prefixlen} "
                             f"(each host gets a part of {subnet.cidr})")
    max_routes = integer_option(options.get("max_routes", DEFAULT_MAX_ROUTES), "max_routes", 1, 100000)
    return VpcOptions(size, max_routes)
