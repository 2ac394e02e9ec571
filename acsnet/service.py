"""Run one plugin under gunicorn, on the socket acsnet/plugin_socket.py already listens on.

One worker with threads: the worker owns the plugin's single store session, its liveness and (for
drivers) its watches and its OVSDB connection (acsnet.ovsctl.ovsdb_idl), all made after the fork, in
the app factory; several workers would each open their own. The socket is 0660 (root only, as
dockerd runs as root) and nothing listens on TCP.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Callable, Iterable

from gunicorn.app.base import BaseApplication

from acsnet.plugin_socket import BACKLOG

# A WSGI application: the plugins' (acsnet/plugins/server.py) or the dashboard's Flask app.
WsgiApp = Callable[[dict, Callable], Iterable[bytes]]

LOG_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def configure_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format=LOG_FORMAT, force=True)
    logging.getLogger("kazoo").setLevel(logging.WARNING)
    logging.getLogger("pyroute2").setLevel(logging.WARNING)  # its debug lines are every netlink message


class PluginApplication(BaseApplication):
    def __init__(self, app_factory: Callable[[], WsgiApp], settings: dict, on_exit: Callable[[], None]):
        self._app_factory = app_factory
        self._settings = settings
        self._on_exit = on_exit
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._settings.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25 opens a control socket at one path per user: the plugins of a host
            # would fight over it, and nothing here uses it.
            self.cfg.set("control_socket_disable", True)
        self.cfg.set("worker_exit", lambda server, worker: self._on_exit())

    def load(self) -> WsgiApp:
        return self._app_factory()


def serve(name: str, app_factory: Callable[[], WsgiApp], *, listener: socket.socket, threads: int, log_level: str,
          on_exit: Callable[[], None]) -> None:
    """Serve on `listener` (acsnet.plugin_socket.listen), which gunicorn takes over: it closes the socket
    and removes its file when it stops."""
    path = listener.getsockname()
    settings = {
        "bind": [f"fd://{listener.detach()}"],
        "backlog": BACKLOG,
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 60,
        "graceful_timeout": 5,
        "keepalive": 75,  # dockerd keeps its plugin connections alive
        "proc_name": f"acsnet-{name}",
        "loglevel": log_level,
        "errorlog": "-",
        "accesslog": None,  # the app logs one structured line per request itself
    }
    logging.getLogger("acsnet.service").info("plugin=%s socket=%s serving", name, path)
    PluginApplication(app_factory, settings, on_exit).run()
