"""A host's store whose leaves watches come through a relay (`acsnet.store.relay`), with the values of
the records each change makes, and everything else through the host's own session.

Why only the leaves watches: they are what grows with the cluster (every record made on a network
notifies, and was read by, every host with endpoints on it), and what a relay can serve without being
trusted with anything: a late relay delays a flow, where a relayed read in a claim could miss another
host's record. Writes, locks, liveness, the claims' reads and every other watch stay on `direct`.

A watch is always fed by one source, the relay or a watch of `direct`, and its caller sees what a
leaves watch promises either way (`Store.watch_leaves`): a whole list first, then what changed, in
order. Moving between the two starts with the new source's whole list, which the caller compares whole,
and a report of the old source after that is dropped (the direct watch ends at its next report). The
relay is not reached, or stops answering, or refuses a path: that path's watch goes direct at once,
and back to the relay when it answers again (the client reconnects every `RETRY_SECONDS`).
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import ssl
import threading
from typing import Callable, Sequence

from acsnet.store.base import LeavesChange, Operation, Store, Versioned
from acsnet.store.relay import decode_value, line, parse_address

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
RECEIVE_BYTES = 1 << 20
RELAYED = "relayed"  # a watch's source, when it is the relay (a direct watch's source is its own token)


def parse_relays(text: str | None) -> list[tuple[str, int]]:
    """`HOST:PORT[,HOST:PORT...]`, the relays to try in turn; ValueError naming a bad one."""
    return [parse_address(part.strip()) for part in (text or "").split(",") if part.strip()]


def client_tls(cert: str | None, key: str | None, ca: str | None) -> ssl.SSLContext | None:
    """TLS to the relays: this host's certificate (the relay asks for one) and the CA the relays'
    certificates are checked against; None without any; ValueError if only some are given or one is
    unreadable."""
    if not (cert or key or ca):
        return None
    if not (cert and key and ca):
        raise ValueError("relay TLS needs all of --relay-tls-cert, --relay-tls-key and --relay-tls-ca")
    try:
        tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        tls.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"relay TLS: {e}") from None
    return tls


class _Follow:
    """One leaves watch: its caller's callback and where its reports come from now."""

    def __init__(self, path: str, callback: Callable[[LeavesChange], None]):
        self.path = path
        self.callback = callback
        self.lock = threading.Lock()  # one report at a time, of the current source
        self.source: object = None  # RELAYED, a direct watch's token, or None (neither: being retried)
        self.ended = False
        self.answered = threading.Event()  # the relay reported its whole list, or refused the path


class RelayedStore(Store):
    def __init__(self, direct: Store, relays: Sequence[tuple[str, int]], *, timeout: float = 5.0,
                 tls: ssl.SSLContext | None = None):
        if not relays:
            raise ValueError("a relayed store needs at least one relay address")
        self.direct = direct
        self.relays = list(relays)
        self.timeout = timeout
        self._follows: dict[str, _Follow] = {}
        self.tls = tls
        self._lock = threading.Lock()  # `_follows`, `_socket` and `_outbox`
        self._socket: socket.socket | None = None
        self._outbox: list[bytes] = []  # lines for the relay, written by the connection's thread
        self._poke_read, self._poke_write = os.pipe()
        os.set_blocking(self._poke_write, False)
        self._relay_up = threading.Event()
        self._closed = threading.Event()
        self._said_away = False
        self._peer: str | None = None
        self._thread = threading.Thread(target=self._keep_connected, name="store-relay", daemon=True)
        self._thread.start()

    @property
    def relay_connected(self) -> bool:
        return self._relay_up.is_set()

    @property
    def relay_peer(self) -> str | None:
        """The relay feeding the watches now, as HOST:PORT; None while they go to the store directly."""
        return self._peer if self._relay_up.is_set() else None

    def relay_answered(self, timeout: float) -> bool:
        """Wait until a relay is connected (a host started with its relay); False if none within `timeout`."""
        return self._relay_up.wait(timeout)

    # -- the relayed leaves watches ------------------------------------------------------------------

    def watch_leaves(self, path: str, callback: Callable[[LeavesChange], None]) -> None:
        """The relay's whole list is reported before this returns, or, if it does not come within the
        store's timeout, `direct`'s (raising as `direct` does if it cannot watch either)."""
        follow = _Follow(path, callback)
        with self._lock:
            self._follows[path] = follow
        if self._send({"follow": path}) and follow.answered.wait(self.timeout) and follow.source is RELAYED:
            return
        try:
            self._go_direct(follow, replacing_relay=False)
        except Exception:
            with follow.lock:
                follow.ended = True
            self._forget(path)
            raise

    def end_watches(self, path: str) -> None:
        below = path.rstrip("/") + "/"
        with self._lock:
            ended = [p for p in self._follows if p == path or p.startswith(below)]
        for followed in ended:
            self._forget(followed)
        self.direct.end_watches(path)

    def watched_paths(self) -> list[str]:
        """`direct`'s watches and the relayed ones (a watch moved to the relay is in `direct`'s list too
        until its next report there ends it)."""
        with self._lock:
            relayed = [f.path for f in self._follows.values() if f.source is RELAYED and not f.ended]
        return sorted(self.direct.watched_paths() + relayed)

    def _forget(self, path: str, only: _Follow | None = None) -> None:
        """Stop following `path` (only if `only` is its follow still, when given)."""
        with self._lock:
            follow = self._follows.get(path)
            if follow is None or only is not None and follow is not only:
                return
            del self._follows[path]
        with follow.lock:
            follow.ended = True
        self._send({"forget": path})

    def _report(self, follow: _Follow, change: LeavesChange, source: object) -> bool:
        with follow.lock:
            if follow.ended or follow.source is not source:
                return False  # an old source's: the direct watch ends here
            wanted = follow.callback(change) is not False
            follow.ended = not wanted
        if not wanted:  # the caller is done with it: the relay stops sending it too
            self._forget(follow.path, only=follow)
        return wanted

    def _go_direct(self, follow: _Follow, *, replacing_relay: bool) -> None:
        """Feed the watch from `direct` (its whole list first). Not if the relay feeds it, unless it is
        the relay that went; not twice."""
        token = object()
        with follow.lock:
            if follow.ended or follow.source not in (None, RELAYED) or follow.source is RELAYED and not replacing_relay:
                return
            follow.source = token
        try:
            self.direct.watch_leaves(follow.path, lambda change: self._report(follow, change, token))
        except Exception:
            with follow.lock:
                if follow.source is token:
                    follow.source = None
            raise

    def _go_direct_or_retry(self, follow: _Follow, *, replacing_relay: bool) -> None:
        try:
            self._go_direct(follow, replacing_relay=replacing_relay)
        except Exception as e:  # the store is away too: tried again, unless the relay comes back first
            if follow.ended or self._closed.is_set():
                return
            log.warning("store watch on %s: neither the relay nor the store answers (%s); trying again in %gs",
                        follow.path, e, RETRY_SECONDS)
            retry = threading.Timer(RETRY_SECONDS, self._go_direct_or_retry, (follow,), {"replacing_relay": False})
            retry.daemon = True
            retry.start()

    # -- the relay's connection ------------------------------------------------------------------------

    def _keep_connected(self) -> None:
        while not self._closed.is_set():
            sock = self._connect()
            if sock is not None:
                self._serve(sock)
            self._closed.wait(RETRY_SECONDS)

    def _connect(self) -> socket.socket | None:
        for host, port in self.relays:
            try:
                sock = socket.create_connection((host, port), timeout=self.timeout)
                if self.tls is not None:
                    sock = self.tls.wrap_socket(sock, server_hostname=host)
            except OSError as e:  # ssl's errors are OSErrors
                if not self._said_away:
                    log.warning("store relay %s:%d not reached (%s); its watches go to the store directly", host, port, e)
                continue
            sock.settimeout(None)
            # A relay host gone without a word (no FIN) is noticed within ~11 s, not never.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
                if hasattr(socket, option):
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
            return sock
        self._said_away = True
        return None

    def _greeted(self, sock: socket.socket, peer: str) -> bytes | None:
        """What came after the relay's first line, once it came within the timeout; None if it did not
        (a relay that refused this host's certificate closes the connection here)."""
        sock.settimeout(self.timeout)
        received = b""
        try:
            while b"\n" not in received:
                data = sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("closed before it said it was a relay")
                received += data
            first, rest = received.split(b"\n", 1)
            if json.loads(first).get("relay") != "acsnet":
                raise ValueError(f"not a relay: it said {first[:80]!r}")
        except (OSError, ValueError) as e:
            if not self._said_away:
                log.warning("store relay %s refused this host or is not one (%s); its watches go to the store directly",
                            peer, e)
            self._said_away = True
            sock.close()
            return None
        sock.settimeout(None)
        return rest

    def _serve(self, sock: socket.socket) -> None:
        """Follow every watch through the relay and take its lines until the connection ends, then feed
        every watch from `direct`. This thread alone reads and writes the socket (a TLS connection may
        not be read and written from two threads at once): others queue their lines and poke it."""
        peer = "%s:%d" % sock.getpeername()[:2]
        rest = self._greeted(sock, peer)
        if rest is None:
            return
        partial = [rest]  # what came of the line not ended yet
        with self._lock:
            self._socket = sock
            follows = list(self._follows.values())
            self._outbox = [line({"follow": follow.path}) for follow in follows]
        self._peer = peer
        self._relay_up.set()
        log.info("store relay %s connected; following %d watches through it", peer, len(follows))
        self._said_away = False
        poller = select.poll()  # not select(2): a simulated host's descriptors pass 1,024
        poller.register(sock, select.POLLIN)
        poller.register(self._poke_read, select.POLLIN)
        try:
            while not self._closed.is_set():
                with self._lock:
                    outbox, self._outbox = self._outbox, []
                if outbox:
                    sock.sendall(b"".join(outbox))
                ready = {fd for fd, _event in poller.poll()}
                if self._poke_read in ready:
                    os.read(self._poke_read, 4096)
                if sock.fileno() not in ready:
                    continue
                data = sock.recv(RECEIVE_BYTES)
                while isinstance(sock, ssl.SSLSocket) and sock.pending():  # decrypted already: poll would not say
                    data += sock.recv(RECEIVE_BYTES)
                if not data:
                    break
                # A whole list is a line of up to megabytes, which comes in many pieces: they are kept apart
                # until its end comes (joined at each piece, 1,000 hosts' first loads copied gigabytes).
                partial.append(data)
                if b"\n" not in data:
                    continue
                *lines, rest = b"".join(partial).split(b"\n")
                partial = [rest]
                for raw in lines:
                    self._take_line(raw)
        except (OSError, ValueError) as e:
            log.warning("store relay %s: connection failed (%s)", peer, e)
        finally:
            with self._lock:
                self._socket = None
                self._outbox = []
                follows = list(self._follows.values())
            self._relay_up.clear()
            try:
                sock.close()
            except OSError:
                pass
        if self._closed.is_set():
            return
        log.warning("store relay %s gone; %d watches go to the store directly", peer, len(follows))
        for follow in follows:
            self._go_direct_or_retry(follow, replacing_relay=True)

    def _send(self, message: dict) -> bool:
        """Queue a line for the relay; False if none is connected."""
        with self._lock:
            if self._socket is None:
                return False
            self._outbox.append(line(message))
        self._poke()
        return True

    def _poke(self) -> None:
        try:
            os.write(self._poke_write, b"!")
        except (BlockingIOError, OSError):  # full: it is awake already; closed: it is gone
            pass

    def _take_line(self, raw: bytes) -> None:
        message = json.loads(raw)
        path = message.get("path")
        with self._lock:
            follow = self._follows.get(path) if path is not None else None
        if "error" in message:
            log.warning("store relay: %s%s", f"{path}: " if path else "", message["error"])
            if follow is not None:
                self._go_direct_or_retry(follow, replacing_relay=True)
                follow.answered.set()
            return
        if follow is None:
            return  # forgotten meanwhile
        try:
            if "names" in message:
                values = {name: decode_value(value) for name, value in message["names"].items()}
                with follow.lock:
                    if follow.ended:
                        return
                    follow.source = RELAYED
                try:
                    self._report(follow, LeavesChange(names=frozenset(values), values=values), RELAYED)
                finally:
                    follow.answered.set()  # reported before `watch_leaves` returns
            else:
                made = {name: decode_value(value) for name, value in message.get("made", {}).items()}
                self._report(follow, LeavesChange(made=tuple(made), deleted=tuple(message.get("deleted", ())),
                                                  values=made), RELAYED)
        except Exception:  # the caller's callback: its watch goes on, as a store's does
            log.exception("store watch on %s: callback failed", path)

    # -- everything else: the host's own session ------------------------------------------------------

    @property
    def observer(self):
        return self.direct.observer

    @observer.setter
    def observer(self, value) -> None:
        self.direct.observer = value

    @property
    def connected(self) -> bool:
        return self.direct.connected

    def create(self, path: str, value: bytes = b"", *, ephemeral: bool = False) -> bool:
        return self.direct.create(path, value, ephemeral=ephemeral)

    def get(self, path: str) -> Versioned | None:
        return self.direct.get(path)

    def get_many(self, paths: Sequence[str]) -> list[Versioned | None]:
        return self.direct.get_many(paths)

    def children_many(self, paths: Sequence[str]) -> list[list[str]]:
        return self.direct.children_many(paths)

    def compare_and_set(self, path: str, value: bytes, version: int) -> bool:
        return self.direct.compare_and_set(path, value, version)

    def delete(self, path: str, version: int = -1, *, recursive: bool = False) -> bool:
        return self.direct.delete(path, version, recursive=recursive)

    def children(self, path: str) -> list[str]:
        return self.direct.children(path)

    def commit(self, operations: Sequence[Operation]) -> bool:
        return self.direct.commit(operations)

    def watch_value(self, path: str, callback: Callable[[Versioned | None], None]) -> None:
        self.direct.watch_value(path, callback)

    def watch_children(self, path: str, callback: Callable[[list[str]], None]) -> None:
        self.direct.watch_children(path, callback)

    def lock(self, name: str, timeout: float):
        return self.direct.lock(name, timeout)

    def register_host(self, host_id: str, session_name: str, info: dict) -> None:
        self.direct.register_host(host_id, session_name, info)

    def live_hosts(self) -> set[str]:
        return self.direct.live_hosts()

    def close(self) -> None:
        self._closed.set()
        self._poke()
        self._thread.join(self.timeout)
        for fd in (self._poke_read, self._poke_write):
            os.close(fd)
        self.direct.close()
