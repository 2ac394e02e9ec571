"""Many reads in one ZooKeeper request: the server's multiRead (ZooKeeper 3.6 and later), which kazoo
does not offer.

A host's first load reads every record of its segments, thousands at a few hundred hosts. Sent as one
kazoo `get` each, pipelined, they cost a request and a reply each on both sides, and in kazoo a
waiter, a lock and a callback each: 6,000 records took 2.7 s from a lab host, one multiRead of 500
paths at a time 0.07-0.10 s (measured 2026-12-02). Unlike a transaction (`multi`), a multiRead is not
all or nothing: each read answers alone, a missing node with an error in its own slot. A multiRead
reads values (getData) or lists of children (getChildren): the periodic check of the hosts a host
follows that are not alive was one request per host, ~360 a host at 1,000 simulated hosts, every 30 s.

The wire format, as ZooKeeper's `MultiOperationRecord` and `MultiResponse` write it: per read a
`MultiHeader(type=getData, done=false, err=-1)` and a `GetDataRequest(path, watch=false)`, then a
closing `MultiHeader(-1, true, -1)`; the answer, per read, a header and either the data and stat of a
`GetDataResponse` (type getData) or an error code (type -1), then the closing header. For children,
the same with `GetChildrenRequest(path, watch=false)` and the names of a `GetChildrenResponse`.
"""

from __future__ import annotations

from collections import namedtuple

from kazoo.exceptions import EXCEPTIONS
from kazoo.protocol.serialization import (
    GetChildren,
    GetData,
    MultiHeader,
    ZnodeStat,
    int_struct,
    multiheader_struct,
    read_buffer,
    read_string,
    stat_struct,
    write_string,
)

MULTI_READ_OP = 22  # ZooKeeper's OpCode.multiRead
ERROR_RESULT = -1  # a read's header type when it failed: an error code follows
# Paths per request: ~30 KB of request and, for records of ~250 bytes, ~150 KB of answer, well under the
# 1 MB a ZooKeeper packet may be (jute.maxbuffer).
PATHS_PER_REQUEST = 500


class MultiRead(namedtuple("MultiRead", "paths children", defaults=(False,))):
    """A kazoo request (what `KazooClient._call` sends and its connection reads the answer of): the
    data of each path, in order, or with `children` the names of each path's children. The answer is
    a list, per path, of `(data, ZnodeStat)` (or of names) or the kazoo exception of that read's error
    (`NoNodeError` for a node that is not there)."""

    type = MULTI_READ_OP

    def serialize(self) -> bytearray:
        request = bytearray()
        operation = GetChildren.type if self.children else GetData.type
        for path in self.paths:
            request.extend(MultiHeader(operation, False, -1).serialize())
            request.extend(write_string(path))
            request.append(0)  # no watch
        return request + multiheader_struct.pack(-1, True, -1)

    @classmethod
    def deserialize(cls, data: bytes, offset: int) -> list:
        answers = []
        header, offset = MultiHeader.deserialize(data, offset)
        while not header.done:
            if header.type == GetData.type:
                value, offset = read_buffer(data, offset)
                answers.append((value, ZnodeStat._make(stat_struct.unpack_from(data, offset))))
                offset += stat_struct.size
            elif header.type == GetChildren.type:
                count = int_struct.unpack_from(data, offset)[0]
                offset += int_struct.size
                names = []
                for _ in range(max(count, 0)):
                    name, offset = read_string(data, offset)
                    names.append(name)
                answers.append(names)
            elif header.type == ERROR_RESULT:
                code = int_struct.unpack_from(data, offset)[0]
                offset += int_struct.size
                answers.append(EXCEPTIONS[code]())
            else:
                raise ValueError(f"multiRead answered with an operation of type {header.type}")
            header, offset = MultiHeader.deserialize(data, offset)
        return answers
