"""Each subcommand's --help offers exactly the options it reads: none it would ignore (issue #16:
`status --help` used to list --threads, --vxlan-bridge and ~20 more). Fast: no lab, no store."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from acsnet.cli import build_parser, main
from acsnet.config import resolve
from acsnet.cli.ops import STATUS_OPTIONS
from acsnet.lab.host import REPO

STORE = {"--config", "--store", "--store-timeout"}
ALIYUN = {"--aliyun-access-key-id", "--aliyun-access-key-secret", "--aliyun-region", "--aliyun-route-table-id",
          "--aliyun-instance-id"}

# What each command reads: its own flags and the settings (acsnet/config.py) its run function uses.
EXPECTED = {
    ("status",): STORE | {"--docker", "--json", "--host-id", "--plugin-dir", "--ovsdb", "--bridge"},
    ("inspect",): STORE | {"--docker", "--json", "--host-id"},
    ("audit",): STORE | {"--docker", "--json", "--grace", "--host-id", "--ovsdb", "--bridge", "--vxlan-bridge"},
    ("gc",): STORE | {"--docker", "--json", "--grace", "--host-id", "--ovsdb", "--bridge", "--vxlan-bridge",
                      "--apply", "--dead-hosts"},
    ("host-leave",): STORE | {"--host-id", "--vpc-routes"} | ALIYUN,
    ("ip", "list"): STORE | {"--app", "--json"},
    ("ip", "release"): STORE | {"--app", "--ip", "--json"},
    ("front",): STORE | {"--listen", "--docker", "--tls-cert", "--tls-key", "--tls-ca", "--insecure", "--retention", "--host-id",
                         "--request-timeout"},
    ("pools",): STORE | {"--json"},
    ("dashboard",): STORE | {"--listen", "--tls-cert", "--tls-key", "--tls-ca", "--insecure", "--threads", "--log-level"},
    ("host-setup",): {"--config", "--uplink", "--bridge", "--datapath", "--no-userspace-tso", "--ovsdb"},
    ("install-units",): {"--dest", "--config-dir"},
    ("lab", "up"): {"--hosts", "--scope", "--link-rate", "--underlay-mtu", "--zookeepers", "--engine", "--host-os", "--plugins", "--swarm", "--relay"},
    ("lab", "demo"): {"--hosts", "--engine", "--host-os", "--swarm", "--relay"},
    ("plugin", "build"): {"--out"},
    ("plugin", "install"): {"--docker", "--from", "--set", "--only", "--host-setup", "--config", "--uplink", "--bridge",
                            "--datapath", "--no-userspace-tso", "--ovsdb"},
    ("lab", "status"): {"--json"},
    ("relay",): STORE | {"--listen", "--tls-cert", "--tls-key", "--tls-ca", "--insecure", "--log-level"},
}


def offered(argv: tuple[str, ...], capsys) -> set[str]:
    """The long options a command's --help lists (its own, not those of the command above it)."""
    with pytest.raises(SystemExit) as exit:
        main([*argv, "--help"])
    assert exit.value.code == 0
    text = capsys.readouterr().out
    options = text.split("\noptions:\n", 1)[1]
    return set(re.findall(r"^  (?:-\w, )?(--[\w-]+)", options, re.MULTILINE)) - {"--help"}


@pytest.mark.parametrize("argv", EXPECTED, ids=" ".join)
def test_help_lists_only_what_the_command_reads(argv, capsys):
    assert offered(argv, capsys) == EXPECTED[argv]


def test_every_command_is_covered():
    """A new subcommand gets its line in EXPECTED (bench's options are the benchmark's; serve takes them all)."""
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert set(commands) - {argv[0] for argv in EXPECTED} == {"serve", "bench"}


def test_serve_offers_every_setting(capsys):
    assert {"--threads", "--vxlan-bridge", "--default-pool", "--metrics-address", "--config"} <= offered(("serve", "ipam"), capsys)


def test_ops_settings_still_come_from_environment_and_config_file(tmp_path, monkeypatch):
    conf = tmp_path / "acsnet.conf"
    conf.write_text("[acsnet]\nstore = zk://file:2181/x\nbridge = brfile\n")
    monkeypatch.setenv("ACSNET_BRIDGE", "brenv")
    settings = resolve(build_parser().parse_args(["status", "--config", str(conf)]), STATUS_OPTIONS)
    assert (settings["store"], settings["bridge"]) == ("zk://file:2181/x", "brenv")


def test_bench_help_names_the_command():
    result = subprocess.run([sys.executable, "-m", "acsnet.cli", "bench", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: acsnet bench"), result.stdout
    assert "--quick" in result.stdout
