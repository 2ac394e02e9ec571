"""Bitmap arithmetic for address allocation, pure and storage-free.

A pool's addresses are numbered by their offset from the pool's first address and split into chunks
of `CHUNK_BITS`; each chunk is one bitmap (a Python int, stored as bytes). A summary lists the chunks
that are full within the pool's allocation range, so finding a free address costs one summary read,
one chunk read and a few big-int operations however full the pool is.
"""

from __future__ import annotations

import dataclasses

import netaddr

CHUNK_BITS = 4096
CHUNK_BYTES = CHUNK_BITS // 8


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


def chunk_of(offset: int) -> int:
    return offset // CHUNK_BITS


def bits_in_chunk(chunk: int, span: OffsetRange) -> OffsetRange:
    """The bit positions of `chunk` that fall inside `span`."""
    base = chunk * CHUNK_BITS
    return OffsetRange(max(span.first, base) - base, min(span.last, base + CHUNK_BITS - 1) - base)


def first_free_bit(bitmap: int, bits: OffsetRange) -> int | None:
    """Lowest clear bit of `bitmap` within `bits`, or None."""
    if bits.empty:
        return None
    masked = bitmap | ((1 << bits.first) - 1)
    lowest_clear = ~masked & (masked + 1)
    position = lowest_clear.bit_length() - 1
    return position if position <= bits.last else None


def first_open_chunk(span: OffsetRange, full_chunks: set[int]) -> int | None:
    """The first chunk overlapping `span` that the summary does not mark full."""
    if span.empty:
        return None
    chunk, last = chunk_of(span.first), chunk_of(span.last)
    while chunk <= last and chunk in full_chunks:
        chunk += 1
    return chunk if chunk <= last else None


def decode(value: bytes | None) -> int:
    return int.from_bytes(value, "little") if value else 0


def encode(bitmap: int) -> bytes:
    return bitmap.to_bytes(CHUNK_BYTES, "little")
