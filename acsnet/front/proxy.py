"""`acsnet front`: a Docker Engine API endpoint in front of dockerd that passes every request and response
through untouched, except container creation and network connection (`create.rewrite_create`,
`create.rewrite_connect`).

Each client connection carries one request: the front reads its head (and, for a container create or
a network connect, its body), asks dockerd to close after answering (`Connection: close`), and from
then on copies bytes both ways until both sides are done. So streaming answers (`logs -f`, `events`,
`build`) and hijacked connections (`attach`, `exec -ti`: `Upgrade: tcp`) pass as they are, and the
Docker client simply opens a new connection for its next request. Nothing is buffered but the head and
the body of a create or a connect.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import socketserver
import ssl
import threading
import time
import urllib.parse
from typing import Callable

import netaddr

from acsnet.docker_api import DockerAddress
from acsnet.errors import AcsnetError
from acsnet.front.create import APP_LABEL, RetainedOf, rewrite_connect, rewrite_create
from acsnet.ipam import retention
from acsnet.ipam.model import DEFAULT_RETENTION_SECONDS
from acsnet.plugins.error_status import http_status
from acsnet.plugins.segments import state as segment_state
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.store import Store

log = logging.getLogger(__name__)

# How long a kept address offered to one create is not offered to another: a create and its start are
# seconds apart (compose creates every replica, then starts them); one whose create failed frees it then.
OFFER_SECONDS = 60.0

HEAD_LIMIT = 64 * 1024
BODY_LIMIT = 16 * 1024 * 1024
CREATE = re.compile(r"^/(v[\d.]+/)?containers/create(\?|$)")
START = re.compile(r"^/(v[\d.]+/)?containers/([^/?]+)/start(\?|$)")
CONNECT = re.compile(r"^/(v[\d.]+/)?networks/([^/?]+)/connect(\?|$)")
CHUNK = 64 * 1024
# A client has this long to finish the TLS handshake and then to send its request head (and a create's
# body); past it the connection is closed. Every connection has its own thread, so an idle one costs only
# that thread until then, never another client's time. Once the request is in, answers may stream for
# as long as they like (`logs -f`, `events`).
REQUEST_TIMEOUT = 30.0


class BadRequest(Exception):
    pass


def _read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """The request head (through the blank line) and whatever of the body came with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > HEAD_LIMIT:
            raise BadRequest("request head too large")
        chunk = conn.recv(CHUNK)
        if not chunk:
            raise BadRequest("connection closed inside the request head")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n", rest


def _headers(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return method, target, headers


def _with_headers(head: bytes, set_headers: dict[str, str]) -> bytes:
    """The head with these headers replaced (or added), every other line kept byte for byte."""
    lines = head[:-4].split(b"\r\n")
    names = {k.lower() for k in set_headers}
    kept = [lines[0]] + [line for line in lines[1:] if line.split(b":", 1)[0].strip().decode("latin-1").lower() not in names]
    kept += [f"{k}: {v}".encode("latin-1") for k, v in set_headers.items()]
    return b"\r\n".join(kept) + b"\r\n\r\n"


def _error(conn: socket.socket, status: int, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    reason = {400: "Bad Request", 408: "Request Timeout", 502: "Bad Gateway"}.get(status, "Error")
    conn.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            chunk = source.recv(CHUNK)
            if not chunk:
                break
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Front:
    def __init__(self, docker: DockerAddress, store: Store | None = None, retention: float = DEFAULT_RETENTION_SECONDS,
                 store_timeout: float = 5.0, host_id: str | None = None):
        """`store`: where applications' addresses are kept (IP retention); without it a container
        labelled acsnet.app is refused with a 400 saying so. `host_id`: this host's name in the store,
        as its drivers have it: a container started through the front has its name and id written into
        its endpoints' records at once (the drivers find them too, a moment later, if they reach dockerd)."""
        self.docker = docker
        self.store = store
        self.host_id = host_id
        # (kept address, until) -> (when, to which container by name) a create or connect was pinned to it
        self._offered: dict[tuple[str, float], tuple[float, str]] = {}
        self._offered_lock = threading.Lock()
        self.retention = retention
        self.store_timeout = store_timeout

    def _retained_for(self, container_name: Callable[[], str]) -> RetainedOf | None:
        """What a create or connect asks for an application's kept addresses; None without a store (the
        label is refused then). `container_name()` names the container it is for."""
        if self.store is None:
            return None
        return lambda app, subnets: self._retained(app, subnets, container_name())

    def _retained(self, app: str, subnets: list[str], container: str) -> list[str]:
        """The application's kept addresses in these subnets, less those a create or connect of another
        container was already pinned to during this keeping. A kept address stays kept until a container
        *starts* with it, so replicas created together (compose --scale, or up with several) would all
        be offered the first one and every start but one would fail with "address in use"; each is
        offered another instead, or none (a dynamic address) when all are spoken for. The same container
        is offered its address again (compose v1 connects each container again before starting it). An
        offer is forgotten when the address is kept anew (released again: a new `until`) or after
        OFFER_SECONDS (a create that failed)."""
        kept = retention.retained_entries(self.store, app, subnets)
        now = time.monotonic()
        with self._offered_lock:
            self._offered = {offer: (at, to) for offer, (at, to) in self._offered.items() if now - at < OFFER_SECONDS}
            fresh = [a for a in kept if (a.ip, a.until) not in self._offered
                     or (container and self._offered[(a.ip, a.until)][1] == container)]
            if fresh:
                self._offered[(fresh[0].ip, fresh[0].until)] = (now, container)
        return [a.ip for a in fresh]

    def _remember(self, container: str) -> None:
        """After a container started: its endpoints' records name it; for an application's, which
        addresses to keep for the application."""
        info = self._inspect(container)
        if info is not None and self.host_id:
            self._name_endpoints(info)
        app = ((info.get("Config") or {}).get("Labels") or {}).get(APP_LABEL) if info is not None else None
        if not app:
            return
        for network, settings in ((info.get("NetworkSettings") or {}).get("Networks") or {}).items():
            if not settings.get("IPAddress"):
                continue
            address = netaddr.IPAddress(settings["IPAddress"])
            if retention.remember(self.store, app, self.retention, address, settings.get("MacAddress"), self.store_timeout):
                log.info("app=%s container=%s address=%s kept for the application", app, container[:12], address)
            else:
                log.warning("app=%s container=%s address=%s on %s not kept: no acsnet pool has it, or it is no longer "
                            "this container's", app, container[:12], address, network)

    def _name_endpoints(self, info: dict) -> None:
        """Write the container's id and name into the records of its endpoints on acsnet segment
        networks (vlan, vxlan, vpc; `acsnet/vxlan:latest` as a managed plugin), as the host's driver
        would: the front already has them, and a managed plugin has no docker.sock to ask."""
        name = str(info.get("Name", "")).lstrip("/")
        named: dict[str, list[str]] = {}
        for network, settings in ((info.get("NetworkSettings") or {}).get("Networks") or {}).items():
            endpoint_id = (settings or {}).get("EndpointID")
            if not endpoint_id or not info.get("Id"):
                continue
            status, body = self.docker.get_json(f"/networks/{urllib.parse.quote(network, safe='')}", timeout=30.0)
            driver = str(body.get("Driver", "")) if status == 200 and isinstance(body, dict) else ""
            driver = driver.split(":")[0].removeprefix("acsnet/")
            if driver in LAYOUTS and segment_state.name_host_endpoint(self.store, LAYOUTS[driver], self.host_id, endpoint_id,
                                                                      info["Id"], name):
                named.setdefault(driver, []).append(endpoint_id)
        for driver, endpoint_ids in named.items():
            segment_state.announce_names_changed(self.store, LAYOUTS[driver], self.host_id, endpoint_ids)

    def _upstream(self) -> socket.socket:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.docker.socket_path)
        return upstream

    def _inspect(self, container: str) -> dict | None:
        status, body = self.docker.get_json(f"/containers/{urllib.parse.quote(container, safe='')}/json", timeout=30.0)
        return body if status == 200 else None

    def _subnets(self, network: str) -> list[str] | None:
        status, body = self.docker.get_json(f"/networks/{urllib.parse.quote(network, safe='')}", timeout=30.0)
        if status != 200:
            return None
        return [c["Subnet"] for c in ((body.get("IPAM") or {}).get("Config") or []) if c.get("Subnet")]

    def _rewrite_for(self, method: str, target: str) -> tuple[Callable[[bytes], bytes] | None, str]:
        """How the request's body is rewritten (None: passed as it is), and what the request is."""
        if method != "POST":
            return None, ""
        if CREATE.match(target):
            name = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query).get("name", [""])[0]
            return (lambda body: rewrite_create(body, self._subnets, self._retained_for(lambda: name))), "a container create"
        connect = CONNECT.match(target)
        if connect:
            # Compose v1 disconnects a created container from its network and connects it again before
            # starting it: the connect must carry the labels' address too, or the pin is lost.
            network = urllib.parse.unquote(connect.group(2))
            inspected: dict = {}

            def labels_of(container: str) -> dict | None:
                info = self._inspect(container)
                if info is None:
                    return None
                inspected.update(info)
                return (info.get("Config") or {}).get("Labels") or {}

            retained_of = self._retained_for(lambda: str(inspected.get("Name", "")).lstrip("/"))
            return (lambda body: rewrite_connect(body, network, labels_of, self._subnets, retained_of)), "a network connect"
        return None, ""

    def handle(self, conn: socket.socket) -> None:
        """One client connection, on its own thread: its request head (and a create's body) must
        arrive within the connection's timeout (`REQUEST_TIMEOUT` when served by `listen`)."""
        try:
            head, early = _read_head(conn)
            method, target, headers = _headers(head)
        except TimeoutError:
            try:
                _error(conn, 408, f"acsnet front: no complete request head within {conn.gettimeout():g}s")
            except OSError:
                pass
            return
        except (BadRequest, ValueError, OSError) as e:
            try:
                _error(conn, 400, f"acsnet front: malformed request: {e}")
            except OSError:
                pass
            return
        lower = {k.lower(): v for k, v in headers}
        upgrade = "upgrade" in lower.get("connection", "").lower()
        body = None
        rewrite, what = self._rewrite_for(method, target)
        if rewrite is not None:
            try:
                length = int(lower.get("content-length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= BODY_LIMIT or "chunked" in lower.get("transfer-encoding", "").lower():
                _error(conn, 400, f"acsnet front: {what} needs a Content-Length body of at most 16 MiB")
                return
            body = early
            while len(body) < length:
                try:
                    chunk = conn.recv(CHUNK)
                except OSError:  # the timeout included: a body that does not come is dropped
                    return
                if not chunk:
                    return
                body += chunk
            try:
                body = rewrite(body[:length])
            except AcsnetError as e:
                _error(conn, 400 if http_status(e) < 500 else 502, e.message)
                return
            except OSError as e:  # a create's own connection to dockerd
                _error(conn, 502, f"acsnet front: dockerd could not be reached at {self.docker.url}: {e}")
                return
            head = _with_headers(head, {"Content-Length": str(len(body)), "Connection": "close"})
            early = b""
        elif not upgrade:
            head = _with_headers(head, {"Connection": "close"})
        try:
            upstream = self._upstream()
        except OSError as e:
            _error(conn, 502, f"acsnet front: dockerd could not be reached at {self.docker.url}: {e.strerror or e}")
            return
        started = START.match(target) if method == "POST" and self.store is not None else None
        conn.settimeout(None)  # the request is in: what follows may stream or idle for as long as it likes
        with upstream:
            upstream.sendall(head + (body if body is not None else early))
            if started:  # the start's answer goes back once the application's addresses are kept
                try:
                    answer, rest = _read_head(upstream)
                except (BadRequest, OSError):
                    return
                if answer.split(b" ", 2)[1:2] == [b"204"]:
                    try:
                        self._remember(urllib.parse.unquote(started.group(2)))
                    except (OSError, AcsnetError, ValueError, KeyError) as e:
                        log.warning("container start through the front: its name not recorded, or addresses not kept "
                                    "for its application: %s", e)
                conn.sendall(answer + rest)
            back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
            back.start()
            _pipe(conn, upstream)
            back.join()


class _Handler(socketserver.BaseRequestHandler):
    """Runs on the connection's own thread (ThreadingMixIn): the TLS handshake happens here, not on the
    accepting thread, so a client that connects and sends nothing delays nobody else."""

    def handle(self) -> None:
        conn = self.request
        conn.settimeout(self.server.request_timeout)
        tls = getattr(self.server, "tls", None)
        if tls is not None:
            try:
                conn = tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as e:  # a timeout included
                log.info("TLS handshake with %s failed: %s", self.client_address, e)
                return
        try:
            self.server.front.handle(conn)
        finally:
            conn.close()


class UnixFront(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TcpFront(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, tls: ssl.SSLContext | None):
        super().__init__(address, handler)
        self.tls = tls  # the handshake is the handler's, on the connection's thread


def listen(url: str, front: Front, *, tls: ssl.SSLContext | None = None,
           request_timeout: float = REQUEST_TIMEOUT) -> socketserver.BaseServer:
    """A server for `unix:///path` (mode 0660, like docker.sock) or `tcp://host:port`; a client has
    `request_timeout` seconds for its TLS handshake and again for its request."""
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        old = os.umask(0o117)
        try:
            server = UnixFront(path, _Handler)
        finally:
            os.umask(old)
    elif url.startswith("tcp://"):
        host, _, port = url[len("tcp://"):].rpartition(":")
        server = TcpFront((host.strip("[]") or "0.0.0.0", int(port)), _Handler, tls)
    else:
        raise AcsnetError(f"--listen must be unix:///path or tcp://host:port, not {url!r}")
    server.front = front
    server.request_timeout = request_timeout
    return server
