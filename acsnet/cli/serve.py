"""`acsnet serve PLUGIN` and `acsnet host-setup`: what runs on every host. Their options are also
ACSNET_* variables and config-file keys (acsnet/config.py)."""

from __future__ import annotations

import argparse

from acsnet import plugin_socket
from acsnet.config import COMMON_OPTIONS, HOST_SETUP_OPTIONS, IPAM_OPTIONS, add_options, resolve
from acsnet.cli.common import add_config_option
from acsnet.errors import AcsnetError
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.store import check_relays, check_store_url

PLUGINS = ("ipam", "vlan", "vxlan", "vpc")


def add_commands(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="run one plugin on <plugin-dir>/<name>.sock",
        description="Run one plugin for dockerd: 'ipam' as acsnet.sock (use --ipam-driver acsnet), "
        "'vlan', 'vxlan', 'vpc' as network drivers (use -d NAME).",
    )
    serve.add_argument("plugin", choices=PLUGINS, help="which plugin to run")
    add_config_option(serve)
    add_options(serve, COMMON_OPTIONS + IPAM_OPTIONS)
    serve.set_defaults(run=run_serve)

    setup = commands.add_parser(
        "host-setup",
        help="put the uplink NIC into the OVS bridge as a trunk, moving its addresses and routes (idempotent)",
        description="Make the host layout every driver (vlan, vxlan, vpc) needs: the uplink becomes a trunk port of "
        "the bridge, whose own port takes the uplink's MAC, addresses and routes.",
    )
    add_config_option(setup)
    add_options(setup, HOST_SETUP_OPTIONS)
    setup.set_defaults(run=run_host_setup)


def run_serve(args: argparse.Namespace) -> int:
    settings = resolve(args, COMMON_OPTIONS + IPAM_OPTIONS)
    check_store_url(settings["store"])  # a mistyped option is refused before the socket is touched
    check_relays(settings)
    # The socket first: dockerd waits only ~12.5 s for it (acsnet/plugin_socket.py); what follows,
    # imports and checks included, runs while dockerd's first calls wait in its backlog.
    listener = plugin_socket.listen(settings["plugin_dir"], plugin_socket.PLUGIN_NAMES[args.plugin])
    path = listener.getsockname()
    try:
        # Imported here, not above: the plugins bring gunicorn and every driver, which the other
        # commands (and each --help) would otherwise load too.
        from acsnet.composition import run_plugin
        from acsnet.service import configure_logging

        configure_logging(settings["log_level"])
        run_plugin(args.plugin, settings, listener)
    finally:
        if listener.fileno() != -1:  # not handed to gunicorn: the checks before serving refused to start
            plugin_socket.close(listener, path)
    return 0


def set_up_host(args: argparse.Namespace) -> list[str]:
    """The host setup the options ask for (`host-setup`, and `plugin install --host-setup`); what it did."""
    from acsnet.ovsctl.host_setup import setup_host  # pyroute2: half a second, for these commands only

    settings = resolve(args, HOST_SETUP_OPTIONS)
    if not settings["uplink"]:
        raise AcsnetError("no uplink: give --uplink IFACE (or uplink = IFACE in the config file)")
    return setup_host(Ovsdb(settings["ovsdb"]), settings["uplink"], settings["bridge"], settings["datapath"],
                      userspace_tso=not settings["no_userspace_tso"])


def run_host_setup(args: argparse.Namespace) -> int:
    done = set_up_host(args)
    print("host set up: " + ("; ".join(done) if done else "nothing to do, already set up"))
    return 0
