"""IPAM semantics, driving `AcsnetIpam` directly on a real store (both backends); several drivers with
different host ids on one store play several hosts."""

from __future__ import annotations

import netaddr
import pytest

from acsnet.errors import Conflict, Exhausted, InvalidRequest, NotFound
from acsnet.ipam.driver import AcsnetIpam, parse_supernets
from acsnet.ipam.model import GLOBAL_SPACE, LOCAL_SPACE
from acsnet.ipam.state import ChunkSummary, PoolRecords, SubnetPools
from acsnet.plugins.protocol import AddressRelease, AddressRequest, PoolRequest
from acsnet.store import open_store

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


def mac(n: int) -> dict:
    return {"com.docker.network.endpoint.macaddress": f"02:42:00:00:{n // 256:02x}:{n % 256:02x}"}


def pool_request(space=LOCAL_SPACE, pool="", sub_pool="", options=None, v6=False) -> PoolRequest:
    return PoolRequest.from_json({"AddressSpace": space, "Pool": pool, "SubPool": sub_pool, "Options": options, "V6": v6})


def request(ipam, pool_id, address="", options=None) -> str:
    grant = ipam.request_address(AddressRequest.from_json({"PoolID": pool_id, "Address": address, "Options": options}))
    return grant.to_json()["Address"]


def release(ipam, pool_id, address):
    ipam.release_address(AddressRelease.from_json({"PoolID": pool_id, "Address": address}))


@pytest.fixture
def hosts(store_url):
    """Three IPAM drivers, each with its own store session and live host registration."""
    made = []

    def host(host_id: str, **kwargs) -> AcsnetIpam:
        s = open_store(store_url)
        s.register_host(host_id, "ipam", {})
        made.append(s)
        return AcsnetIpam(s, host_id, **kwargs)

    yield host
    for s in made:
        s.close()


def test_capabilities_and_spaces(hosts):
    h1 = hosts("h1")
    assert h1.capabilities() == {"RequiresMACAddress": True, "RequiresRequestReplay": False}
    assert h1.default_address_spaces() == (LOCAL_SPACE, GLOBAL_SPACE)


def test_gateway_endpoint_and_release_cycle(hosts):
    h1 = hosts("h1")
    grant = h1.request_pool(pool_request(pool="192.0.2.0/24"))
    pool_id = grant.pool_id
    assert grant.to_json()["Pool"] == "192.0.2.0/24"
    assert request(h1, pool_id, options=GATEWAY) == "192.0.2.1/24", "first usable address is the gateway"
    assert request(h1, pool_id, options=mac(1)) == "192.0.2.2/24"
    assert request(h1, pool_id, options=mac(2)) == "192.0.2.3/24"
    release(h1, pool_id, "192.0.2.2")
    release(h1, pool_id, "192.0.2.2")  # idempotent
    assert request(h1, pool_id, options=mac(3)) == "192.0.2.2/24", "a freed address is used again"
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        release(h1, pool_id, address)
    h1.release_pool(pool_id)
    h1.release_pool(pool_id)  # idempotent
    assert not PoolRecords.exists(h1.store, pool_id), "nothing of the pool is left"
    assert SubnetPools.networks(h1.store) == []
    with pytest.raises(NotFound, match=f"pool {pool_id} does not exist"):
        request(h1, pool_id, options=mac(4))


def test_local_space_pool_is_shared_and_reference_counted(hosts):
    h1, h2 = hosts("h1"), hosts("h2")
    p1 = h1.request_pool(pool_request(pool="198.51.100.0/24", options={"acsnet.pool": "x"})).pool_id
    p2 = h2.request_pool(pool_request(pool="198.51.100.0/24", options={"acsnet.pool": "x"})).pool_id
    assert p1 == p2, "the same subnet and options on two hosts is one pool"
    other = h2.request_pool(pool_request(pool="198.51.100.0/24", options={"acsnet.pool": "y"})).pool_id
    assert other != p1, "an ipam option separates two pools of one subnet"

    # Gateway and aux requests from several hosts are idempotent; endpoints never collide.
    assert request(h1, p1, "198.51.100.254", GATEWAY) == "198.51.100.254/24"
    assert request(h2, p1, "198.51.100.254", GATEWAY) == "198.51.100.254/24"
    assert request(h1, p1, "198.51.100.10") == request(h2, p1, "198.51.100.10") == "198.51.100.10/24"
    a = request(h1, p1, options=mac(1))
    b = request(h2, p1, options=mac(2))
    assert a != b

    # h1 leaves: its gateway reference goes, the pool and h2's addresses stay.
    for address in ("198.51.100.254", "198.51.100.10", a.split("/")[0]):
        release(h1, p1, address)
    h1.release_pool(p1)
    assert PoolRecords.exists(h2.store, p1)
    record = h2._allocator(p1).record(netaddr.IPAddress("198.51.100.254"))
    assert record.holders == ("h2",)
    with pytest.raises(Conflict, match="gateway"):
        request(h1, p1, "198.51.100.254", mac(9))  # an endpoint cannot take the gateway

    for address in ("198.51.100.254", "198.51.100.10", b.split("/")[0]):
        release(h2, p1, address)
    h2.release_pool(p1)
    assert not PoolRecords.exists(h2.store, p1)


def test_a_hosts_second_request_of_a_shared_gateway_is_counted_so_undoing_it_keeps_the_first(hosts):
    # A second network of the same subnet on one host, refused by its driver: dockerd releases the
    # gateway and the pool it had asked for again, and the first network must keep both.
    h1 = hosts("h1")
    first = h1.request_pool(pool_request(pool="198.51.100.0/24")).pool_id
    gateway = request(h1, first, options=GATEWAY)
    second = h1.request_pool(pool_request(pool="198.51.100.0/24")).pool_id
    assert second == first and request(h1, second, options=GATEWAY) == gateway
    release(h1, second, gateway.split("/")[0])
    h1.release_pool(second)
    assert h1._allocator(first).record(netaddr.IPAddress(gateway.split("/")[0])).kind == "gateway"
    assert request(h1, first, options=mac(1)) != gateway, "the first network's gateway was handed to a container"
    release(h1, first, gateway.split("/")[0])
    assert h1._allocator(first).record(netaddr.IPAddress(gateway.split("/")[0])) is None


def test_global_space_allows_overlapping_pools(hosts):
    h1, h2 = hosts("h1"), hosts("h2")
    a = h1.request_pool(pool_request(GLOBAL_SPACE, "192.0.2.0/24")).pool_id
    b = h1.request_pool(pool_request(GLOBAL_SPACE, "192.0.2.0/24")).pool_id
    assert a != b
    assert request(h1, a, "192.0.2.10", mac(1)) == "192.0.2.10/24"
    assert request(h1, b, "192.0.2.10", mac(2)) == "192.0.2.10/24", "same address, other network"
    # The gateway of a global pool belongs to the pool: another host may free it (network rm there).
    request(h1, a, options=GATEWAY)
    release(h2, a, "192.0.2.1")
    assert h1._allocator(a).record(netaddr.IPAddress("192.0.2.1")) is None
    h2.release_pool(a)
    assert not PoolRecords.exists(h1.store, a) and PoolRecords.exists(h1.store, b)


def test_carved_pools_never_overlap_and_are_never_handed_out_twice(hosts):
    h1 = hosts("h1", supernets=parse_supernets("203.0.113.0/24", 26))
    explicit = h1.request_pool(pool_request(GLOBAL_SPACE, "203.0.113.64/26"))
    carved = [h1.request_pool(pool_request()).to_json()["Pool"] for _ in range(3)]
    assert carved == ["203.0.113.0/26", "203.0.113.128/26", "203.0.113.192/26"]
    with pytest.raises(Exhausted, match="203.0.113.0/24 has no free /26"):
        h1.request_pool(pool_request())
    h1.release_pool(explicit.pool_id)
    assert h1.request_pool(pool_request()).to_json()["Pool"] == "203.0.113.64/26"


def test_ipv6_pools(hosts):
    h1 = hosts("h1")
    carved = h1.request_pool(pool_request(v6=True))
    assert carved.to_json()["Pool"] == "fd61:6373:6e65::/64"
    explicit = h1.request_pool(pool_request(pool="2001:db8:1::/64", v6=True)).pool_id
    assert request(h1, explicit, options=GATEWAY) == "2001:db8:1::1/64"
    assert request(h1, explicit, options=mac(1)) == "2001:db8:1::2/64"
    assert request(h1, explicit, "2001:db8:1::ffff:1", mac(2)) == "2001:db8:1::ffff:1/64"


def test_ip_range_and_pinning_rules(hosts):
    h1 = hosts("h1")
    pool_id = h1.request_pool(pool_request(pool="192.0.2.0/24", sub_pool="192.0.2.128/30")).pool_id
    assert request(h1, pool_id, options=GATEWAY) == "192.0.2.1/24", "the gateway may lie outside the range"
    assert request(h1, pool_id, "192.0.2.20") == "192.0.2.20/24", "aux addresses outside the range are accepted"
    got = {request(h1, pool_id, options=mac(i)) for i in range(4)}
    assert got == {f"192.0.2.{i}/24" for i in (128, 129, 130, 131)}
    with pytest.raises(Exhausted, match="no free address"):
        request(h1, pool_id, options=mac(9))
    assert request(h1, pool_id, "192.0.2.50", mac(10)) == "192.0.2.50/24", "--ip may lie outside the range"
    with pytest.raises(InvalidRequest, match="192.0.3.5 is outside pool"):
        request(h1, pool_id, "192.0.3.5", mac(11))
    with pytest.raises(InvalidRequest, match="broadcast address"):
        request(h1, pool_id, "192.0.2.255", mac(12))
    with pytest.raises(Conflict, match=r"192.0.2.50 is in use by another endpoint on this host \(h1\)"):
        request(h1, pool_id, "192.0.2.50", mac(13))
    assert request(h1, pool_id, "192.0.2.50", mac(10)) == "192.0.2.50/24", "the same request again is idempotent"


def test_pinned_takeover_only_from_a_dead_host(hosts, store_url):
    h1, h2 = hosts("h1"), hosts("h2")
    pool_id = h1.request_pool(pool_request(GLOBAL_SPACE, "192.0.2.0/24")).pool_id
    request(h1, pool_id, "192.0.2.110", mac(1))
    with pytest.raises(Conflict, match="192.0.2.110 is in use by an endpoint on host h1"):
        request(h2, pool_id, "192.0.2.110", mac(2))
    h1.store.close()  # h1's session ends: the host is gone
    assert request(h2, pool_id, "192.0.2.110", mac(2)) == "192.0.2.110/24"
    # h1 comes back and its dockerd releases the old endpoint: h2's address must survive it.
    back = open_store(store_url)
    try:
        h1_again = AcsnetIpam(back, "h1")
        release(h1_again, pool_id, "192.0.2.110")
        record = h2._allocator(pool_id).record(netaddr.IPAddress("192.0.2.110"))
        assert record.holders == ("h2",)
    finally:
        back.close()


def test_bad_requests_are_named(hosts):
    h1 = hosts("h1")
    with pytest.raises(InvalidRequest, match="unknown address space 'other'"):
        h1.request_pool(pool_request("other", "192.0.2.0/24"))
    for body, message in [
        ({"AddressSpace": LOCAL_SPACE, "Pool": "192.0.2.0/33"}, "not a valid CIDR"),
        ({"AddressSpace": LOCAL_SPACE, "Pool": "bogus"}, "not a valid CIDR"),
        ({"AddressSpace": LOCAL_SPACE, "Pool": "192.0.2.7/24"}, "host bits set"),
        ({"AddressSpace": LOCAL_SPACE, "Pool": "192.0.2.0/24", "SubPool": "198.51.100.0/25"}, "not inside Pool"),
        ({"AddressSpace": LOCAL_SPACE, "Pool": "192.0.2.0/24", "V6": True}, "is IPv4 but V6 is true"),
        ({"AddressSpace": LOCAL_SPACE, "SubPool": "192.0.2.0/25"}, "without a Pool"),
        ({"AddressSpace": LOCAL_SPACE, "Pool": 7}, "must be a string"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            PoolRequest.from_json(body)


def test_allocation_cost_does_not_depend_on_fullness(hosts):
    """Filling a /21 to the last address costs the same store reads per allocation at the start and
    at the end: the first allocation reads the summary and its chunk, later ones use what this
    process cached (the commit's version checks guard it), however full the pool is; only the first
    allocation in each next chunk reads that chunk."""
    h1 = hosts("h1")
    pool_id = h1.request_pool(pool_request(pool="100.64.0.0/21")).pool_id
    allocator = h1._allocator(pool_id)
    reads = []
    real_get = h1.store.get

    def counting_get(path):
        reads.append(path)
        return real_get(path)

    h1.store.get = counting_get
    per_allocation = []
    usable = allocator.span.last - allocator.span.first + 1
    for i in range(usable):
        reads.clear()
        request(h1, pool_id, options=mac(i))
        per_allocation.append(len(reads))
    geometry = allocator.geometry
    chunk_count = len(geometry.chunks_in(allocator.span))
    assert per_allocation[0] == 2, "a cold allocation reads the summary and one chunk"
    firsts_in_chunk = [i for i in range(1, usable) if geometry.bit_of(allocator.span.first + i) == 0]
    assert len(firsts_in_chunk) == chunk_count - 1
    assert [i for i, n in enumerate(per_allocation) if i and n] == firsts_in_chunk, \
        "warm allocations read nothing but the next chunk when one fills, at 0% as at 100% full"
    assert set(per_allocation[1:]) == {0, 1}
    with pytest.raises(Exhausted):
        request(h1, pool_id, options=mac(usable))
    full, _version = ChunkSummary.read(h1.store, pool_id)
    assert full == set(range(chunk_count)), f"every {geometry.bits}-bit chunk is recorded full"


def test_a_network_split_per_host_gives_each_host_addresses_of_its_subnet(hosts):
    """vpc: the host-subnet records the vpc driver writes steer the IPAM; the prefix the container
    sees is its host subnet's, and the host's own gateway address is never handed out."""
    from acsnet.ipam.state import HostSubnetAssignment

    h1, h2 = hosts("h1"), hosts("h2")
    pool_id = h1.request_pool(pool_request(pool="100.70.0.0/16")).pool_id
    h2.request_pool(pool_request(pool="100.70.0.0/16"))
    network = netaddr.IPNetwork("100.70.0.0/16")
    for ipam, subnet in ((h1, "100.70.0.0/24"), (h2, "100.70.1.0/24")):
        HostSubnetAssignment.write(ipam.store, network, ipam.host_id, subnet)
    assert request(h1, pool_id, options={"RequestAddressType": "com.docker.network.gateway"}) == "100.70.0.1/16"
    assert request(h1, pool_id, options=mac(1)) == "100.70.0.2/24"
    assert request(h2, pool_id, options=mac(2)) == "100.70.1.2/24", "h2's first address after its gateway .1"
    assert request(h2, pool_id, address="100.70.1.77", options=mac(3)) == "100.70.1.77/24"
    for wrong in ("100.70.0.9", "100.70.1.1"):
        with pytest.raises(InvalidRequest) as e:
            request(h2, pool_id, address=wrong, options=mac(4))
        assert "take addresses of 100.70.1.0/24" in e.value.message


def test_a_global_network_split_per_host_waits_for_this_hosts_subnet(hosts):
    """vpc in global scope: dockerd asks a host's IPAM for an address before that host's vpc driver has
    heard of the network. The IPAM waits for the host's subnet (claimed by its vpc plugin when the
    network appears) rather than handing out an address of the whole range, and refuses clearly when
    none comes."""
    import threading

    from acsnet.ipam.state import HostSubnetAssignment

    h1, h2 = hosts("h1", timeout=2.0), hosts("h2", timeout=2.0)
    network = netaddr.IPNetwork("100.70.0.0/16")
    pool_id = h1.request_pool(pool_request(space=GLOBAL_SPACE, pool=str(network))).pool_id
    HostSubnetAssignment.write(h1.store, network, "h1", "100.70.0.0/24")
    with pytest.raises(Conflict) as e:
        request(h2, pool_id, options=mac(1))
    assert "host h2 holds no part of network 100.70.0.0/16" in e.value.message
    assert request(h1, pool_id, options=mac(2)) == "100.70.0.2/24"

    claim = threading.Timer(0.5, lambda: HostSubnetAssignment.write(h2.store, network, "h2", "100.70.1.0/24"))
    claim.start()
    try:
        assert request(h2, pool_id, options=mac(1)) == "100.70.1.2/24"
    finally:
        claim.join()


def test_a_pool_is_chunked_for_its_allocation_range(hosts):
    """The chunks are sized for what hosts allocate from: a /8 with a /24 --ip-range gets 64-address
    chunks (4 in its range), not the /8's 4,096 (the whole range in one chunk, every host racing on it);
    a /16 gets 1,024 chunks of 64. Pinned addresses outside the range still work."""
    h1 = hosts("h1")
    ranged = h1.request_pool(pool_request(space=GLOBAL_SPACE, pool="10.0.0.0/8", sub_pool="10.9.9.0/24")).pool_id
    whole = h1.request_pool(pool_request(space=GLOBAL_SPACE, pool="100.65.0.0/16")).pool_id
    assert PoolRecords.read(h1.store, ranged).chunk_bits == 64
    assert PoolRecords.read(h1.store, whole).chunk_bits == 64
    assert request(h1, ranged, options=mac(1)) == "10.9.9.0/8"
    assert request(h1, ranged, address="10.200.0.7", options=mac(2)) == "10.200.0.7/8"
    assert request(h1, whole, options=mac(3)) == "100.65.0.1/16"
