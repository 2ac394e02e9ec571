"""A relay of leaves watches: one ZooKeeper session follows the segments and the live sessions list for
many hosts, and hands each change, with the values of the records it makes, to every host following it.

Why: at 1,000 hosts each record made was a notification to every host with endpoints on its network
(~200 here) and then a read by each of them, so ZooKeeper's work and each host's ZooKeeper client grew
with the hosts a network spans; profiled at 300 simulated hosts, kazoo's connection loops were ~60% of
the hosts' CPU. Through a relay, ZooKeeper notifies and answers one session per relay, and a host gets
one line per change, the record in it. This is Calico's Typha for its datastore, for ZooKeeper.

What it serves, and to whom: read-only, the leaves watches the segment agents keep (a segment's records,
`/acsnet/<driver>/segments/<number>`, and the live sessions list, `/acsnet/live`), nothing else, to
the hosts whose certificates its CA signed (below), as the store's own ACL would (`zk://user:pass@...`
keeps other clients from reading them). Writes, locks,
liveness and every other read stay on each host's own session (`acsnet.store.relayed`).

The wire, one JSON object a line each way:
- from the relay first: `{"relay": "acsnet"}`;
- from a host: `{"follow": PATH}`, `{"forget": PATH}`;
- to a host: `{"path": PATH, "names": {NAME: VALUE, ...}}`, the whole list (first, after a follow), then
  `{"path": PATH, "made": {NAME: VALUE}, "deleted": [NAME]}` for what changed since;
  `{"path": PATH, "error": WHY}` when a follow is refused, `{"error": WHY}` for a line it cannot read.
  A VALUE is the node's bytes as a latin-1 string; a name made and gone before the relay read it is
  never sent.

Order: changes reach the relay in ZooKeeper's order (its leaves watch, `acsnet.store.zookeeper_leaves`),
one drain at a time reads the new records (in one batch) and sends each host a path's changes in that
order, after the whole list it was sent; a path's changes are held a moment and go in one line (the
live sessions list's a second, a segment's 20 ms: `LIVE_HOLD_SECONDS`, `SEGMENT_HOLD_SECONDS`). A host
whose connection holds more than `MAX_BUFFERED` bytes
unsent (it stopped reading) is dropped: it follows its watches directly and comes back with a whole list.
A path no host follows any more stays followed: at most every segment, which is what a relay is for.

    acsnet relay --store zk://h1:2181,h2:2181/chroot --listen 10.0.0.5:7405 \\
        --tls-cert relay.pem --tls-key relay.key --tls-ca hosts-ca.pem

As every TCP listener of acsnet, it serves TLS and asks each host for a certificate signed by
`--tls-ca` (the plugins' `--relay-tls-cert/key/ca`), unless started `--insecure`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import ssl
from typing import Callable

from acsnet.errors import AcsnetError
from acsnet.store.base import ROOT, LeavesChange, Store, join
from acsnet.store.liveness import LIVE

log = logging.getLogger(__name__)

DEFAULT_PORT = 7405
MAX_LINE = 64 * 1024  # a host's lines are a follow or a forget
MAX_BUFFERED = 64 * 1024 * 1024
RETRY_SECONDS = 1.0  # a failed read of new records is tried again after this
# The live sessions list's changes are held this long and go together. It changes with every plugin's
# start and stop across the cluster: at a cold start of 1,000 hosts, 1,000 lines to each of 1,000 hosts
# (each a wake-up of its relay thread and its agent), where held a second it is one a second to each. A
# host's death reaches the flows that much later, beside the tens of seconds its session takes to expire.
LIVE_HOLD_SECONDS = 1.0
# A segment's changes are held a little: a container replaced is a record deleted and one made, two
# commits a few milliseconds apart, and held together they are one line and one agent pass on each host
# following the segment instead of two (at 100 simulated hosts, ~0.5 ms of a host's CPU each), for at
# most this much more propagation.
SEGMENT_HOLD_SECONDS = 0.02
# The paths a relay follows: segments' records (`plugins/segments/model.py`'s `Layout.segment`; the
# agents' tests through a relay fail if the two part) and the live sessions list.
RELAYED_PATH = re.compile(rf"^(?:{re.escape(ROOT)}/[a-z0-9_-]+/segments/[0-9]+|{re.escape(LIVE)})$")


def encode_value(value: bytes) -> str:
    return value.decode("latin-1")


def decode_value(text: str) -> bytes:
    return text.encode("latin-1")


def line(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


# A relay's first line to each host, once TLS let it in: until a host has read it, the relay is not
# there (with TLS 1.3 a host's handshake ends before the relay has checked the host's certificate).
HELLO = line({"relay": "acsnet"})


def parse_address(text: str, default_host: str = "127.0.0.1", *, listening: bool = False) -> tuple[str, int]:
    """HOST:PORT, :PORT or HOST (the default port); ValueError naming what is wrong. Port 0 (any free
    one) only for the relay's own `listening` address."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", str(DEFAULT_PORT))
    host = host.strip("[]") or default_host
    lowest = 0 if listening else 1
    if not port.isdigit() or not lowest <= int(port) < 65536:
        raise ValueError(f"relay address {text!r}: the port must be a number from {lowest} to 65535")
    return host, int(port)


class _Followed:
    """A path the relay follows: its names as ZooKeeper last said, what the hosts were told, and who follows."""

    def __init__(self, path: str):
        self.path = path
        self.names: set[str] = set()
        self.told: dict[str, bytes] = {}  # each name the hosts were told of, with its value
        self.pending: set[str] | None = set()  # names made or deleted since the last drain; None: compare whole
        self.hosts: dict["_Host", bool] = {}  # following hosts, and whether each was sent the whole list
        self.read_once = False
        self.hold = LIVE_HOLD_SECONDS if path == LIVE else SEGMENT_HOLD_SECONDS
        self.due: float | None = None  # while its changes are held: the loop's time they go

    def held(self, now: float) -> bool:
        """Its changes wait for `due` (a host that has not had the whole list does not)."""
        return self.due is not None and now < self.due and all(self.hosts.values())


class _Host:
    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.peer = writer.get_extra_info("peername")
        self.paths: set[str] = set()

    def send(self, data: bytes) -> bool:
        """Queue `data`; False (and the connection closed) if it has stopped reading."""
        if self.writer.is_closing():
            return False
        if self.writer.transport.get_write_buffer_size() > MAX_BUFFERED:
            log.warning("relay: host %s stopped reading (%d bytes unsent); dropped", self.peer,
                        self.writer.transport.get_write_buffer_size())
            self.writer.close()
            return False
        self.writer.write(data)
        return True


def whole_list(followed: _Followed) -> bytes:
    """The line telling a host every name of a path with its value, as the hosts were last told."""
    return line({"path": followed.path, "names": {n: encode_value(v) for n, v in followed.told.items()}})


class Relay:
    """Follows paths on `store` for the hosts connected to it (`serve`)."""

    def __init__(self, store: Store):
        self.store = store
        self._followed: dict[str, _Followed] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._arming = None  # one path's watch armed at a time: an asyncio.Lock

    async def serve(self, host: str, port: int, *, tls: ssl.SSLContext | None = None) -> asyncio.base_events.Server:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._arming = asyncio.Lock()
        self._loop.create_task(self._drain_forever())
        return await asyncio.start_server(self._serve_host, host, port, limit=MAX_LINE, ssl=tls)

    # -- a host's connection ------------------------------------------------------------------------

    async def _serve_host(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = _Host(writer)
        host.send(HELLO)
        try:
            while True:
                try:
                    raw = await reader.readline()
                except ValueError:  # longer than MAX_LINE
                    host.send(line({"error": f"a line is at most {MAX_LINE} bytes"}))
                    break
                if not raw:
                    break
                await self._take_line(host, raw)
        except (ConnectionError, OSError):
            pass
        finally:
            for path in host.paths:
                self._followed[path].hosts.pop(host, None)
            writer.close()

    async def _take_line(self, host: _Host, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            if not isinstance(message, dict) or len(message) != 1 or not set(message) <= {"follow", "forget"}:
                raise ValueError('expected {"follow": PATH} or {"forget": PATH}')
            (verb, path), = message.items()
            if not isinstance(path, str) or not RELAYED_PATH.match(path):
                host.send(line({"path": path if isinstance(path, str) else None,
                                "error": f"not a path a relay follows: {path!r} (a segment's records or /acsnet/live)"}))
                return
        except ValueError as e:  # json's errors are ValueErrors
            host.send(line({"error": f"bad line: {e}"}))
            return
        if verb == "forget":
            host.paths.discard(path)
            if path in self._followed:
                self._followed[path].hosts.pop(host, None)
            return
        try:
            followed = await self._follow(path)
        except AcsnetError as e:
            host.send(line({"path": path, "error": f"the relay cannot follow it now: {e}"}))
            return
        host.paths.add(path)
        if followed.read_once and followed.pending is not None and not followed.pending:
            host.send(whole_list(followed))
            followed.hosts[host] = True
        else:  # the next drain sends it the whole list, after what it brings in
            followed.hosts[host] = False
            self._wake.set()

    async def _follow(self, path: str) -> _Followed:
        async with self._arming:
            if path in self._followed:
                return self._followed[path]
            followed = _Followed(path)
            loop = self._loop

            def on_change(change: LeavesChange) -> None:  # on the store's thread: hand over, never block
                loop.call_soon_threadsafe(self._take_change, followed, change)

            await loop.run_in_executor(None, self.store.watch_leaves, path, on_change)
            self._followed[path] = followed
            log.info("relay: following %s", path)
            return followed

    # -- changes, from the store to the hosts --------------------------------------------------------

    def _take_change(self, followed: _Followed, change: LeavesChange) -> None:
        followed.names = change.applied_to(followed.names)
        if change.names is not None:
            followed.pending = None
        elif followed.pending is not None:
            followed.pending.update(change.made)
            followed.pending.update(change.deleted)
        if not followed.hold:
            self._wake.set()
        elif followed.due is None:  # a hold begins; the drain comes when it ends, not at each change in it
            followed.due = self._loop.time() + followed.hold
            self._loop.call_later(followed.hold, self._wake.set)

    async def _drain_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            except Exception as e:  # what is pending stays so, and is tried again
                if isinstance(e, AcsnetError):  # the store is away
                    log.warning("relay: reading new records failed (%s); trying again in %gs", e, RETRY_SECONDS)
                else:
                    log.exception("relay: a drain failed; trying again in %gs", RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()

    async def _drain(self) -> None:
        """Read the records every pending change made, in one batch, and tell each following host."""
        work = []
        now = self._loop.time()
        for followed in list(self._followed.values()):
            pending = followed.pending
            if pending is not None and not pending and all(followed.hosts.values()) or followed.held(now):
                continue
            followed.due = None
            touched = set(followed.names) | set(followed.told) if pending is None else pending
            # Only names not told are read: a name's value never changes. A segment record's name carries
            # its endpoint's id and a record is only made (a claim's Create, which fails on one there) and
            # deleted, so a name deleted and made again within one drain is the same record, told already;
            # the live list's names carry the session's pid.
            made = sorted(name for name in touched if name in followed.names and name not in followed.told)
            followed.pending = set()  # what changes during the read is the next drain's
            work.append((followed, pending, touched, made))
        if not work:
            return
        paths = [join(followed.path, name) for followed, _p, _t, made in work for name in made]
        try:
            nodes = await self._loop.run_in_executor(None, self.store.get_many, paths) if paths else []
        except Exception:
            for followed, pending, _t, _m in work:  # pending again, with what came since
                followed.pending = None if pending is None or followed.pending is None else followed.pending | pending
            raise
        values = iter(nodes)
        for followed, _pending, touched, made in work:
            read = {name: node.value for name, node in zip(made, values) if node is not None}
            deleted = sorted(name for name in touched if name in followed.told and name not in followed.names)
            for name in deleted:
                del followed.told[name]
            followed.told.update(read)
            followed.read_once = True
            change = line({"path": followed.path, "made": {n: encode_value(v) for n, v in read.items()},
                           "deleted": deleted}) if read or deleted else None
            whole = None
            for host, listed in list(followed.hosts.items()):
                if not listed:
                    whole = whole or whole_list(followed)
                    sent = host.send(whole)
                    followed.hosts[host] = True
                elif change is not None:
                    sent = host.send(change)
                else:
                    continue
                if not sent:
                    followed.hosts.pop(host, None)
        now = self._loop.time()
        if any((f.pending is None or f.pending) and not f.held(now) for f in self._followed.values()):
            self._wake.set()


def run(store_url: str, listen: str, *, timeout: float = 5.0, tls: ssl.SSLContext | None = None,
        ready: Callable[[tuple[str, int]], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    from acsnet.store import open_store

    host, port = parse_address(listen, default_host="0.0.0.0", listening=True)
    store = open_store(store_url, timeout=timeout)

    async def main() -> None:
        relay = Relay(store)
        server = await relay.serve(host, port, tls=tls)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        address = server.sockets[0].getsockname()[:2]
        log.info("relay: serving %s on %s:%d", store_url, *address)
        if ready is not None:
            ready(address)
        await stop.wait()
        server.close()

    try:
        asyncio.run(main())
    finally:
        store.close()
