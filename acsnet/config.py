"""acsnet's settings: every option is a CLI flag, an `ACSNET_*` environment variable and a key of the
`[acsnet]` section of the config file (default /etc/acsnet/acsnet.conf), in that order of precedence."""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import os
import socket

DEFAULT_CONFIG = "/etc/acsnet/acsnet.conf"
_TYPE_NAMES = {int: "whole number", float: "number", str: "string", bool: "boolean (true/false)"}


@dataclasses.dataclass(frozen=True)
class Option:
    name: str  # attribute name; the flag is --name-with-dashes, the variable ACSNET_NAME
    default: object
    help: str
    type: type = str
    choices: tuple | None = None
    bounds: tuple | None = None  # (lowest, highest) a number may be

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "ACSNET_" + self.name.upper()


COMMON_OPTIONS = [
    Option("store", None, "store URL: zk://h1:2181,h2:2181/chroot (ZooKeeper, multi-host) or file:///path "
           "(embedded single-host store); default file:///var/lib/acsnet/store.db"),
    Option("relay", None, "store relays to take the segments' and the live hosts' changes from, with the records in "
           "them, instead of each host from ZooKeeper: HOST:PORT[,HOST:PORT] of `acsnet relay`, the "
           "first that answers; while none does, from the store directly (ZooKeeper stores; drivers)"),
    Option("relay_tls_cert", None, "this host's certificate for the relays (PEM; they ask for one)"),
    Option("relay_tls_key", None, "its private key (PEM)"),
    Option("relay_tls_ca", None, "CA the relays' certificates must be signed by"),
    Option("plugin_dir", "/run/docker/plugins", "directory where dockerd looks for plugin sockets"),
    Option("ovsdb", "unix:/var/run/openvswitch/db.sock", "OVSDB connection of this host's Open vSwitch"),
    Option("host_id", None, "this host's name in the store (default: the hostname)"),
    Option("scope", "local", "local: one network per host; global: networks are cluster-wide (dockerd "
           "with --cluster-store)", choices=("local", "global")),
    Option("datapath", "system", "OVS datapath type: system (kernel module) or netdev (userspace)",
           choices=("system", "netdev")),
    Option("bridge", "ovsbr0", "the OVS bridge that host-setup made (drivers)"),
    Option("vxlan_bridge", "acsvx0", "the OVS bridge of vxlan endpoints and the tunnel port; the vxlan driver makes it (drivers)"),
    Option("vtep_ip", None, "the local VXLAN tunnel endpoint address (default: the host bridge's IPv4 address) (vxlan)"),
    Option("vpc_routes", "hostroutes", "how host subnets are routed: hostroutes (kernel routes to every peer) or aliyun "
           "(VPC route entries through Alibaba Cloud's SDK) (vpc)", choices=("hostroutes", "aliyun")),
    Option("aliyun_access_key_id", None, "Alibaba Cloud access key id (vpc, aliyun)"),
    Option("aliyun_access_key_secret", None, "its secret (vpc, aliyun)"),
    Option("aliyun_region", None, "the VPC's region, e.g. cn-hangzhou (vpc, aliyun)"),
    Option("aliyun_route_table_id", None, "the VPC route table, vtb-... (vpc, aliyun)"),
    Option("aliyun_instance_id", None, "this host's ECS instance id, the next hop of its subnets (vpc, aliyun)"),
    Option("docker", "unix:///var/run/docker.sock", "the local dockerd's API socket: the drivers ask it, in the "
           "background and never while dockerd waits on them, which containers their endpoints belong to "
           "(names for the dashboard's search) (drivers)"),
    Option("orphan_grace", 60.0, "seconds an endpoint may stay unjoined before the driver removes it as orphaned "
           "by dockerd (drivers)", float),
    Option("spare_pairs", 2, "veth pairs each driver keeps on its bridge ahead of CreateEndpoint, each handed to a "
           "container without a port for Open vSwitch to open then; 0 for none (drivers)", int, bounds=(0, 64)),
    Option("state_dir", "/var/lib/acsnet", "directory of the plugin's journal of store writes answered and not yet "
           "committed (the IPAM's releases, a driver's endpoint removals), committed when the plugin starts again "
           "if it was stopped in between"),
    Option("store_timeout", 5.0, "seconds any store call may take before the request fails", float),
    Option("threads", 8, "request threads of the plugin process", int),
    Option("log_level", "info", "debug, info, warning or error", choices=("debug", "info", "warning", "error")),
    Option("metrics_address", None, "also serve Prometheus metrics on this HOST:PORT (default: only GET /metrics "
           "on the plugin's own socket); needs TLS with client certificates, or metrics-insecure"),
    Option("metrics_tls_cert", None, "certificate of the metrics TCP listener (PEM)"),
    Option("metrics_tls_key", None, "its private key (PEM)"),
    Option("metrics_tls_ca", None, "CA that client certificates must be signed by (clients must present one)"),
    Option("metrics_insecure", False, "allow plain HTTP metrics on TCP, without TLS (explicitly insecure)", bool),
]

IPAM_OPTIONS = [
    Option("default_pool", "100.64.0.0/10", "IPv4 supernet that pools without --subnet are carved from"),
    Option("default_pool_size", 24, "prefix length of carved IPv4 pools", int),
    Option("default_pool_v6", "fd61:6373:6e65::/48", "IPv6 supernet that pools without --subnet are carved from"),
    Option("default_pool_size_v6", 64, "prefix length of carved IPv6 pools", int),
]


def add_options(parser: argparse.ArgumentParser, options: list[Option]) -> None:
    """Flags default to None so that `resolve` can tell "not given" from a given default."""
    for opt in options:
        extra = f" [env {opt.env}; default {opt.default}]" if opt.default is not None else f" [env {opt.env}]"
        if opt.type is bool:
            parser.add_argument(opt.flag, dest=opt.name, default=None, action="store_const", const=True, help=opt.help + extra)
        else:
            parser.add_argument(opt.flag, dest=opt.name, default=None, type=opt.type, choices=opt.choices, help=opt.help + extra)


def _boolean(value) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(value)


def read_config_file(path: str | None) -> dict[str, str]:
    path = path or os.environ.get("ACSNET_CONFIG") or DEFAULT_CONFIG
    parser = configparser.ConfigParser()
    if not parser.read(path):
        return {}
    if not parser.has_section("acsnet"):
        return {}
    return {k.replace("-", "_"): v for k, v in parser.items("acsnet")}


def resolve(args: argparse.Namespace, options: list[Option]) -> dict[str, object]:
    """CLI flag, then environment, then config file, then the built-in default."""
    from_file = read_config_file(getattr(args, "config", None))
    values = {}
    for opt in options:
        value = getattr(args, opt.name, None)
        if value is None and opt.env in os.environ:
            value = os.environ[opt.env]
        if value is None and opt.name in from_file:
            value = from_file[opt.name]
        if value is None:
            value = opt.default
        if value is not None and not isinstance(value, opt.type):
            try:
                value = _boolean(value) if opt.type is bool else opt.type(value)
            except ValueError:
                raise SystemExit(f"acsnet: {opt.name} must be a {_TYPE_NAMES.get(opt.type, opt.type.__name__)}, got {value!r}") from None
        if opt.choices and value not in opt.choices:
            raise SystemExit(f"acsnet: {opt.name} must be one of {', '.join(opt.choices)}, got {value!r}")
        if opt.bounds and value is not None and not opt.bounds[0] <= value <= opt.bounds[1]:
            raise SystemExit(f"acsnet: {opt.name} must be {opt.bounds[0]} to {opt.bounds[1]}, got {value!r}")
        values[opt.name] = value
    if "host_id" in values and not values["host_id"]:
        values["host_id"] = socket.gethostname()
    return values


HOST_SETUP_OPTIONS = [
    Option("uplink", None, "the host's uplink NIC, made a trunk port of the bridge (required)"),
    Option("bridge", "ovsbr0", "the OVS bridge to make"),
    Option("datapath", "system", "OVS datapath: system (kernel module) or netdev (userspace)", choices=("system", "netdev")),
    Option("no_userspace_tso", False, "netdev: OVS's userspace TCP segmentation offload off "
           "(other_config:userspace-tso-enable; a host that had it: gone when ovs-vswitchd restarts)", bool),
    Option("ovsdb", "unix:/var/run/openvswitch/db.sock", "this host's OVSDB"),
]


def config_example() -> str:
    """/etc/acsnet/acsnet.conf with every option, commented out at its default."""
    lines = ["# acsnet configuration: every option of 'acsnet serve' and 'acsnet host-setup'.",
             "# A command-line flag wins over an ACSNET_* environment variable, which wins over this file.",
             "[acsnet]"]
    seen = set()
    for opt in COMMON_OPTIONS + IPAM_OPTIONS + HOST_SETUP_OPTIONS:
        if opt.name in seen:
            continue
        seen.add(opt.name)
        lines.append("")
        lines.append(f"# {opt.help}" + (f" ({' | '.join(opt.choices)})" if opt.choices else ""))
        lines.append(f"# {opt.name.replace('_', '-')} = {'' if opt.default is None else opt.default}")
    return "\n".join(lines) + "\n"


def options_named(options: list[Option], *names: str) -> list[Option]:
    """The options of `options` called `names`, in their order: a command offers only what it reads."""
    chosen = [o for o in options if o.name in names]
    unknown = set(names) - {o.name for o in chosen}
    if unknown:
        raise KeyError(f"no such options: {', '.join(sorted(unknown))}")
    return chosen
