"""Bitmap arithmetic for address allocation, pure and storage-free.

A pool's addresses are numbered by their offset from the pool's first address and split into chunks
of the pool's `ChunkGeometry.bits`; each chunk is one bitmap (a Python int, stored as bytes). A summary
lists the chunks that are full within the pool's allocation range, so finding a free address costs one
summary read, one chunk read and a few big-int operations however full the pool is.

A chunk is also the unit hosts contend on: every allocation is a version-checked commit on its chunk's
node. The chunk size is chosen when a pool is created, so that a large pool has enough chunks for the
hosts allocating at once to spread over (a /16 of 4,096-bit chunks had 16: with 1,000 hosts, ~60 raced
on each), and is stored with the pool; a pool stored without one has the 4,096-bit chunks of before.
"""

from __future__ import annotations

import dataclasses

import netaddr

LEGACY_CHUNK_BITS = 4096  # every pool stored before the chunk size was recorded with it
MAX_CHUNK_BITS = 4096
MIN_CHUNK_BITS = 64
TARGET_CHUNKS = 1024  # a pool large enough is split in at least this many chunks


@dataclasses.dataclass(frozen=True)
class OffsetRange:
    """Inclusive range of offsets [first, last]; empty when first > last."""

    first: int
    last: int

    def __contains__(self, offset: int) -> bool:
        return self.first <= offset <= self.last

    @property
    def empty(self) -> bool:
        return self.first > self.last


def reserved_offsets(network: netaddr.IPNetwork) -> set[int]:
    """Offsets never handed out: the network address, and for IPv4 the broadcast address, except in
    /31 and /32 networks, which have neither (RFC 3021)."""
    if network.version == 4:
        return set() if network.prefixlen >= 31 else {0, network.size - 1}
    return {0} if network.prefixlen < 128 else set()


def allocation_range(network: netaddr.IPNetwork, sub_pool: netaddr.IPNetwork | None) -> OffsetRange:
    """Offsets that automatic allocation draws from: the sub-pool (--ip-range) or the whole pool,
    less the reserved offsets at its ends."""
    base = sub_pool if sub_pool is not None else network
    first, last = base.first - network.first, base.last - network.first
    reserved = reserved_offsets(network)
    while first in reserved and first <= last:
        first += 1
    while last in reserved and last >= first:
        last -= 1
    return OffsetRange(first, last)


def first_free_bit(bitmap: int, bits: OffsetRange) -> int | None:
    """Lowest clear bit of `bitmap` within `bits`, or None."""
    if bits.empty:
        return None
    masked = bitmap | ((1 << bits.first) - 1)
    lowest_clear = ~masked & (masked + 1)
    position = lowest_clear.bit_length() - 1
    return position if position <= bits.last else None


def decode(value: bytes | None) -> int:
    return int.from_bytes(value, "little") if value else 0


@dataclasses.dataclass(frozen=True)
class ChunkGeometry:
    """How a pool's offsets are split into chunks of `bits` (a power of two)."""

    bits: int

    def chunk_of(self, offset: int) -> int:
        return offset // self.bits

    def bit_of(self, offset: int) -> int:
        return offset % self.bits

    def offset_of(self, chunk: int, bit: int) -> int:
        return chunk * self.bits + bit

    def chunks_in(self, span: OffsetRange) -> range:
        """The chunks overlapping `span`, lowest first."""
        return range(0) if span.empty else range(self.chunk_of(span.first), self.chunk_of(span.last) + 1)

    def bits_in_chunk(self, chunk: int, span: OffsetRange) -> OffsetRange:
        """The bit positions of `chunk` that fall inside `span`."""
        base = chunk * self.bits
        return OffsetRange(max(span.first, base) - base, min(span.last, base + self.bits - 1) - base)

    def first_open_chunk(self, span: OffsetRange, full_chunks: set[int]) -> int | None:
        """The first chunk overlapping `span` that the summary does not mark full."""
        return next((chunk for chunk in self.chunks_in(span) if chunk not in full_chunks), None)

    def encode(self, bitmap: int) -> bytes:
        # Masked: a host of a version before, mid-upgrade, may have written a 4,096-bit bitmap here.
        return (bitmap & ((1 << self.bits) - 1)).to_bytes(self.bits // 8, "little")


LEGACY_GEOMETRY = ChunkGeometry(LEGACY_CHUNK_BITS)


def geometry_for(network: netaddr.IPNetwork) -> ChunkGeometry:
    """The chunk size of a new pool whose allocation range is `network` (its --ip-range if it has one:
    what hosts allocating at once spread over): enough chunks (TARGET_CHUNKS) for many hosts to allocate
    at once without racing on one node, but no smaller than MIN_CHUNK_BITS (more, smaller nodes cost more
    summary updates, and more reads when a pool is counted) nor larger than MAX_CHUNK_BITS. A /16 gets 1,024
    chunks of 64; a /24, 4 of 64; a /12, 1,024 of 1,024; a /10 and larger, chunks of 4,096 as every
    pool had before. On an empty /16, 256 chunks of 256 allocate as fast as 1,024 of 64 (300 hosts x 3
    at once); on a 99% full one, whose 655 free addresses are in 3 chunks of 256 or 11 of 64, hosts race
    5x less with 64 (tests/test_ipam_contention.py) and it costs ~1x an empty one instead of 5-7x."""
    bits = network.size // TARGET_CHUNKS  # a power of two: a network's size is one
    return ChunkGeometry(max(MIN_CHUNK_BITS, min(MAX_CHUNK_BITS, bits)))
