"""A client for a plugin's unix socket, speaking the protocol the way dockerd does (POST, JSON body,
no Content-Type). Used by the CLI, the tests and the benchmarks."""

from __future__ import annotations

import http.client
import json
import socket


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def get_json(socket_path: str, path: str, timeout: float = 10.0) -> tuple[int, object]:
    """GET `path` on a unix-socket HTTP server (a plugin's /healthz, dockerd's API): status and JSON body."""
    return request_json(socket_path, "GET", path, timeout=timeout)


def request_json(socket_path: str, method: str, path: str, body=None, headers: dict | None = None,
                 timeout: float = 10.0) -> tuple[int, object]:
    """One request on a unix-socket HTTP server: status and JSON body. `body` may be bytes or a file
    (sent chunked: a plugin's root filesystem as a tar stream)."""
    connection = UnixHTTPConnection(socket_path, timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


class PluginClient:
    """One keep-alive connection, like dockerd's; not shared between threads."""

    def __init__(self, socket_path: str, timeout: float = 30.0):
        self.socket_path = socket_path
        self.timeout = timeout
        self._connection: UnixHTTPConnection | None = None

    def call_raw(self, method: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = UnixHTTPConnection(self.socket_path, self.timeout)
            try:
                self._connection.request(
                    "POST", f"/{method}", body=body,
                    headers={"Accept": "application/vnd.docker.plugins.v1.2+json"},
                )
                response = self._connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()  # the server closed an idle keep-alive connection: retry once afresh
                if attempt == 2:
                    raise

    def call(self, method: str, payload: dict | None = None) -> tuple[int, dict]:
        status, raw = self.call_raw(method, b"" if payload is None else json.dumps(payload).encode())
        return status, json.loads(raw)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
