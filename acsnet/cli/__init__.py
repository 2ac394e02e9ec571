"""The `acsnet` command: the parser assembled from one module per command group (serve: the plugins
and host-setup; ops: status, inspect, audit, gc, host-leave, ip; front; install-units; lab; bench; relay),
and one error path. The plugins themselves are composed in acsnet/composition.py.

The command modules import at their top only what needs no third-party package, so the command starts
on a bare install (install-units) and every --help is quick; what one command needs (Flask and the
drivers, pyroute2, netaddr) that command imports when it runs, saying so."""

from __future__ import annotations

import argparse
import sys

from acsnet import __version__
from acsnet.cli import bench, dashboard, front, lab, ops, plugin, relay, serve, units
from acsnet.errors import AcsnetError

COMMAND_GROUPS = (serve, ops, dashboard, bench, front, units, plugin, lab, relay)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acsnet",
        description="Docker network drivers (vlan, vxlan, vpc) and IPAM on Open vSwitch, with state in ZooKeeper.",
    )
    parser.add_argument("--version", action="version", version=f"acsnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def error_message(error: Exception) -> str:
    if isinstance(error, AcsnetError):
        return error.message
    if isinstance(error, OSError) and error.strerror:  # a file or socket the command was pointed at
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":  # the benchmark parses its own options (acsnet/cli/bench.py)
        args.options = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # One error path: what went wrong, in a line, never a traceback. ValueError: bad option values (store
    # URL, pools) found while starting, a usage error (2) like argparse's own.
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except (AcsnetError, OSError, ValueError) as e:
        print(f"acsnet {args.command}: {error_message(e)}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1
