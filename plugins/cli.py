"""The `acsnet` command."""

from __future__ import annotations

import argparse
import logging
import sys

import json
import os
import subprocess

from plugins import __version__
from plugins.config import COMMON_OPTIONS, HOST_SETUP_OPTIONS, IPAM_OPTIONS, add_options, resolve
from plugins.errors import AcsnetError

log = logging.getLogger("acsnet")

# Plugin names dockerd knows each process by (`-d NAME`, `--ipam-driver NAME`): the socket's name.
PLUGIN_NAMES = {"ipam": "acsnet", "vlan": "vlan", "vxlan": "vxlan", "vpc": "vpc"}
DEFAULT_LAB_DIR = "/var/lib/acsnet/lab"
DEFAULT_LAB_PREFIX = "acsnet-lab"


def add_docker_option(command: argparse.ArgumentParser, purpose: str) -> None:
    """--docker, one form for every command (plugins/docker_api.py)."""
    from plugins.docker_api import DEFAULT_DOCKER, parse_docker_address

    def docker_address(text: str):
        try:
            return parse_docker_address(text)
        except AcsnetError as e:
            raise argparse.ArgumentTypeError(e.message) from None

    command.add_argument("--docker", type=docker_address, default=DEFAULT_DOCKER, metavar="ADDRESS",
                         help=f"{purpose}: unix:///path, unix:/path or a path (default {DEFAULT_DOCKER})")


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

    setup = commands.add_parser(
        "host-setup",
        help="put the uplink NIC into the OVS bridge as a trunk, moving its addresses and routes (idempotent)",
        description="Make the host layout the vlan and vxlan drivers need: the uplink becomes a trunk port of "
        "the bridge, whose own port takes the uplink's MAC, addresses and routes.",
    )
    setup.add_argument("--config", help="config file with an [acsnet] section [env ACSNET_CONFIG; default /etc/acsnet/acsnet.conf]")
    add_options(setup, HOST_SETUP_OPTIONS)
    setup.set_defaults(run=run_host_setup)

    status = commands.add_parser("status", help="this host: plugins up, store and OVS reachable, networks, endpoints, flows")
    inspect = commands.add_parser("inspect", help="a network's endpoints across all hosts, or one host's state")
    inspect.add_argument("kind", choices=("network", "host"))
    inspect.add_argument("name", help="network name or id (resolved by the local dockerd), or host id")
    for command in (status, inspect):
        command.add_argument("--config", help="config file with an [acsnet] section")
        add_docker_option(command, "the local dockerd (network names; status says whether it answers)")
        command.add_argument("--json", action="store_true", help="machine-readable output")
        add_options(command, COMMON_OPTIONS)
    status.set_defaults(run=run_status)
    inspect.set_defaults(run=run_inspect)

    audit = commands.add_parser("audit", help="list every inconsistency between the store, OVS and dockerd on this host")
    gc = commands.add_parser("gc", help="repair what audit finds (a dry run unless --apply)")
    gc.add_argument("--apply", action="store_true", help="make the repairs (default: only say what would be done)")
    gc.add_argument("--dead-hosts", action="store_true", help="also remove segment records of hosts that are not alive, and release their addresses")
    for command in (audit, gc):
        command.add_argument("--config", help="config file with an [acsnet] section")
        add_docker_option(command, "the local dockerd (its containers' endpoints and addresses)")
        command.add_argument("--grace", type=float, default=60.0,
                             help="seconds an unused address may be held before it counts as leaked (default 60)")
        command.add_argument("--json", action="store_true", help="machine-readable output")
        add_options(command, COMMON_OPTIONS)
    audit.set_defaults(run=run_audit)
    gc.set_defaults(run=run_gc)

    bench = commands.add_parser(
        "bench", help="the netperf table and control-plane figures on a 3-host lab: python -m benchmarks.netperf (same options)", add_help=False)
    bench.set_defaults(run=run_bench)  # its options are the benchmark's: see main()

    leave = commands.add_parser(
        "host-leave", help="this host leaves its vpc networks: routes withdrawn everywhere (stop the vpc plugin first)")
    leave.add_argument("--config", help="config file with an [acsnet] section")
    add_options(leave, COMMON_OPTIONS)
    leave.set_defaults(run=run_host_leave)

    front = commands.add_parser(
        "front", help="a Docker API endpoint in front of dockerd that turns IP labels into IPAM config",
        description="Serve the Docker Engine API for clients (DOCKER_HOST=...), passing everything to dockerd "
        "untouched except container creation: label com.docker.network.endpoint.ipv4address=IP (and ipv6address) "
        "becomes the container's --ip on its network.")
    front.add_argument("--listen", action="append", required=True,
                       help="unix:///run/acsnet/docker.sock or tcp://ADDR:PORT (repeatable; TCP needs --tls-* or --insecure)")
    add_docker_option(front, "the dockerd it fronts")
    front.add_argument("--tls-cert", help="server certificate for TCP listeners (PEM)")
    front.add_argument("--tls-key", help="its private key (PEM)")
    front.add_argument("--tls-ca", help="CA that client certificates must be signed by")
    front.add_argument("--insecure", action="store_true", help="allow TCP without TLS (anyone reaching it controls dockerd)")
    front.add_argument("--config", help="config file with an [acsnet] section (its store enables IP retention)")
    add_options(front, [o for o in COMMON_OPTIONS if o.name in ("store", "store_timeout")])
    front.add_argument("--retention", type=float, default=24 * 3600,
                       help="seconds an application's address is kept after its container goes (default 24 h)")
    front.add_argument("--request-timeout", type=float, default=30.0,
                       help="seconds a client has for its TLS handshake, and again for its request head (default %(default)s)")
    front.set_defaults(run=run_front)

    ip = commands.add_parser("ip", help="addresses kept for applications (IP retention of acsnet front)")
    ip_commands = ip.add_subparsers(dest="ip_command", required=True, metavar="IP_COMMAND")
    ip_list = ip_commands.add_parser("list", help="an application's addresses: in use, or retained until when")
    ip_release = ip_commands.add_parser("release", help="forget an application's addresses, freeing those not in use")
    ip_release.add_argument("--ip", help="only this address")
    for command in (ip_list, ip_release):
        command.add_argument("--app", required=command is ip_release, help="the application (label acsnet.app)")
        command.add_argument("--config", help="config file with an [acsnet] section")
        command.add_argument("--json", action="store_true", help="machine-readable output")
        add_options(command, COMMON_OPTIONS)
    ip_list.set_defaults(run=run_ip_list)
    ip_release.set_defaults(run=run_ip_release)

    units = commands.add_parser("install-units", help="install the systemd units and an example /etc/acsnet/acsnet.conf")
    units.add_argument("--dest", default="/etc/systemd/system", help="where units go (default /etc/systemd/system)")
    units.add_argument("--config-dir", default="/etc/acsnet", help="where acsnet.conf goes if absent (default /etc/acsnet)")
    units.set_defaults(run=run_install_units)

    lab = commands.add_parser(
        "lab",
        help="a multi-host lab on this machine (root): simulated hosts, switch, ZooKeeper, dockerd",
        description="Simulated hosts (network namespaces, each with its own OVS, dockerd and acsnet plugins) "
        "cabled to a simulated switch, with ZooKeeper on a services node. Needs root.",
    )
    lab.add_argument("--workdir", default=os.environ.get("ACSNET_LAB_DIR", DEFAULT_LAB_DIR),
                     help=f"where the lab keeps its state and logs [env ACSNET_LAB_DIR; default {DEFAULT_LAB_DIR}]")
    lab.add_argument("--prefix", default=os.environ.get("ACSNET_LAB_PREFIX", DEFAULT_LAB_PREFIX),
                     help=f"name prefix of the lab's namespaces [env ACSNET_LAB_PREFIX; default {DEFAULT_LAB_PREFIX}]")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True, metavar="LAB_COMMAND")
    up = lab_commands.add_parser("up", help="build the lab")
    up.add_argument("--hosts", type=int, default=2, help="number of simulated hosts (default 2)")
    up.add_argument("--scope", choices=("local", "global"), default="local",
                    help="global: dockerd uses a cluster store (etcd) so networks are cluster-wide")
    up.add_argument("--link-rate", default=None, help="shape each host uplink, e.g. 1gbit (default: unshaped)")
    up.add_argument("--zookeepers", type=int, choices=(1, 3), default=1, help="ZooKeeper servers: 1, or an ensemble of 3")
    up.add_argument("--engine", choices=("20.10", "26"), default="20.10",
                    help="the hosts' Docker Engine: 20.10 (Debian 12's docker.io) or 26 (Debian 13's, unpacked "
                    "by .ci/install under .cache/trixie/; local scope only) (default 20.10)")
    up.set_defaults(run=run_lab_up)
    lab_commands.add_parser("down", help="remove everything the lab made (safe to run twice)").set_defaults(run=run_lab_down)
    status = lab_commands.add_parser("status", help="what is up and where the logs are")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=run_lab_status)
    run_in = lab_commands.add_parser("exec", help="run a command on a lab node: acsnet lab exec h1 -- docker ps")
    run_in.add_argument("node", help="h1, h2, ... or sw, svc, out, gw")
    run_in.add_argument("argv", nargs=argparse.REMAINDER, help="the command, after --")
    run_in.set_defaults(run=run_lab_exec)
    demo = lab_commands.add_parser("demo", help="bring a lab up if none is, run the reference scenarios, print PASS/FAIL")
    demo.add_argument("--hosts", type=int, default=2, help="hosts of a lab brought up by the demo (default 2)")
    demo.add_argument("--engine", choices=("20.10", "26"), default=None,
                      help="Docker Engine of a lab brought up by the demo (default 20.10); a lab already up "
                      "must run this engine")
    demo.set_defaults(run=run_lab_demo)
    return parser


def _lab(args: argparse.Namespace):
    from plugins.lab.topology import Lab

    return Lab(args.workdir, args.prefix)


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def run_lab_up(args: argparse.Namespace) -> int:
    _lab(args).up(args.hosts, args.scope, args.link_rate, progress=_progress, zookeepers=args.zookeepers,
                  engine=args.engine)
    return 0


def run_lab_down(args: argparse.Namespace) -> int:
    removed = _lab(args).down(progress=_progress)
    print("removed: " + (", ".join(removed) if removed else "nothing (no lab was up)"))
    return 0


def run_lab_status(args: argparse.Namespace) -> int:
    status = _lab(args).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0 if status["up"] else 1
    if "nodes" not in status:
        print(f"no lab (workdir {status['workdir']}); start one with 'acsnet lab up'")
        return 1
    print(f"lab {status['prefix']}: {'up' if status['up'] else 'DEGRADED'}, scope {status['scope']}, "
          f"Docker {status['engine']} ({status['dockerd']}), "
          f"hosts {', '.join(status['hosts'])}, store {status['zookeeper']}, link rate {status['link_rate'] or 'unshaped'}")
    for name, node in status["nodes"].items():
        state = "running" if node["running"] else "DOWN"
        print(f"  {name:4} {state:8} {', '.join(node['processes']) or '-'}")
        print(f"       logs: {node['logs']}")
    return 0 if status["up"] else 1


def run_lab_exec(args: argparse.Namespace) -> int:
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise AcsnetError("nothing to run: acsnet lab exec NODE -- COMMAND [ARGS...]")
    lab = _lab(args)
    node = lab.node(args.node)
    return subprocess.run(node.command(argv), env=lab.exec_env()).returncode


def run_lab_demo(args: argparse.Namespace) -> int:
    from plugins.lab.demo import run_demo

    lab = _lab(args)
    if not lab.is_up:
        engine = args.engine or "20.10"
        print(f"no lab is up: bringing one up with {args.hosts} hosts and Docker {engine}", flush=True)
        lab.down()
        lab.up(args.hosts, "local", None, progress=_progress, engine=engine)
    elif args.engine and args.engine != lab.engine:
        raise AcsnetError(f"the lab that is up runs Docker {lab.engine}, not {args.engine}: "
                          f"run 'acsnet lab down' first, or the demo without --engine")
    return 0 if run_demo(lab) else 1


def run_serve(args: argparse.Namespace) -> int:
    from plugins.service import configure_logging, serve

    settings = resolve(args, COMMON_OPTIONS + IPAM_OPTIONS)
    configure_logging(settings["log_level"])
    from ipam.driver import AcsnetIpam, parse_supernets
    from plugins.store import check_store_url

    from plugins.metrics import check_tcp_settings

    name = PLUGIN_NAMES[args.plugin]
    check_store_url(settings["store"])
    check_tcp_settings(settings)
    supernets = parse_supernets(
        settings["default_pool"], settings["default_pool_size"],
        settings["default_pool_v6"], settings["default_pool_size_v6"],
    )
    if args.plugin in ("vlan", "vxlan", "vpc"):
        from ovsctl.host_setup import host_layout
        from ovsctl.ovsdb import Ovsdb

        host_layout(Ovsdb(settings["ovsdb"]), settings["bridge"])  # refuse to start on a host not set up
    opened = []  # stores of this worker
    agents = []  # datapath agents of this worker: stopped before their store closes

    def app_factory():
        from plugins.metrics import PluginMetrics
        from plugins.server import create_app
        from plugins.store import open_store

        metrics = PluginMetrics(name)
        store = open_store(settings["store"], timeout=settings["store_timeout"])
        store.observer = metrics.observe_store
        metrics.store_connected.set_function(lambda: 1 if store.connected else 0)
        opened.append(store)
        if settings["metrics_address"]:
            metrics.serve_tcp(settings["metrics_address"], cert=settings["metrics_tls_cert"],
                              key=settings["metrics_tls_key"], ca=settings["metrics_tls_ca"])
        try:
            store.register_host(settings["host_id"], name, {"host_id": settings["host_id"]})
        except AcsnetError as e:  # never exit over the store: it is retried when the session comes
            log.warning("plugin=%s liveness not registered yet: %s", name, e.message)

        def store_health() -> dict:
            return {"ok": store.connected, "store": "connected" if store.connected else "disconnected",
                    "host_id": settings["host_id"]}

        if args.plugin == "ipam":
            ipam = AcsnetIpam(store, settings["host_id"], supernets=supernets, timeout=settings["store_timeout"])
            return create_app(name=name, ipam_driver=ipam, metrics=metrics, health=store_health)
        build = {"vlan": build_vlan_driver, "vxlan": build_vxlan_driver, "vpc": build_vpc_driver}[args.plugin]
        driver = build(store, settings, metrics)
        agents.append(driver.agent)

        def driver_health() -> dict:
            report = store_health()
            ovsdb_ok = driver.agent.ovsdb.reachable()
            return {**report, "ok": report["ok"] and ovsdb_ok, "ovsdb": "reachable" if ovsdb_ok else "unreachable",
                    "bridge": driver.agent.bridge, "endpoints": len(driver.agent.endpoints)}

        return create_app(name=name, network_driver=driver, metrics=metrics, health=driver_health)

    def close_store():
        for agent in agents:
            agent.stop()
        for store in opened:
            store.close()

    serve(name, app_factory, plugin_dir=settings["plugin_dir"], threads=settings["threads"],
          log_level=settings["log_level"], on_exit=close_store)
    return 0


def build_vlan_driver(store, settings, metrics=None):
    from ovsctl.host_setup import host_layout
    from ovsctl.ovsdb import Ovsdb
    from plugins.vlan.agent import VlanAgent
    from plugins.vlan.driver import VlanDriver

    ovsdb = Ovsdb(settings["ovsdb"])
    layout = host_layout(ovsdb, settings["bridge"])
    agent = VlanAgent(store, ovsdb, settings["host_id"], layout.bridge, layout.uplink,
                      userspace_datapath=layout.datapath == "netdev", cluster_wide=settings["scope"] == "global",
                      orphan_grace=settings["orphan_grace"], metrics=metrics)
    agent.start()
    return VlanDriver(agent, settings["scope"])


def underlay_address(settings: dict, layout) -> str:
    """The host's underlay address (--vtep-ip, else the host bridge's: host-setup moved it from the uplink)."""
    from ovsctl import links

    if settings["vtep_ip"]:
        return settings["vtep_ip"]
    found = [a for a, _ in links.addresses(layout.bridge) if ":" not in a]
    if not found:
        raise AcsnetError(f"bridge {layout.bridge} has no IPv4 address to be this host's underlay address: give --vtep-ip")
    return found[0]


def build_vpc_driver(store, settings, metrics=None):
    from ovsctl.host_setup import host_layout
    from ovsctl.ovsdb import Ovsdb
    from plugins.vpc.agent import VpcAgent
    from plugins.vpc.driver import VpcDriver
    from plugins.vpc.routes import provider_from_settings

    ovsdb = Ovsdb(settings["ovsdb"])
    layout = host_layout(ovsdb, settings["bridge"])
    agent = VpcAgent(store, ovsdb, settings["host_id"], settings["bridge"], layout.uplink,
                     underlay=underlay_address(settings, layout), datapath=layout.datapath,
                     routes=provider_from_settings(settings), cluster_wide=settings["scope"] == "global",
                     orphan_grace=settings["orphan_grace"], metrics=metrics)
    agent.start()
    return VpcDriver(agent, settings["scope"])


def run_bench(args: argparse.Namespace) -> int:
    # benchmarks/ is not installed: it is found in the checkout this acsnet runs from (an editable
    # install's `acsnet` script does not have the checkout on sys.path).
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(checkout, "benchmarks", "netperf.py")) and checkout not in sys.path:
        sys.path.append(checkout)
    try:
        from benchmarks import netperf
    except ImportError:
        raise AcsnetError("acsnet bench runs from a source checkout (benchmarks/ is not installed)") from None
    return netperf.main(args.options)


def run_host_leave(args: argparse.Namespace) -> int:
    from plugins.vpc.membership import Membership
    from plugins.vpc.routes import provider_from_settings

    settings, store = _open_for_ops(args)
    try:
        own = Membership(store, settings["host_id"], "").leave()
        provider_from_settings(settings).withdraw(own)
    finally:
        store.close()
    print(f"left: {', '.join(f'{h.subnet} of {h.network}' for h in own)}" if own else "this host holds no vpc subnet")
    return 0


def build_vxlan_driver(store, settings, metrics=None):
    from ovsctl.host_setup import host_layout
    from ovsctl.ovsdb import Ovsdb
    from plugins.vxlan.agent import VxlanAgent
    from plugins.vxlan.driver import VxlanDriver

    ovsdb = Ovsdb(settings["ovsdb"])
    layout = host_layout(ovsdb, settings["bridge"])
    vtep = underlay_address(settings, layout)
    agent = VxlanAgent(store, ovsdb, settings["host_id"], settings["vxlan_bridge"], layout.uplink, vtep=vtep,
                       datapath=layout.datapath, cluster_wide=settings["scope"] == "global",
                       orphan_grace=settings["orphan_grace"], metrics=metrics)
    agent.start()
    return VxlanDriver(agent, settings["scope"])


def run_ip_list(args: argparse.Namespace) -> int:
    import dataclasses

    from ipam import retention

    _settings, store = _open_for_ops(args)
    try:
        rows = [dataclasses.asdict(a) for a in retention.addresses(store, args.app)]
    finally:
        store.close()
    print(json.dumps(rows, indent=2) if args.json else _table(rows, ["app", "subnet", "ip", "state"]))
    return 0


def run_ip_release(args: argparse.Namespace) -> int:
    from ipam import retention

    settings, store = _open_for_ops(args)
    try:
        done = retention.release(store, args.app, args.ip, timeout=settings["store_timeout"])
    finally:
        store.close()
    print(json.dumps({"released": done}) if args.json else (f"released {', '.join(done)}" if done else "nothing to release"))
    return 0


def run_front(args: argparse.Namespace) -> int:
    import ssl
    import threading

    from plugins.front.proxy import Front, listen

    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_ca:
            tls.load_verify_locations(args.tls_ca)
            tls.verify_mode = ssl.CERT_REQUIRED
    for url in args.listen:
        if url.startswith("tcp://") and tls is None and not args.insecure:
            raise AcsnetError(f"{url}: a TCP listener needs --tls-cert/--tls-key (and --tls-ca), or --insecure")
    settings = resolve(args, [o for o in COMMON_OPTIONS if o.name in ("store", "store_timeout")])
    store = None
    if settings["store"]:  # the IPAM's store: IP retention for containers labelled acsnet.app=NAME
        from plugins.store import check_store_url, open_store

        check_store_url(settings["store"])
        store = open_store(settings["store"], timeout=settings["store_timeout"])
    front = Front(args.docker, store, args.retention, settings["store_timeout"])
    if args.request_timeout <= 0:
        raise AcsnetError(f"--request-timeout must be positive, not {args.request_timeout:g}")
    servers = [listen(url, front, tls=tls, request_timeout=args.request_timeout) for url in args.listen]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log.info("acsnet front on %s for %s", ", ".join(args.listen), args.docker)
    from plugins.docker_api import DockerUnreachable

    try:
        args.docker.get_json("/version", timeout=5.0)
    except DockerUnreachable as e:  # served all the same: dockerd may be (re)starting; each request says so
        log.warning("%s", e.message)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()
    return 0


def run_host_setup(args: argparse.Namespace) -> int:
    from ovsctl.host_setup import setup_host
    from ovsctl.ovsdb import Ovsdb

    settings = resolve(args, HOST_SETUP_OPTIONS)
    if not settings["uplink"]:
        raise AcsnetError("no uplink: give --uplink IFACE (or uplink = IFACE in the config file)")
    done = setup_host(Ovsdb(settings["ovsdb"]), settings["uplink"], settings["bridge"], settings["datapath"],
                      userspace_tso=not settings["no_userspace_tso"])
    print("host set up: " + ("; ".join(done) if done else "nothing to do, already set up"))
    return 0


def _open_for_ops(args: argparse.Namespace):
    from plugins.store import open_store

    settings = resolve(args, COMMON_OPTIONS)
    return settings, open_store(settings["store"], timeout=settings["store_timeout"])


def _table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


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
    from ovsctl.ovsdb import Ovsdb
    from plugins.ops import host_status

    settings, store = _open_for_ops(args)
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
    rows = [{"plugin": name, "up": "yes" if p["up"] else "NO", "healthy": "yes" if p["healthy"] else "NO"}
            for name, p in report["plugins"].items()]
    print(_table(rows, ["plugin", "up", "healthy"]) if rows else "no plugin sockets in " + settings["plugin_dir"])
    return 0 if report["ok"] else 1


def run_inspect(args: argparse.Namespace) -> int:
    from plugins.ops import inspect_host, inspect_network

    settings, store = _open_for_ops(args)
    try:
        if args.kind == "network":
            report = inspect_network(store, settings["host_id"], args.name, args.docker)
        else:
            report = inspect_host(store, args.name)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.kind == "network":
        number = "VLAN" if report["driver"] == "vlan" else "VNI"
        print(f"network {report['network']} ({report['id'][:12]}): {report['driver']}, {number} {report['segment']}, "
              f"subnet {report['subnet']}, gateway {report['gateway'] or '-'} at {report['gateway_mac'] or 'unknown MAC'}, "
              f"mtu {report['mtu']}" + (", internal" if report.get("internal") else ""))
        columns = ["container", "ip", "mac", "host", "port"] + (["vtep", "published"] if report["driver"] == "vxlan" else [])
        print(_table(report["endpoints"], columns))
    else:
        print(f"host {report['host']}: {'alive' if report['alive'] else 'GONE'} (sessions: {', '.join(report['sessions']) or '-'})")
        print(_table([{"network": n["network_id"][:12], "driver": n["driver"], "segment": n["segment"], "subnet": n["subnet"]}
                      for n in report["networks"]], ["network", "driver", "segment", "subnet"]))
        print(_table([{"endpoint": e["endpoint_id"][:12], "driver": e["driver"], "ip": e["ip"], "mac": e["mac"], "segment": e["segment"]}
                      for e in report["endpoints"]], ["endpoint", "driver", "ip", "mac", "segment"]))
        print(_table(report["addresses"], ["address", "kind", "pool"]))
    return 0


def _audit(args: argparse.Namespace):
    from ovsctl.ovsdb import Ovsdb
    from plugins.audit import audit

    settings, store = _open_for_ops(args)
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
        print(_table([f.to_json() for f in findings], ["kind", "subject", "detail"]) if findings else "no inconsistency found")
    return 1 if findings else 0


def run_gc(args: argparse.Namespace) -> int:
    from plugins.audit import DEAD_HOST_KINDS, repair

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


def run_install_units(args: argparse.Namespace) -> int:
    from plugins.units import install_units

    for path in install_units(args.dest, args.config_dir):
        print(f"installed {path}")
    print("then: systemctl daemon-reload && systemctl enable --now acsnet-host-setup acsnet-ipam acsnet-vlan")
    return 0


def main(argv: list[str] | None = None) -> int:
    from plugins.lab.host import LabError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.options = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args)
    except AcsnetError as e:
        print(f"acsnet {args.command}: {e.message}", file=sys.stderr)
        return 1
    except LabError as e:
        print(f"acsnet {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except ValueError as e:  # bad option values (store URL, pools) found while starting
        print(f"acsnet {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
