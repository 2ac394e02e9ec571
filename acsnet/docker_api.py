"""Where the local dockerd's Engine API is (`--docker` of every command that asks dockerd) and reading it.

One form for every command: `unix:///path` (DOCKER_HOST's form), `unix:/path` or a plain path. dockerd
over TCP is refused by name: no command here speaks TLS to dockerd, and an unauthenticated TCP socket
is root on the host. Nothing here is called from a plugin handler (dockerd may be waiting on it).
"""

from __future__ import annotations

import dataclasses
import json
import os

from acsnet.errors import AcsnetError, Unreachable
from acsnet.plugin_client import get_json, request_json

DEFAULT_DOCKER = "unix:///var/run/docker.sock"


class DockerUnreachable(Unreachable):
    """dockerd did not answer at the address given: nothing was asked of it."""


@dataclasses.dataclass(frozen=True)
class DockerAddress:
    socket_path: str

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def __str__(self) -> str:
        return self.url

    def get_json(self, path: str, timeout: float = 10.0) -> tuple[int, object]:
        """GET `path`: status and JSON body; DockerUnreachable, naming this address, when dockerd does not
        answer or answers with something that is not its API."""
        try:
            return get_json(self.socket_path, path, timeout=timeout)
        except OSError as e:
            raise DockerUnreachable(f"dockerd could not be reached at {self.url}: {e.strerror or e}") from None
        except ValueError as e:  # not JSON: something else listens there
            raise DockerUnreachable(f"{self.url} did not answer as dockerd's API ({e})") from None

    def request(self, method: str, path: str, *, body=None, content_type: str | None = None,
                timeout: float = 60.0) -> tuple[int, object]:
        """Any other call (POST, DELETE): status and JSON body; DockerUnreachable as for get_json. A JSON
        `body` (a dict or list) is encoded; bytes or a file go as they are, with `content_type`."""
        headers = {}
        if isinstance(body, (dict, list)):
            body, content_type = json.dumps(body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            return request_json(self.socket_path, method, path, body, headers, timeout=timeout)
        except OSError as e:
            raise DockerUnreachable(f"dockerd could not be reached at {self.url}: {e.strerror or e}") from None
        except ValueError as e:
            raise DockerUnreachable(f"{self.url} did not answer as dockerd's API ({e})") from None


def parse_docker_address(text: str) -> DockerAddress:
    if text.startswith("unix://"):
        path = text[len("unix://"):]
    elif text.startswith("unix:"):
        path = text[len("unix:"):]
    elif text.startswith("tcp://"):
        raise AcsnetError(f"{text}: dockerd over TCP is not supported; give its unix socket "
                          f"(unix:///var/run/docker.sock, or a path)")
    elif "://" in text:
        raise AcsnetError(f"{text} is not a unix socket; give unix:///path, unix:/path or a path")
    else:
        path = text
    if not path:
        raise AcsnetError(f"{text!r} names no socket")
    return DockerAddress(os.path.abspath(path))
