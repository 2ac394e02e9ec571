"""No code outside the state modules builds a store key: each domain's keys are spelled in one module.

A grep over the source for the ways a key gets built by hand (a `join(` with a domain's path segment,
an f-string or literal under `/acsnet/`). The state modules listed per domain are the only places
allowed to spell those keys. This test's own patterns are checked to match, so it can fail.
"""

from __future__ import annotations

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ["acsnet", "plugins", "ipam", "ovsctl", "benchmarks", "tests"]

# domain: (the modules that own its keys, patterns that build one of its keys)
DOMAINS = {
    "liveness": (
        {"acsnet/store/liveness.py"},
        [re.compile(r"""join\([^)]*["']hosts["'][^)]*["']sessions["']"""),
         re.compile(r"""join\(\s*ROOT\s*,\s*["']hosts["']"""),
         re.compile(r"""["']/acsnet/hosts\b""")],
    ),
    "vpc membership": (
        {"plugins/vpc/state.py"},
        [re.compile(r"""["']/acsnet/vpc/networks"""), re.compile(r"""\b(hosts_path|claims_path|network_path)\("""),
         re.compile(r"""(?<![.\w])join\(\s*NETWORKS\b""")],
    ),
    "segments": (
        # The segment agent and the datapaths read and write through segments/state.py too.
        {"plugins/segments/model.py", "plugins/segments/state.py", "plugins/vpc/state.py"},
        [re.compile(r"""["']/acsnet/(vlan|vxlan|vpc)/(hosts|segments|global-networks)"""),
         re.compile(r"""(?<![.\w])join\([^)]*\b(layout|segment|legacy|networks|endpoints)\b"""),
         re.compile(r"""(?<![.\w])join\([^)]*["'](published|endpoints|networks|segments)["']"""),
         re.compile(r"""store\.(get|get_json|children|create|delete|put|watch_children|watch_value)\(\s*\w*\.?layout\.""")],
    ),
    # The IPAM's whole keyspace (pools, their hosts, chunks and addresses, subnets, retention, host
    # subnets): vpc asks it for the operations of a host-subnet claim; it never writes these keys itself.
    "ipam": (
        {"ipam/state.py"},
        [re.compile(r"""(?<![.\w])join\(\s*_?(POOLS|SUBNETS|RETENTION|HOST_SUBNETS)\b"""),
         re.compile(r"""\(\s*_?(POOLS|SUBNETS|RETENTION|HOST_SUBNETS)\s*\)"""),
         re.compile(r"""import\b.*\b_?(POOLS|SUBNETS|RETENTION|HOST_SUBNETS)\b"""),
         re.compile(r"""["']/acsnet/ipam\b"""), re.compile(r"""\b(pool_path|retention_path)\("""),
         re.compile(r"""(?<![.\w])join\([^)]*["'](ipam|pools|subnets|retention|host-subnets|chunks|addresses)["']""")],
    ),
    # The inverse of `subnet_key` (a key's name back to a network), written once.
    "subnet keys": (
        {"ipam/state.py"},
        [re.compile(r"""replace\(\s*["']_["']\s*,\s*["']/["']\s*\)""")],
    ),
}

# Test files that write a record the old way on purpose, to show the layout written by a previous
# version is still read.
LAYOUT_TESTS = {"tests/test_state_liveness.py", "tests/test_state_ipam.py", "tests/test_state_vpc.py",
                "tests/test_state_segments.py", "tests/test_store_keys.py"}


def hand_built_keys(domain: str) -> list[str]:
    owners, patterns = DOMAINS[domain]
    found = []
    for folder in SOURCES:
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = str(path.relative_to(REPO))
            if relative in owners or relative in LAYOUT_TESTS:
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if any(p.search(line) for p in patterns):
                    found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_no_liveness_key_is_built_outside_its_state_module():
    assert hand_built_keys("liveness") == []


def test_no_vpc_membership_key_is_built_outside_its_state_module():
    assert hand_built_keys("vpc membership") == []


def test_no_segment_key_is_built_outside_the_layout():
    """`Layout` (plugins/segments/model.py) builds them; everyone else asks it or segments/state.py."""
    assert hand_built_keys("segments") == []


def test_no_ipam_key_is_built_outside_its_state_module():
    """Not the allocator, the driver or retention either: they ask `ipam/state.py`'s records. vpc asks
    it for the operations of a host-subnet claim; it never writes `ipam/host-subnets` itself."""
    assert hand_built_keys("ipam") == []


def test_subnet_key_has_one_inverse():
    assert hand_built_keys("subnet keys") == []


def test_the_patterns_catch_a_hand_built_key():
    _, patterns = DOMAINS["liveness"]
    for line in ['store.children(join(ROOT, "hosts", host, "sessions"))',
                 'join(host_path, "hosts", h, "sessions")',
                 'store.get_json(f"/acsnet/hosts/{h}")']:
        assert any(p.search(line) for p in patterns), line
    assert not any(p.search(line) for p in patterns for line in ['HostSessions.read_all(store, host)'])
    _, patterns = DOMAINS["vpc membership"]
    assert any(p.search('self.store.get_json(join(model.hosts_path(network), host))') for p in patterns)
    _, patterns = DOMAINS["segments"]
    for line in ['store.get_json(join(layout.host_networks(host_id), n))', 'join(segment, name)',
                 'store.children(f"/acsnet/vlan/hosts/{h}/endpoints")',
                 'join(self.layout.root, "hosts", self.host_id, "published", endpoint_id)']:
        assert any(p.search(line) for p in patterns), line
    _, patterns = DOMAINS["ipam"]
    for line in ['self.store.create(join(HOST_SUBNETS, subnet_key(network)))', 'store.children(join(POOLS, pool, "addresses"))',
                 'pool_path(pool_id, "chunks", str(chunk))', 'store.get(f"/acsnet/ipam/pools/{pool_id}")',
                 'join(root, "ipam", "retention", key)', 'join(pool_key, "chunks")', 'store.children(RETENTION)',
                 'from acsnet.ipam.model import SUBNETS']:
        assert any(p.search(line) for p in patterns), line
    assert not any(p.search(line) for p in patterns for line in ['ChunkBitmaps.read(store, pool_id, 0)', 'SUBNETS.get',
                                                                 'os.path.join(_HERE, "ipam")'])
    _, patterns = DOMAINS["subnet keys"]
    assert any(p.search('netaddr.IPNetwork(key.replace("_", "/"))') for p in patterns)
