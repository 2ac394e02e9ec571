"""The vxlan driver's network options (`docker network create -d vxlan -o ...`), validated."""

from __future__ import annotations

import dataclasses

from acsnet.errors import InvalidRequest
from acsnet.plugins.protocol import NetworkCreate
from acsnet.plugins.options import integer_option

VNI_KEYS = ("VxlanId", "vxlanid", "vxlan_id", "vni")
VNI_MAX = 16777215
GENERATED_VNI_FIRST = 10_000_000  # VNIs from here up are handed out when none is given


@dataclasses.dataclass(frozen=True)
class VxlanOptions:
    vni: int | None  # None: generate one


def parse_vxlan_options(request: NetworkCreate) -> VxlanOptions:
    given = [k for k in VNI_KEYS if k in request.generic]
    if len({str(request.generic[k]) for k in given}) > 1:
        raise InvalidRequest(f"conflicting VNI options: {', '.join(f'{k}={request.generic[k]}' for k in given)}")
    vni = integer_option(request.generic[given[0]], "VxlanId", 1, VNI_MAX) if given else None
    if vni is not None and vni >= GENERATED_VNI_FIRST:
        raise InvalidRequest(f"VxlanId {vni} is in the range acsnet generates VNIs from "
                             f"({GENERATED_VNI_FIRST}-{VNI_MAX}); choose one below {GENERATED_VNI_FIRST}")
    return VxlanOptions(vni)
