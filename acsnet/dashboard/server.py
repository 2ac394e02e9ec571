"""Serve the dashboard under gunicorn, as the plugins are served (acsnet/service.py): one worker owns
the store session and the watches, its threads answer pages and hold their event streams."""

from __future__ import annotations

import logging
import os
import ssl

from acsnet.plugin_socket import SOCKET_UMASK
from acsnet.service import PluginApplication
from acsnet.store import check_store_url, open_store

log = logging.getLogger("acsnet.dashboard")

DEFAULT_LISTEN = "unix:///run/acsnet/dashboard.sock"


def parse_listen(text: str) -> str:
    """`unix:///path`, `tcp://HOST:PORT` or `HOST:PORT` as a gunicorn bind (`unix:/path`, `HOST:PORT`);
    ValueError naming the forms."""
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path.startswith("/"):
            raise ValueError(f"--listen {text!r}: a unix socket needs an absolute path (unix:///run/acsnet/dashboard.sock)")
        return f"unix:{path}"
    address = text[len("tcp://"):] if text.startswith("tcp://") else text
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {text!r} is not unix:///PATH, tcp://HOST:PORT or HOST:PORT")
    return f"{host}:{port}"


def store_name(url: str | None) -> str:
    """The store URL as shown: without credentials."""
    kind, location = check_store_url(url)
    if kind == "zk":
        from acsnet.store.zookeeper import parse_zk_url

        target = parse_zk_url(location)
        return f"zk://{target.hosts}{target.chroot}"
    return f"file://{location}"


def serve_dashboard(store_url: str | None, bind: str, tls: ssl.SSLContext | None, certfile: str | None, *,
                    store_timeout: float, threads: int, log_level: str) -> None:
    from acsnet.dashboard.app import create_dashboard_app
    from acsnet.dashboard.live import LiveStore
    from acsnet.dashboard.queries import ProblemScanner

    name = store_name(store_url)
    if bind.startswith("unix:"):
        os.makedirs(os.path.dirname(bind[len("unix:"):]), mode=0o755, exist_ok=True)
    running = []

    def app_factory():
        store = open_store(store_url, timeout=store_timeout)  # ZooKeeper away: it connects in the background
        live = LiveStore(store, name).start()
        running.append((live, store))
        return create_dashboard_app(live, ProblemScanner(live).start())

    def stop():
        for live, store in running:
            live.stop()
            store.close()

    settings = {
        "bind": [bind],
        "umask": SOCKET_UMASK,  # a unix socket is 0660, root only, as the plugins'
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,  # each open page holds one for its event stream
        "timeout": 60,
        "graceful_timeout": 5,
        "keepalive": 5,
        "proc_name": "acsnet-dashboard",
        "loglevel": log_level,
        "errorlog": "-",
        "accesslog": None,
    }
    if tls is not None:
        # gunicorn turns TLS on when it has a certificate; the context itself is the one the CLI built
        # and checked (acsnet/cli/common.py: listener_tls), given through gunicorn's ssl_context hook.
        settings.update(certfile=certfile, ssl_context=lambda _config, _factory: tls)
    log.info("acsnet dashboard on %s for store %s", bind, name)
    PluginApplication(app_factory, settings, stop).run()
