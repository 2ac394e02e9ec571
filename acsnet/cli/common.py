"""What several command groups share: --config, --docker, the store of the read-only commands, tables."""

from __future__ import annotations

import argparse
import ssl

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


def add_tls_options(command: argparse.ArgumentParser, insecure_help: str) -> None:
    """The TLS of a command's TCP listeners (front, dashboard): one set of flags, checked by `listener_tls`."""
    command.add_argument("--tls-cert", help="server certificate for TCP listeners (PEM)")
    command.add_argument("--tls-key", help="its private key (PEM)")
    command.add_argument("--tls-ca", help="CA that client certificates must be signed by")
    command.add_argument("--insecure", action="store_true", help=insecure_help)


def listener_tls(args: argparse.Namespace, listen: list[str], *, client_certificates: bool) -> ssl.SSLContext | None:
    """The TLS of TCP listeners from --tls-*, or None; refuses a TCP listener without it unless --insecure.
    With `client_certificates` (as the metrics listener), TLS must also name the CA that clients' certificates
    are checked against."""
    tls = None
    if args.tls_cert or args.tls_key or args.tls_ca:
        if not args.tls_cert:
            raise AcsnetError("--tls-key and --tls-ca need --tls-cert")
        if client_certificates and not args.tls_ca:
            raise AcsnetError("TLS here requires client certificates: give --tls-ca too")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key or None)
        if args.tls_ca:
            tls.load_verify_locations(args.tls_ca)
            tls.verify_mode = ssl.CERT_REQUIRED
    for url in listen:
        if url.startswith("tcp://") and tls is None and not args.insecure:
            needed = "--tls-cert, --tls-key and --tls-ca" if client_certificates else "--tls-cert/--tls-key (and --tls-ca)"
            raise AcsnetError(f"{url}: a TCP listener needs {needed}, or --insecure")
    return tls


def open_for_ops(args: argparse.Namespace, options: list[Option]):
    """The settings a command reads and a session of the store (the caller closes it)."""
    settings = resolve(args, options)
    return settings, open_store(settings["store"], timeout=settings["store_timeout"])


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
