"""The chunk geometry of a pool: pure arithmetic, no store (fast)."""

from __future__ import annotations

import netaddr
import pytest

from acsnet.ipam import chunks
from acsnet.ipam.model import Pool


@pytest.mark.parametrize("cidr, bits, count", [
    ("100.64.0.0/16", 64, 1024),  # 1,000 hosts at once: ~1 per chunk, not ~60 as with 16 chunks of 4,096
    ("100.64.0.0/20", 64, 64),
    ("100.64.0.0/24", 64, 4),
    ("100.64.0.0/30", 64, 1),
    ("10.0.0.0/12", 1024, 1024),
    ("10.0.0.0/8", 4096, 4096),
    ("fd00::/64", 4096, 1 << 52),
])
def test_a_new_pool_gets_enough_chunks_for_hosts_to_spread_over(cidr, bits, count):
    network = netaddr.IPNetwork(cidr)
    geometry = chunks.geometry_for(network)
    assert geometry.bits == bits
    whole = chunks.OffsetRange(0, network.size - 1)
    found = geometry.chunks_in(whole)
    assert found.stop - found.start == count


def test_offsets_chunks_and_bits_agree():
    geometry = chunks.ChunkGeometry(256)
    span = chunks.allocation_range(netaddr.IPNetwork("100.64.0.0/16"), netaddr.IPNetwork("100.64.1.128/25"))
    assert (span.first, span.last) == (384, 511)
    assert list(geometry.chunks_in(span)) == [1]
    assert geometry.bits_in_chunk(1, span) == chunks.OffsetRange(128, 255)
    assert geometry.bits_in_chunk(0, span).empty and geometry.bits_in_chunk(2, span).empty
    assert geometry.chunk_of(511) == 1 and geometry.bit_of(511) == 255 and geometry.offset_of(1, 255) == 511
    assert geometry.first_open_chunk(chunks.OffsetRange(1, 65534), {0, 1, 3}) == 2
    assert geometry.first_open_chunk(chunks.OffsetRange(1, 767), {0, 1, 2}) is None
    assert geometry.chunks_in(chunks.OffsetRange(5, 4)) == range(0)


def test_a_bitmap_is_stored_in_its_chunks_size_and_read_back():
    geometry = chunks.ChunkGeometry(256)
    bitmap = (1 << 255) | 0b1011
    assert len(geometry.encode(bitmap)) == 32 and chunks.decode(geometry.encode(bitmap)) == bitmap
    assert len(chunks.LEGACY_GEOMETRY.encode(bitmap)) == 512
    # A bitmap a host of the version before wrote 4,096 bits wide (mid-upgrade) is cut to the chunk's bits
    # rather than failing every later write of the chunk.
    assert chunks.decode(geometry.encode((1 << 4000) | 1)) == 1


def test_a_pool_stored_without_a_chunk_size_has_the_chunks_of_before():
    stored_before = {"id": "global-100.64.0.0_16-0123456789ab", "space": "acsnet-global", "network": "100.64.0.0/16",
                     "sub_pool": None, "options": {}, "shared": False}
    old = Pool.from_json(stored_before)
    assert old.chunk_bits == chunks.LEGACY_CHUNK_BITS == 4096 and old.geometry == chunks.LEGACY_GEOMETRY
    new = Pool(old.pool_id, old.space, old.network, None, {}, False, chunks.geometry_for(old.network).bits)
    assert new.to_json() == {**stored_before, "chunk_bits": 64}
    assert Pool.from_json(new.to_json()) == new
