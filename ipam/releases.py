"""ReleaseAddress answered before its commit.

A release is one ZooKeeper commit (4-7 ms in the lab), on the path of every `docker run --rm` and
`docker rm`. Until it commits, the address only stays held a little longer by its own host: nothing can
be handed out twice. So the IPAM answers the release of an endpoint's address it recorded itself once
the release is in this journal, and one thread commits the releases in order, retrying while the store
is away; a plugin killed in between commits them when it starts again. The same host asking for the
address by name again (a container replaced with its `--ip`), or removing the pool, waits for the queue.
Another host asking for it by name within those few ms finds it held, as it would find an address whose
release failed (a store away): an orchestrator's next container comes tens of ms after `docker rm`
returns, at the least.

Each release names the record it frees by the time it was made (`AddressRecord.since`), so committing
it twice, or after another host or `acsnet gc` freed the address and it was handed out again, frees
nothing it should not. What the record becomes (freed, or kept for its application) is decided at the
commit, from the store, as before.
"""

from __future__ import annotations

import dataclasses

from acsnet.after_answer import CommitQueue, Journal

JOURNAL_KIND = "ipam-releases"  # its file: acsnet.after_answer.journal_path(state_dir, JOURNAL_KIND, host, store)


@dataclasses.dataclass(frozen=True)
class PendingRelease:
    pool_id: str
    address: str
    since: float  # the record it frees: the one made at that time

    def to_json(self) -> dict:
        return {"pool": self.pool_id, "address": self.address, "since": self.since}

    @classmethod
    def from_json(cls, data: dict) -> "PendingRelease":
        return cls(str(data["pool"]), str(data["address"]), float(data["since"]))


def release_queue(path: str, commit) -> CommitQueue[PendingRelease]:
    """The journal at `path` and its thread, committing each release with `commit` (which raises
    StoreUnavailable while the store is away, NotFound for a pool gone since)."""
    return CommitQueue(Journal(path, PendingRelease), commit, name=JOURNAL_KIND,
                       describe=lambda r: f"pool={r.pool_id} address={r.address} release")

