"""`acsnet pools` (every pool, how full, which networks) and `acsnet dashboard` (the same and more, as a
live web page: acsnet/dashboard/)."""

from __future__ import annotations

import argparse
import json

from acsnet.cli.common import add_config_option, add_tls_options, listener_tls, open_for_ops, table
from acsnet.config import COMMON_OPTIONS, add_options, options_named, resolve

POOLS_OPTIONS = options_named(COMMON_OPTIONS, "store", "store_timeout")
DASHBOARD_OPTIONS = options_named(COMMON_OPTIONS, "store", "store_timeout", "log_level")


def add_commands(commands) -> None:
    pools = commands.add_parser("pools", help="every IPAM pool: subnet, range, used / retained / free, networks on it")
    add_config_option(pools)
    pools.add_argument("--json", action="store_true", help="machine-readable output")
    add_options(pools, POOLS_OPTIONS)
    pools.set_defaults(run=run_pools)

    dashboard = commands.add_parser(
        "dashboard", help="a read-only web page of pools, hosts, addresses and problems, following the store live",
        description="Serve a read-only web page: pools (used / retained / free), hosts (alive or dead), a search "
        "by IP, MAC, endpoint id or application, and what acsnet audit would find, updated live from store watches.")
    dashboard.add_argument("--listen", default=None, metavar="ADDRESS",
                           help="unix:///PATH (default unix:///run/acsnet/dashboard.sock), or tcp://HOST:PORT or "
                           "HOST:PORT (TCP needs --tls-cert, --tls-key and --tls-ca, or --insecure)")
    add_tls_options(dashboard, "allow TCP without TLS (anyone reaching it sees every host and address)")
    dashboard.add_argument("--threads", type=int, default=32,
                           help="request threads; each open page holds one for its live updates (default %(default)s)")
    add_config_option(dashboard)
    add_options(dashboard, DASHBOARD_OPTIONS)
    dashboard.set_defaults(run=run_dashboard)


def run_pools(args: argparse.Namespace) -> int:
    from acsnet.pools import pool_usages  # the IPAM's and drivers' state modules: only for this command

    _settings, store = open_for_ops(args, POOLS_OPTIONS)
    try:
        usages = pool_usages(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps([u.to_json() for u in usages], indent=2))
        return 0
    rows = [{**u.to_json(), "range": u.range or "-", "networks": "; ".join(u.networks) or "-",
             "used%": f"{100.0 * u.used / u.size:.1f}" if u.size else "-"} for u in usages]
    print(table(rows, ["subnet", "range", "space", "size", "used", "retained", "free", "used%", "networks"])
          if rows else "no pool")
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    from acsnet.dashboard.server import DEFAULT_LISTEN, parse_listen, serve_dashboard
    from acsnet.service import configure_logging
    from acsnet.store import check_store_url

    listen = args.listen or DEFAULT_LISTEN
    bind = parse_listen(listen)
    tls = listener_tls(args, [] if bind.startswith("unix:") else [f"tcp://{bind}"], client_certificates=True)
    if args.threads < 2:
        raise ValueError(f"--threads must be at least 2, not {args.threads}")
    settings = resolve(args, DASHBOARD_OPTIONS)
    check_store_url(settings["store"])
    configure_logging(settings["log_level"])
    serve_dashboard(settings["store"], bind, tls, args.tls_cert, store_timeout=settings["store_timeout"],
                    threads=args.threads, log_level=settings["log_level"])
    return 0
