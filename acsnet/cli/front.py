"""`acsnet front`: a Docker API endpoint in front of dockerd (acsnet/front/), with its TLS setup."""

from __future__ import annotations

import argparse
import logging
import threading

from acsnet.cli.common import add_config_option, add_docker_option, add_tls_options, listener_tls
from acsnet.config import COMMON_OPTIONS, add_options, options_named, resolve
from acsnet.docker_api import DockerUnreachable
from acsnet.errors import AcsnetError
from acsnet.store import check_store_url, open_store

log = logging.getLogger("acsnet")

FRONT_OPTIONS = options_named(COMMON_OPTIONS, "store", "store_timeout", "host_id")


def add_commands(commands) -> None:
    front = commands.add_parser(
        "front", help="a Docker API endpoint in front of dockerd that turns IP labels into IPAM config",
        description="Serve the Docker Engine API for clients (DOCKER_HOST=...), passing everything to dockerd "
        "untouched except container creation: label com.docker.network.endpoint.ipv4address=IP (and ipv6address) "
        "becomes the container's --ip on its network.")
    front.add_argument("--listen", action="append", required=True,
                       help="unix:///run/acsnet/docker.sock or tcp://ADDR:PORT (repeatable; TCP needs --tls-* or --insecure)")
    add_docker_option(front, "the dockerd it fronts")
    add_tls_options(front, "allow TCP without TLS (anyone reaching it controls dockerd)")
    add_config_option(front, " (its store enables IP retention)")
    add_options(front, FRONT_OPTIONS)
    front.add_argument("--retention", type=float, default=24 * 3600,
                       help="seconds an application's address is kept after its container goes (default 24 h)")
    front.add_argument("--request-timeout", type=float, default=30.0,
                       help="seconds a client has for its TLS handshake, and again for its request head (default %(default)s)")
    front.set_defaults(run=run_front)


def run_front(args: argparse.Namespace) -> int:
    # Here, not above: it needs netaddr, and the command must start without any third-party package
    # (install-units on a bare install: tests/test_packaging.py).
    from acsnet.front.proxy import Front, listen

    tls = listener_tls(args, args.listen, client_certificates=False)
    settings = resolve(args, FRONT_OPTIONS)
    store = None
    if settings["store"]:  # the IPAM's store: IP retention for containers labelled acsnet.app=NAME
        check_store_url(settings["store"])
        store = open_store(settings["store"], timeout=settings["store_timeout"])
    front = Front(args.docker, store, args.retention, settings["store_timeout"], settings["host_id"])
    if args.request_timeout <= 0:
        raise AcsnetError(f"--request-timeout must be positive, not {args.request_timeout:g}")
    servers = [listen(url, front, tls=tls, request_timeout=args.request_timeout) for url in args.listen]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log.info("acsnet front on %s for %s", ", ".join(args.listen), args.docker)
    try:
        args.docker.get_json("/version", timeout=5.0)
    except DockerUnreachable as e:  # served all the same: dockerd may be (re)starting; each request says so
        log.warning("%s", e.message)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()
    return 0
