"""The operator's commands on a running host: status, inspect, audit, gc, host-leave and ip (IP
retention). Each reads only the settings it names below, so its --help offers only those."""

from __future__ import annotations

import argparse
import dataclasses
import json

from acsnet.cli.common import add_config_option, add_docker_option, open_for_ops, table
from acsnet.config import COMMON_OPTIONS, add_options, options_named
from acsnet.ovsctl.ovsdb import Ovsdb

# The settings each command reads (flags, ACSNET_* variables, config-file keys).
STORE = ("store", "store_timeout")
STATUS_OPTIONS = options_named(COMMON_OPTIONS, *STORE, "host_id", "plugin_dir", "ovsdb", "bridge")
INSPECT_OPTIONS = options_named(COMMON_OPTIONS, *STORE, "host_id")
AUDIT_OPTIONS = options_named(COMMON_OPTIONS, *STORE, "host_id", "ovsdb", "bridge", "vxlan_bridge")
HOST_LEAVE_OPTIONS = options_named(COMMON_OPTIONS, *STORE, "host_id", "vpc_routes", "aliyun_access_key_id",
                                   "aliyun_access_key_secret", "aliyun_region", "aliyun_route_table_id",
                                   "aliyun_instance_id")
IP_OPTIONS = options_named(COMMON_OPTIONS, *STORE)


def add_commands(commands) -> None:
    status = commands.add_parser("status", help="this host: plugins up, store and OVS reachable, networks, endpoints, flows")
    inspect = commands.add_parser("inspect", help="a network's endpoints across all hosts, or one host's state")
    inspect.add_argument("kind", choices=("network", "host"))
    inspect.add_argument("name", help="network name or id (resolved by the local dockerd), or host id")
    for command, options in ((status, STATUS_OPTIONS), (inspect, INSPECT_OPTIONS)):
        add_config_option(command)
        add_docker_option(command, "the local dockerd (network names; status says whether it answers)")
        command.add_argument("--json", action="store_true", help="machine-readable output")
        add_options(command, options)
    status.set_defaults(run=run_status)
    inspect.set_defaults(run=run_inspect)

    audit = commands.add_parser("audit", help="list every inconsistency between the store, OVS and dockerd on this host")
    gc = commands.add_parser("gc", help="repair what audit finds (a dry run unless --apply)")
    gc.add_argument("--apply", action="store_true", help="make the repairs (default: only say what would be done)")
    gc.add_argument("--dead-hosts", action="store_true", help="also remove the records and endpoints of hosts that are not alive, release their addresses and drop their pool references")
    for command in (audit, gc):
        add_config_option(command)
        add_docker_option(command, "the local dockerd (its containers' endpoints and addresses)")
        command.add_argument("--grace", type=float, default=60.0,
                             help="seconds an unused address may be held before it counts as leaked (default 60)")
        command.add_argument("--json", action="store_true", help="machine-readable output")
        add_options(command, AUDIT_OPTIONS)
    audit.set_defaults(run=run_audit)
    gc.set_defaults(run=run_gc)

    leave = commands.add_parser(
        "host-leave", help="this host leaves its vpc networks: routes withdrawn everywhere (stop the vpc plugin first)")
    add_config_option(leave)
    add_options(leave, HOST_LEAVE_OPTIONS)
    leave.set_defaults(run=run_host_leave)

    ip = commands.add_parser("ip", help="addresses kept for applications (IP retention of acsnet front)")
    ip_commands = ip.add_subparsers(dest="ip_command", required=True, metavar="IP_COMMAND")
    ip_list = ip_commands.add_parser("list", help="an application's addresses: in use, or retained until when")
    ip_release = ip_commands.add_parser("release", help="forget an application's addresses, freeing those not in use")
    ip_release.add_argument("--ip", help="only this address")
    for command in (ip_list, ip_release):
        command.add_argument("--app", required=command is ip_release, help="the application (label acsnet.app)")
        add_config_option(command)
        command.add_argument("--json", action="store_true", help="machine-readable output")
        add_options(command, IP_OPTIONS)
    ip_list.set_defaults(run=run_ip_list)
    ip_release.set_defaults(run=run_ip_release)


def _ovs_line(ovs: dict) -> str:
    line = "ovs: " + ("reachable" if ovs["reachable"] else "NOT reachable")
    if "bridge" in ovs:
        datapath = ovs["datapath"]
        if datapath == "netdev":
            datapath += ", userspace TSO " + ("on" if ovs["userspace_tso"] else "OFF")
        line += f"; bridge {ovs['bridge']} uplink {ovs['uplink']} ({datapath}), {ovs['flows']} acsnet flows"
    if "error" in ovs:
        line += f"; {ovs['error']}"
    return line


def run_status(args: argparse.Namespace) -> int:
    from acsnet.ops import host_status  # a third of a second to import: only for this command

    settings, store = open_for_ops(args, STATUS_OPTIONS)
    try:
        report = host_status(store, settings["host_id"], settings["plugin_dir"], Ovsdb(settings["ovsdb"]), settings["bridge"],
                             args.docker)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if report["ok"] else 1
    print(f"host {report['host']}: {'OK' if report['ok'] else 'DEGRADED'}")
    store_state = "connected" if report["store"]["connected"] else "NOT connected"
    print(f"store: {store_state}; live hosts: {', '.join(report['store'].get('live_hosts', [])) or '-'}")
    ovs = report["ovs"]
    print(_ovs_line(ovs))
    docker = report["docker"]
    print(f"dockerd: reachable at {docker['address']} (version {docker['version']})" if docker["reachable"]
          else f"dockerd: NOT reachable: {docker.get('error', docker['address'])}")
    print(f"networks: {report.get('networks', '?')}; endpoints: {report.get('endpoints', '?')}")
    for held in report.get("host_subnets", []):
        print(f"vpc network {held['network']}: host subnet {held['subnet']} on {held['host']}")
    rows = [{"plugin": name, "up": "yes" if p["up"] else "NO", "healthy": "yes" if p["healthy"] else "NO",
             "relay": p.get("relay", "-")} for name, p in report["plugins"].items()]
    columns = ["plugin", "up", "healthy"] + (["relay"] if any(row["relay"] != "-" for row in rows) else [])
    print(table(rows, columns) if rows else "no plugin sockets in " + settings["plugin_dir"])
    return 0 if report["ok"] else 1


def _segment_text(record: dict) -> str:
    """Where a network or endpoint of the host is: its VLAN or VNI; for vpc, the host's subnet."""
    if record["driver"] == "vpc":
        return f"host subnet {record.get('host_subnet') or '-'}"
    return str(record["segment"])


def run_inspect(args: argparse.Namespace) -> int:
    from acsnet.ops import inspect_host, inspect_network  # a third of a second to import: only for this command

    settings, store = open_for_ops(args, INSPECT_OPTIONS)
    try:
        if args.kind == "network":
            report = inspect_network(store, settings["host_id"], args.name, args.docker)
        else:
            report = inspect_host(store, args.name)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.kind == "network" and report["driver"] == "vpc":
        # A vpc network is not one segment: each host routes its own subnet of it.
        print(f"network {report['network']} ({report['id'][:12]}): vpc, subnet {report['subnet']}, "
              f"gateway {report['gateway'] or '-'} on this host, mtu {report['mtu']}" + (", internal" if report.get("internal") else ""))
        for held in report["host_subnets"]:
            print(f"host subnet {held['subnet']}" + (f" and {held['subnet6']}" if held.get("subnet6") else "")
                  + f" on {held['host']} (via {held['underlay']})" + (", left" if held["left"] else ""))
        print(table(report["endpoints"], ["container", "ip", "mac", "host", "port"]))
    elif args.kind == "network":
        number = "VLAN" if report["driver"] == "vlan" else "VNI"
        print(f"network {report['network']} ({report['id'][:12]}): {report['driver']}, {number} {report['segment']}, "
              f"subnet {report['subnet']}, gateway {report['gateway'] or '-'} at {report['gateway_mac'] or 'unknown MAC'}, "
              f"mtu {report['mtu']}" + (", internal" if report.get("internal") else ""))
        columns = ["container", "ip", "mac", "host", "port"] + (["vtep", "published"] if report["driver"] == "vxlan" else [])
        print(table(report["endpoints"], columns))
    else:
        print(f"host {report['host']}: {'alive' if report['alive'] else 'GONE'} (sessions: {', '.join(report['sessions']) or '-'})")
        print(table([{"network": n["network_id"][:12], "driver": n["driver"], "segment": _segment_text(n), "subnet": n["subnet"]}
                      for n in report["networks"]], ["network", "driver", "segment", "subnet"]))
        print(table([{"endpoint": e["endpoint_id"][:12], "driver": e["driver"], "ip": e["ip"], "mac": e["mac"], "segment": _segment_text(e)}
                      for e in report["endpoints"]], ["endpoint", "driver", "ip", "mac", "segment"]))
        print(table(report["addresses"], ["address", "kind", "pool"]))
    return 0


def _audit(args: argparse.Namespace):
    from acsnet.audit import audit  # a third of a second to import: only for this command

    settings, store = open_for_ops(args, AUDIT_OPTIONS)
    ovsdb = Ovsdb(settings["ovsdb"])
    return settings, store, ovsdb, audit(store, ovsdb, driver_bridges(settings), settings["host_id"], args.docker, args.grace)


def driver_bridges(settings: dict) -> dict[str, str]:
    """Each segment driver's OVS bridge on this host."""
    return {"vlan": settings["bridge"], "vxlan": settings["vxlan_bridge"], "vpc": settings["bridge"]}


def run_audit(args: argparse.Namespace) -> int:
    _settings, store, _ovsdb, findings = _audit(args)
    store.close()
    if args.json:
        print(json.dumps([f.to_json() for f in findings], indent=2))
    else:
        print(table([f.to_json() for f in findings], ["kind", "subject", "detail"]) if findings else "no inconsistency found")
    return 1 if findings else 0


def run_gc(args: argparse.Namespace) -> int:
    from acsnet.audit import DEAD_HOST_KINDS, repair  # a third of a second to import: only for this command

    settings, store, ovsdb, findings = _audit(args)
    try:
        if args.apply:
            done = repair(store, ovsdb, driver_bridges(settings), settings["host_id"], findings, dead_hosts=args.dead_hosts)
        else:
            done = [f"{f.kind} {f.subject}: would {f.repair}" for f in findings
                    if f.kind not in DEAD_HOST_KINDS or args.dead_hosts]
    finally:
        store.close()
    if args.json:
        print(json.dumps({"applied": args.apply, "repairs": done}, indent=2))
    else:
        print("\n".join(done) if done else "nothing to repair")
        if done and not args.apply:
            print("(dry run: run again with --apply)")
    return 0


def run_host_leave(args: argparse.Namespace) -> int:
    # the vpc driver's modules (a quarter of a second): only for this command
    from acsnet.plugins.vpc.membership import Membership
    from acsnet.plugins.vpc.routes import provider_from_settings

    settings, store = open_for_ops(args, HOST_LEAVE_OPTIONS)
    try:
        own = Membership(store, settings["host_id"], "").leave()
        provider_from_settings(settings).withdraw(own)
    finally:
        store.close()
    print(f"left: {', '.join(f'{h.subnet} of {h.network}' for h in own)}" if own else "this host holds no vpc subnet")
    return 0


def run_ip_list(args: argparse.Namespace) -> int:
    from acsnet.ipam import retention  # the IPAM's modules: only for this command

    _settings, store = open_for_ops(args, IP_OPTIONS)
    try:
        rows = [dataclasses.asdict(a) for a in retention.addresses(store, args.app)]
    finally:
        store.close()
    print(json.dumps(rows, indent=2) if args.json else table(rows, ["app", "subnet", "ip", "state"]))
    return 0


def run_ip_release(args: argparse.Namespace) -> int:
    from acsnet.ipam import retention  # the IPAM's modules: only for this command

    settings, store = open_for_ops(args, IP_OPTIONS)
    try:
        done = retention.release(store, args.app, args.ip, timeout=settings["store_timeout"])
    finally:
        store.close()
    print(json.dumps({"released": done}) if args.json else (f"released {', '.join(done)}" if done else "nothing to release"))
    return 0


