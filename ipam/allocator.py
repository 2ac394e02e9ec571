"""Address allocation in one pool, on the shared store.

An allocation is one atomic store commit that sets the address's bit in its chunk bitmap and creates
its address record, so a crash can never leave one without the other, and two hosts racing for the
same address cannot both win: the loser's commit fails its version check and it tries again. The
summary of full chunks changes only when a chunk fills or stops being full, so racing allocations
rarely touch the same node. A host that loses a race for a chunk (its node moved on under the commit)
moves to another open one, picked at random, and stays there until it fills: hosts allocating at once
spread over the pool's chunks instead of all retrying on its lowest (one host alone always takes the
lowest free address); a large pool has chunks enough for that (`chunks.geometry_for`). No lock is taken
on this path.

Policy (may this host take an address that has a record? what does releasing leave behind?) is not
decided here: callers pass a function that sees the existing record and answers.
"""

from __future__ import annotations

import json
import random
import time
from typing import Callable

import netaddr

from acsnet.errors import Exhausted, InvalidRequest, NotFound, StoreUnavailable
from acsnet.ipam import chunks
from acsnet.ipam.model import AddressRecord, Pool, Retention
from acsnet.ipam.state import AddressRecords, ChunkBitmaps, ChunkSummary
from acsnet.store import Check, Create, Store

_CONFLICT = object()  # the commit failed: try again
_LOST = object()  # the commit failed because another host's commit on the same chunk came first
MOVE_LISTED_CHUNKS = 1 << 16  # a range of more chunks is never listed to pick one (an IPv6 /64 has 2^52)


class PoolCache:
    """The last summary and chunk bitmaps this process read or wrote, with their versions.

    Allocation uses them optimistically: the commit's version checks reject a stale one, and the
    retry reads it afresh. With one host allocating, an allocation is then a single store round trip.
    """

    def __init__(self):
        self.summary: tuple[set[int], int] | None = None
        self.chunks: dict[int, tuple[int, int | None]] = {}  # chunk -> (bitmap, version; None if absent)
        self.home: int | None = None  # the chunk this host moved to after losing a race


# What a release policy answers, given the address's record and the application it is kept for (if
# any): free the address (None), or keep a record (with fewer holders, or retained).
ReleasePolicy = Callable[[AddressRecord, Retention | None], AddressRecord | None]
# What a claim policy answers for an address that already has a record: the record to store
# (the same one for an idempotent repeat), or it raises the error that explains the refusal.
ClaimPolicy = Callable[[AddressRecord], AddressRecord]


class PoolAllocator:
    def __init__(self, store: Store, pool: Pool, timeout: float, cache: PoolCache | None = None):
        self.store = store
        self.pool = pool
        self.timeout = timeout
        self.cache = cache or PoolCache()
        self.span = chunks.allocation_range(pool.network, pool.sub_pool)
        self.geometry = pool.geometry
        self._reserved = chunks.reserved_offsets(pool.network)
        self._summary_path = ChunkSummary.key(pool.pool_id)

    # -- addressing ------------------------------------------------------------------------------

    def offset_of(self, address: netaddr.IPAddress) -> int:
        network = self.pool.network
        if address.version != network.version or address not in network:
            raise InvalidRequest(f"address {address} is outside pool {self.pool.pool_id} ({network.cidr})")
        offset = int(address) - network.first
        if offset in self._reserved:
            what = "network" if offset == 0 else "broadcast"
            raise InvalidRequest(f"address {address} is the {what} address of {network.cidr}, not a host address")
        return offset

    def address_at(self, offset: int) -> netaddr.IPAddress:
        return netaddr.IPAddress(self.pool.network.first + offset, self.pool.network.version)

    def _chunk_path(self, chunk: int) -> str:
        return ChunkBitmaps.key(self.pool.pool_id, chunk)

    # -- reads -----------------------------------------------------------------------------------

    def _summary(self, fresh: bool = False) -> tuple[set[int], int]:
        if self.cache.summary is None or fresh:
            summary = ChunkSummary.read(self.store, self.pool.pool_id)
            if summary is None:
                raise NotFound(f"pool {self.pool.pool_id} does not exist (released?)")
            self.cache.summary = summary
        full, version = self.cache.summary
        return set(full), version

    def _chunk(self, chunk: int) -> tuple[int, int | None]:
        """The chunk's bitmap and version (None: the node does not exist yet, all free)."""
        if chunk not in self.cache.chunks:
            self.cache.chunks[chunk] = ChunkBitmaps.read(self.store, self.pool.pool_id, chunk)
        return self.cache.chunks[chunk]

    def _write_chunk(self, chunk: int, version: int | None, bitmap: int):
        return ChunkBitmaps.write_operation(self.pool.pool_id, self.geometry, chunk, bitmap, version)

    def _summary_update(self, chunk: int, bitmap_after: int, full: set[int], version: int) -> list:
        """The summary write needed when `chunk` changes between full and not full in range."""
        now_full = chunks.first_free_bit(bitmap_after, self.geometry.bits_in_chunk(chunk, self.span)) is None
        in_range = not self.geometry.bits_in_chunk(chunk, self.span).empty
        if not in_range or now_full == (chunk in full):
            return []
        changed = full | {chunk} if now_full else full - {chunk}
        return [ChunkSummary.write_operation(self.pool.pool_id, changed, version)]

    def _commit(self, operations: list, chunk: int, bitmap_after: int) -> bool:
        """Commit; on success remember what was written, on a conflict forget it (one of those nodes moved
        on) and keep the rest: forgetting everything cost a loser of a race two more reads on its next
        attempt, under contention, when reads are slowest."""
        if not self.store.commit(operations):
            written = {op.path for op in operations}
            if self._summary_path in written:
                self.cache.summary = None
            if self._chunk_path(chunk) in written:
                self.cache.chunks.pop(chunk, None)
            return False
        for op in operations:
            if op.path == self._chunk_path(chunk) and not isinstance(op, Check):
                version = 0 if isinstance(op, Create) else op.version + 1
                self.cache.chunks[chunk] = (bitmap_after, version)
            elif op.path == self._summary_path:
                self.cache.summary = (set(json.loads(op.value)["full"]), op.version + 1)
        return True

    def record(self, address: netaddr.IPAddress) -> AddressRecord | None:
        return AddressRecords.read(self.store, self.pool.pool_id, str(self.address_at(self.offset_of(address))))

    # -- the retry loop --------------------------------------------------------------------------

    def _until_committed(self, attempt: Callable[[], object]):
        deadline = time.monotonic() + self.timeout
        tries = 0
        while True:
            result = attempt()
            if result is not _CONFLICT and result is not _LOST:
                return result
            tries += 1
            if time.monotonic() > deadline:
                raise StoreUnavailable(
                    f"pool {self.pool.pool_id}: gave up after {tries} conflicting attempts in {self.timeout:g}s"
                )
            # Randomised backoff so that hosts racing for one chunk stop colliding.
            time.sleep(random.uniform(0, min(0.001 * tries, 0.05)))

    # -- operations ------------------------------------------------------------------------------

    def allocate_next(self, record: AddressRecord) -> netaddr.IPAddress:
        """The lowest free address of the allocation range (of this host's chunk once it lost a race: see
        above), recorded as `record`."""

        def attempt():
            full, summary_version = self._summary()
            chunk = self.cache.home if self.cache.home is not None and self.cache.home not in full else \
                self.geometry.first_open_chunk(self.span, full)
            if chunk is None:
                # A cached summary may be behind another host's releases: believe only a fresh one.
                full, summary_version = self._summary(fresh=True)
                chunk = self.geometry.first_open_chunk(self.span, full)
            if chunk is None:
                raise Exhausted(f"pool {self.pool.pool_id} ({self.pool.network.cidr}) has no free address left")
            bitmap, version = self._chunk(chunk)
            bit = chunks.first_free_bit(bitmap, self.geometry.bits_in_chunk(chunk, self.span))
            if bit is None:  # the summary was behind: record the chunk as full (if it still is) and look again
                self._commit([*self._summary_update(chunk, bitmap, full, summary_version),
                              ChunkBitmaps.check_operation(self.pool.pool_id, chunk, version)], chunk, bitmap)
                return _CONFLICT
            taken = self._take(chunk, version, bitmap, bit, full, summary_version, record)
            if taken is _LOST:
                self._move_home(chunk, full)
            return taken

        return self._until_committed(attempt)

    def _take(self, chunk: int, version: int | None, bitmap: int, bit: int, full: set[int], summary_version: int,
              record: AddressRecord):
        """One commit: the bit set, the address's record, the summary; the address, or _LOST (another host's
        commit on the chunk came first), or _CONFLICT (something else refused it)."""
        offset = self.geometry.offset_of(chunk, bit)
        after = bitmap | (1 << bit)
        operations = [
            self._write_chunk(chunk, version, after),
            AddressRecords.create_operation(self.pool.pool_id, self.address_at(offset), record),
            *self._summary_update(chunk, after, full, summary_version),
        ]
        if self._commit(operations, chunk, after):
            return self.address_at(offset)
        # One read tells a lost race (the chunk moved on) from a refusal that repeats until repaired.
        if self._chunk(chunk)[1] != version:
            return _LOST
        self._repair_unmarked(offset)
        return _CONFLICT

    def _move_home(self, lost: int, full: set[int]) -> None:
        """Another host won `lost`: take the next addresses from another open chunk of the range, picked
        at random (a few draws first: an IPv6 range has more chunks than can be listed)."""
        candidates = self.geometry.chunks_in(self.span)
        count = candidates.stop - candidates.start
        for _draw in range(8):
            chunk = candidates.start + random.randrange(count)
            if chunk != lost and chunk not in full:
                self.cache.home = chunk
                return
        # Mostly full: the few open chunks, listed (a range too large to list would not be this full).
        others = [c for c in candidates if c != lost and c not in full] if count <= MOVE_LISTED_CHUNKS else []
        self.cache.home = random.choice(others) if others else None

    def allocate_within(self, record: AddressRecord, part: netaddr.IPNetwork) -> netaddr.IPAddress:
        """The lowest free address of a part of the pool (a vpc host's subnet, less its first address,
        the host's gateway, and its last), recorded as `record`. Chunks are read as they are: the
        summary of full chunks is about the whole pool."""
        span = chunks.OffsetRange(part.first + 2 - self.pool.network.first, part.last - 1 - self.pool.network.first)

        def attempt():
            full, summary_version = self._summary()
            for chunk in self.geometry.chunks_in(span):
                bitmap, version = self._chunk(chunk)
                bit = chunks.first_free_bit(bitmap, self.geometry.bits_in_chunk(chunk, span))
                if bit is not None:
                    return self._take(chunk, version, bitmap, bit, full, summary_version, record)
            raise Exhausted(f"subnet {part.cidr} of pool {self.pool.pool_id} has no free address left")

        return self._until_committed(attempt)

    def allocate_at(self, address: netaddr.IPAddress, record: AddressRecord, claim: ClaimPolicy) -> AddressRecord:
        """Record `address` as `record`; if it already has a record, `claim` decides. Returns the
        record now stored."""
        offset = self.offset_of(address)
        pool_id, address = self.pool.pool_id, self.address_at(offset)
        chunk, bit = self.geometry.chunk_of(offset), self.geometry.bit_of(offset)

        def attempt():
            existing = AddressRecords.read_versioned(self.store, pool_id, str(address))
            if existing is not None:
                current, record_version = existing
                wanted = claim(current)
                if wanted == current:
                    return current
                ok = AddressRecords.replace(self.store, pool_id, address, wanted, record_version)
                return wanted if ok else _CONFLICT
            full, summary_version = self._summary()
            bitmap, version = self._chunk(chunk)
            after = bitmap | (1 << bit)
            operations = [
                self._write_chunk(chunk, version, after),
                AddressRecords.create_operation(pool_id, address, record),
                *self._summary_update(chunk, after, full, summary_version),
            ]
            return record if self._commit(operations, chunk, after) else _CONFLICT

        return self._until_committed(attempt)

    def record_with(self, address: netaddr.IPAddress, decide: Callable[[AddressRecord | None], AddressRecord | None],
                    also: Callable[[], list]) -> AddressRecord | None:
        """Commit `also()`'s operations in one with the address's record as `decide` answers for the
        current one (None: the address is free; its answer is then allocated, bit and record). The record
        is written even when `decide` keeps it unchanged: a release that read the store before this
        commit then fails its version check and reads again, so it sees what `also` wrote. `decide`
        answering None commits nothing. Returns the record stored, or None."""
        offset = self.offset_of(address)
        pool_id, address = self.pool.pool_id, self.address_at(offset)
        chunk, bit = self.geometry.chunk_of(offset), self.geometry.bit_of(offset)

        def attempt():
            existing = AddressRecords.read_versioned(self.store, pool_id, str(address))
            wanted = decide(existing[0] if existing is not None else None)
            if wanted is None:
                return None
            if existing is not None:
                operations = [AddressRecords.write_operation(pool_id, address, wanted, existing[1]), *also()]
                return wanted if self.store.commit(operations) else _CONFLICT
            full, summary_version = self._summary()
            bitmap, version = self._chunk(chunk)
            after = bitmap | (1 << bit)
            operations = [
                self._write_chunk(chunk, version, after),
                AddressRecords.create_operation(pool_id, address, wanted),
                *self._summary_update(chunk, after, full, summary_version),
                *also(),
            ]
            return wanted if self._commit(operations, chunk, after) else _CONFLICT

        return self._until_committed(attempt)

    def release(self, address: netaddr.IPAddress, release: ReleasePolicy) -> None:
        """Free `address`, or keep it with the record `release` answers (it is given the record and the
        address's retention, read in one batch). Releasing an address that has no record is a no-op
        (idempotent), though a bit left set without a record is cleared."""
        offset = self.offset_of(address)
        pool_id, address = self.pool.pool_id, self.address_at(offset)
        chunk, bit = self.geometry.chunk_of(offset), self.geometry.bit_of(offset)

        def attempt():
            existing, retention = AddressRecords.read_versioned_beside_retention(self.store, self.pool, str(address))
            remaining = None
            if existing is not None:
                current, record_version = existing
                remaining = release(current, retention)
                if remaining == current:
                    return None
                if remaining is not None:
                    ok = AddressRecords.replace(self.store, pool_id, address, remaining, record_version)
                    return None if ok else _CONFLICT
            full, summary_version = self._summary()
            bitmap, version = self._chunk(chunk)
            after = bitmap & ~(1 << bit)
            if after == bitmap:
                if existing is None:
                    return None
                operations = [ChunkBitmaps.check_operation(pool_id, chunk, version)] if version is not None else []
            else:
                operations = [self._write_chunk(chunk, version, after), *self._summary_update(chunk, after, full, summary_version)]
            if existing is not None:
                operations.append(AddressRecords.delete_operation(pool_id, address, existing[1]))
            return None if self._commit(operations, chunk, after) else _CONFLICT

        self._until_committed(attempt)

    def _repair_unmarked(self, offset: int) -> None:
        """An address record whose bit is clear (left by hand or by an older version) would make
        every allocation of that offset fail; mark its bit so allocation moves past it."""
        if AddressRecords.read_versioned(self.store, self.pool.pool_id, str(self.address_at(offset))) is None:
            return
        chunk, bit = self.geometry.chunk_of(offset), self.geometry.bit_of(offset)
        full, summary_version = self._summary(fresh=True)
        bitmap, version = self._chunk(chunk)
        if not bitmap >> bit & 1:
            after = bitmap | (1 << bit)
            self._commit([self._write_chunk(chunk, version, after), *self._summary_update(chunk, after, full, summary_version)], chunk, after)
