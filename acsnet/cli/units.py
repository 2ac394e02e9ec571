"""`acsnet install-units`: the systemd units and an example config file."""

from __future__ import annotations

import argparse

from acsnet.units import install_units


def add_commands(commands) -> None:
    units = commands.add_parser("install-units", help="install the systemd units and an example /etc/acsnet/acsnet.conf")
    units.add_argument("--dest", default="/etc/systemd/system", help="where units go (default /etc/systemd/system)")
    units.add_argument("--config-dir", default="/etc/acsnet", help="where acsnet.conf goes if absent (default /etc/acsnet)")
    units.set_defaults(run=run_install_units)


def run_install_units(args: argparse.Namespace) -> int:
    for path in install_units(args.dest, args.config_dir):
        print(f"installed {path}")
    print("then: systemctl daemon-reload && systemctl enable --now acsnet-host-setup acsnet-ipam acsnet-vlan")
    return 0
