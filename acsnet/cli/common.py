"""What several command groups share: --config, --docker, the store of the read-only commands, tables."""

from __future__ import annotations

import argparse

from acsnet.config import DEFAULT_CONFIG, Option, resolve
from acsnet.docker_api import DEFAULT_DOCKER, parse_docker_address
from acsnet.errors import AcsnetError
from acsnet.store import open_store


def add_config_option(command: argparse.ArgumentParser, purpose: str = "") -> None:
    command.add_argument("--config", help=f"config file with an [acsnet] section{purpose} "
                         f"[env ACSNET_CONFIG; default {DEFAULT_CONFIG}]")


def add_docker_option(command: argparse.ArgumentParser, purpose: str) -> None:
    """--docker, one form for every command (acsnet/docker_api.py)."""

    def docker_address(text: str):
        try:
            return parse_docker_address(text)
        except AcsnetError as e:
            raise argparse.ArgumentTypeError(e.message) from None

    command.add_argument("--docker", type=docker_address, default=DEFAULT_DOCKER, metavar="ADDRESS",
                         help=f"{purpose}: unix:///path, unix:/path or a path (default {DEFAULT_DOCKER})")


def open_for_ops(args: argparse.Namespace, options: list[Option]):
    """The settings a command reads and a session of the store (the caller closes it)."""
    settings = resolve(args, options)
    return settings, open_store(settings["store"], timeout=settings["store_timeout"])


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
