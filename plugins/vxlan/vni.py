"""VNIs generated for networks created without `-o VxlanId`, kept in the store so that every host
agrees on them.

    vxlan/generated/<key>  the VNI generated for a key
    vxlan/vnis/<vni>       the key a generated VNI belongs to (so no two keys get the same VNI)

The key of a global-scope network is its id (one network, cluster-wide). A local-scope network is
created on each host with a different id, so its key is its subnet: the same subnet created on every
host gets the same VNI. (Overlapping subnets that must stay apart need an explicit VxlanId.)
"""

from __future__ import annotations

import hashlib

from acsnet.errors import Exhausted
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.plugins.vxlan.options import GENERATED_VNI_FIRST, VNI_MAX
from acsnet.store import Create, Delete, Store, encode, join, read_each

ROOT = LAYOUTS["vxlan"].root
GENERATED, VNIS = join(ROOT, "generated"), join(ROOT, "vnis")
SPAN = VNI_MAX - GENERATED_VNI_FIRST + 1


def generated_vni(store: Store, key: str) -> int:
    """The VNI of `key`, generated on first use: a hash of the key, probed linearly past VNIs taken."""
    store.create(GENERATED)
    store.create(VNIS)
    start = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % SPAN
    for step in range(SPAN):
        existing = store.get_json(join(GENERATED, key))
        if existing is not None:
            return int(existing["vni"])
        vni = GENERATED_VNI_FIRST + (start + step) % SPAN
        if store.commit([Create(join(VNIS, str(vni)), encode({"key": key})),
                         Create(join(GENERATED, key), encode({"vni": vni}))]):
            return vni
    raise Exhausted("no VNI is left to generate; give -o VxlanId=N")


def generated_vnis(store: Store) -> dict[str, int]:
    """Every generated VNI held, by its key (ops, tests)."""
    found = read_each(store, store.children(GENERATED), lambda key: join(GENERATED, key), dict)
    return {key: int(record["vni"]) for key, record in found.items()}


def release_generated(store: Store, key: str) -> None:
    node = store.get(join(GENERATED, key))
    if node is None:
        return
    vni = node.json()["vni"]
    vni_node = store.get(join(VNIS, str(vni)))
    operations = [Delete(join(GENERATED, key), node.version)]
    if vni_node is not None:
        operations.append(Delete(join(VNIS, str(vni)), vni_node.version))
    store.commit(operations)
