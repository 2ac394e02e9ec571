"""`acsnet plugin build` and `acsnet plugin install`: acsnet as Docker managed plugins (acsnet/managed_plugins.py,
acsnet/plugin_install.py), which swarm mode needs."""

from __future__ import annotations

import argparse
import sys

from acsnet.cli.common import add_config_option, add_docker_option
from acsnet.cli.serve import set_up_host
from acsnet.config import HOST_SETUP_OPTIONS, add_options
from acsnet.errors import AcsnetError

NAMES = ("ipam", "vlan", "vxlan", "vpc")


def add_commands(commands) -> None:
    plugin = commands.add_parser(
        "plugin",
        help="acsnet as Docker managed plugins (acsnet/ipam, acsnet/vlan, acsnet/vxlan, acsnet/vpc): build, install",
        description="Managed (v2) plugins, which swarm mode needs: built offline from Debian's packages and this "
        "checkout, installed through dockerd's API (docker plugin create, set, enable).",
    )
    plugin_commands = plugin.add_subparsers(dest="plugin_command", required=True, metavar="PLUGIN_COMMAND")
    build = plugin_commands.add_parser("build", help="make the four plugin folders (config.json and rootfs/)")
    build.add_argument("--out", help="where the plugin folders go (default: .cache/plugins of the checkout)")
    build.set_defaults(run=run_plugin_build)

    install = plugin_commands.add_parser("install", help="create, set and enable the plugins on a dockerd")
    add_docker_option(install, "the dockerd to install them on")
    install.add_argument("--from", dest="build_dir", help="the folder 'acsnet plugin build' made (default: build "
                         "into .cache/plugins of the checkout if nothing is there)")
    install.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                         help="a setting for every plugin that has it: ACSNET_STORE=zk://..., ovs-run.source=PATH "
                         "(repeatable); as 'docker plugin set'")
    install.add_argument("--only", default=",".join(NAMES),
                         help=f"which plugins, comma-separated (default {','.join(NAMES)})")
    install.add_argument("--host-setup", action="store_true",
                         help="first run 'acsnet host-setup' on this host (needs --uplink) and turn IPv4 forwarding "
                         "on, and IPv6 forwarding where the kernel has IPv6 (the vpc driver routes, dual-stack "
                         "networks' IPv6 too; a plugin cannot change /proc/sys). Interfaces taking router "
                         "advertisements (accept_ra=1) are set to accept_ra=2 first: a host that forwards "
                         "ignores them otherwise")
    add_config_option(install, " (host setup's options)")
    add_options(install, HOST_SETUP_OPTIONS)
    install.set_defaults(run=run_plugin_install)


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def run_plugin_build(args: argparse.Namespace) -> int:
    from acsnet.managed_plugins import PLUGINS, build

    out = build(args.out, progress=_progress)
    for spec in PLUGINS.values():
        print(f"{spec.reference}: {out}/{spec.folder}")
    return 0


def run_plugin_install(args: argparse.Namespace) -> int:
    from acsnet.managed_plugins import build, default_out, is_built
    from acsnet.plugin_install import PluginInstaller, parse_settings

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(NAMES))
    if unknown or not names:
        raise AcsnetError(f"--only {args.only!r}: choose among {', '.join(NAMES)}")
    settings = parse_settings(args.settings)
    if args.host_setup:
        host_setup(args)
    build_dir = args.build_dir or default_out()
    if not is_built(build_dir):
        if args.build_dir:
            raise AcsnetError(f"{build_dir} holds no built plugins: run 'acsnet plugin build --out {build_dir}'")
        build(build_dir, progress=_progress)
    installed = PluginInstaller(args.docker, build_dir).install(names, settings, progress=_progress)
    for reference in installed:
        print(f"{reference}: enabled")
    return 0


def host_setup(args: argparse.Namespace) -> None:
    """What a plugin cannot do to its host: the uplink into the bridge, and forwarding (a managed plugin's
    /proc/sys is read-only), IPv6's included: the vpc driver refuses dual-stack networks without it."""
    from acsnet.ovsctl import links  # pyroute2: half a second, for this command only

    done = set_up_host(args)
    links.enable_ipv4_forwarding()
    if links.has_ipv6():
        links.enable_ipv6_forwarding()  # accept_ra=1 interfaces to 2 first, so they keep their routers
        forwarding = "IPv4 and IPv6 forwarding on"
    else:
        forwarding = "IPv4 forwarding on; IPv6 forwarding not (IPv6 is disabled in this kernel)"
    _progress("host set up: " + ("; ".join(done) if done else "already set up") + "; " + forwarding)
