"""`acsnet relay`: a store relay, the segment agents' leaves watches for many hosts on one ZooKeeper
session (acsnet/store/relay.py)."""

from __future__ import annotations

import argparse

from acsnet.cli.common import add_config_option, add_tls_options, listener_tls
from acsnet.config import COMMON_OPTIONS, add_options, options_named, resolve

DEFAULT_LISTEN = "127.0.0.1:7405"  # acsnet.store.relay.DEFAULT_PORT


def add_commands(commands) -> None:
    relay = commands.add_parser(
        "relay", help="serve the segments' and the live hosts' changes to many hosts from one ZooKeeper session",
        description="A store relay: the hosts started with --relay take their segments' records and the live hosts "
        "from it, each change once with its records, instead of each from ZooKeeper. Read-only; TLS with a "
        "certificate from every host unless --insecure.")
    add_config_option(relay)
    add_options(relay, options_named(COMMON_OPTIONS, "store", "store_timeout", "log_level"))
    relay.add_argument("--listen", default=DEFAULT_LISTEN,
                       help=f"HOST:PORT to serve the hosts on (default {DEFAULT_LISTEN}; port 0: any free one, said on stdout)")
    add_tls_options(relay, "serve plain TCP, without TLS (explicitly insecure: anyone who reaches the address reads "
                           "the segments' records and the live hosts)")
    relay.set_defaults(run=run_relay)


def run_relay(args: argparse.Namespace) -> int:
    from acsnet.service import configure_logging
    from acsnet.store import check_store_url
    from acsnet.store.relay import parse_address, run

    settings = resolve(args, options_named(COMMON_OPTIONS, "store", "store_timeout", "log_level"))
    parse_address(args.listen, listening=True)
    if check_store_url(settings["store"])[0] != "zk":
        raise ValueError(f"a relay serves a ZooKeeper store (zk://...), not {settings['store'] or 'the embedded one'}")
    # As the metrics listener: TLS, and a certificate from every host, unless --insecure.
    tls = listener_tls(args, [f"tcp://{args.listen}"], client_certificates=True)
    configure_logging(settings["log_level"])
    # The address is said on stdout, for whoever started it on port 0.
    run(settings["store"], args.listen, timeout=settings["store_timeout"], tls=tls,
        ready=lambda address: print(f"listening {address[0]}:{address[1]}", flush=True))
    return 0
