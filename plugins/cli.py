"""The `acsnet` command."""

from __future__ import annotations

import argparse
import logging
import sys

from plugins import __version__
from plugins.config import COMMON_OPTIONS, IPAM_OPTIONS, add_options, resolve
from plugins.errors import AcsnetError, NotImplementedYet

log = logging.getLogger("acsnet")

# Plugin names dockerd knows each process by (`-d NAME`, `--ipam-driver NAME`): the socket's name.
PLUGIN_NAMES = {"ipam": "acsnet", "vlan": "vlan", "vxlan": "vxlan", "vpc": "vpc"}
PENDING_DRIVERS = {"vlan": 4, "vxlan": 5, "vpc": 6}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acsnet",
        description="Docker network drivers (vlan, vxlan, vpc) and IPAM on Open vSwitch, with state in ZooKeeper.",
    )
    parser.add_argument("--version", action="version", version=f"acsnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run one plugin on <plugin-dir>/<name>.sock",
        description="Run one plugin for dockerd: 'ipam' as acsnet.sock (use --ipam-driver acsnet), "
        "'vlan', 'vxlan', 'vpc' as network drivers (use -d NAME).",
    )
    serve.add_argument("plugin", choices=sorted(PLUGIN_NAMES), help="which plugin to run")
    serve.add_argument("--config", help="config file with an [acsnet] section [env ACSNET_CONFIG; default /etc/acsnet/acsnet.conf]")
    add_options(serve, COMMON_OPTIONS + IPAM_OPTIONS)
    serve.set_defaults(run=run_serve)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    from plugins.service import configure_logging, serve

    settings = resolve(args, COMMON_OPTIONS + IPAM_OPTIONS)
    configure_logging(settings["log_level"])
    if args.plugin in PENDING_DRIVERS:
        raise NotImplementedYet(
            f"the {args.plugin} driver is not implemented yet (issue #{PENDING_DRIVERS[args.plugin]}); "
            "'acsnet serve ipam' is available"
        )
    from ipam.driver import AcsnetIpam, parse_supernets
    from plugins.store import check_store_url

    name = PLUGIN_NAMES[args.plugin]
    check_store_url(settings["store"])
    supernets = parse_supernets(
        settings["default_pool"], settings["default_pool_size"],
        settings["default_pool_v6"], settings["default_pool_size_v6"],
    )
    opened = []

    def app_factory():
        from plugins.server import create_app
        from plugins.store import open_store

        store = open_store(settings["store"], timeout=settings["store_timeout"])
        opened.append(store)
        try:
            store.register_host(settings["host_id"], name, {"host_id": settings["host_id"]})
        except AcsnetError as e:  # never exit over the store: it is retried when the session comes
            log.warning("plugin=%s liveness not registered yet: %s", name, e.message)
        ipam = AcsnetIpam(store, settings["host_id"], supernets=supernets, timeout=settings["store_timeout"])
        return create_app(name=name, ipam_driver=ipam)

    def close_store():
        for store in opened:
            store.close()

    serve(name, app_factory, plugin_dir=settings["plugin_dir"], threads=settings["threads"],
          log_level=settings["log_level"], on_exit=close_store)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except AcsnetError as e:
        print(f"acsnet {args.command}: {e.message}", file=sys.stderr)
        return 1
    except ValueError as e:  # bad option values (store URL, pools) found while starting
        print(f"acsnet {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
