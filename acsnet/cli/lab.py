"""`acsnet lab`: a multi-host lab on this machine (acsnet/lab/)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from acsnet.errors import AcsnetError
from acsnet.lab.demo import run_demo
from acsnet.lab.building import DEFAULT_UNDERLAY_MTU, MAX_UNDERLAY_MTU, MIN_UNDERLAY_MTU
from acsnet.lab.host import DEFAULT_HOST_OS, HOST_OSES
from acsnet.lab.topology import DEFAULT_PREFIX, DEFAULT_WORKDIR, Lab


def add_commands(commands) -> None:
    lab = commands.add_parser(
        "lab",
        help="a multi-host lab on this machine (root): simulated hosts, switch, ZooKeeper, dockerd",
        description="Simulated hosts (network namespaces, each with its own OVS, dockerd and acsnet plugins) "
        "cabled to a simulated switch, with ZooKeeper on a services node. Needs root.",
    )
    lab.add_argument("--workdir", default=os.environ.get("ACSNET_LAB_DIR", DEFAULT_WORKDIR),
                     help=f"where the lab keeps its state and logs [env ACSNET_LAB_DIR; default {DEFAULT_WORKDIR}]")
    lab.add_argument("--prefix", default=os.environ.get("ACSNET_LAB_PREFIX", DEFAULT_PREFIX),
                     help=f"name prefix of the lab's namespaces [env ACSNET_LAB_PREFIX; default {DEFAULT_PREFIX}]")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True, metavar="LAB_COMMAND")
    up = lab_commands.add_parser("up", help="build the lab")
    up.add_argument("--hosts", type=int, default=2, help="number of simulated hosts (default 2)")
    up.add_argument("--scope", choices=("local", "global"), default="local",
                    help="global: dockerd uses a cluster store (etcd) so networks are cluster-wide")
    up.add_argument("--link-rate", default=None, help="shape each host uplink, e.g. 1gbit (default: unshaped)")
    up.add_argument("--underlay-mtu", type=int, default=DEFAULT_UNDERLAY_MTU,
                    help=f"the MTU of every cable of the lab network, {MIN_UNDERLAY_MTU} to {MAX_UNDERLAY_MTU}: 9000 for "
                    f"jumbo frames, on which the vxlan driver's networks get 8950 (default {DEFAULT_UNDERLAY_MTU})")
    up.add_argument("--zookeepers", type=int, choices=(1, 3), default=1, help="ZooKeeper servers: 1, or an ensemble of 3")
    up.add_argument("--engine", choices=("20.10", "26"), default="20.10",
                    help="the hosts' Docker Engine: 20.10 (Debian 12's docker.io) or 26 (Debian 13's, unpacked "
                    "by .ci/install under .cache/trixie/; local scope only) (default 20.10)")
    up.add_argument("--host-os", choices=tuple(HOST_OSES), default=DEFAULT_HOST_OS,
                    help="what each host runs dockerd, containerd, runc and Open vSwitch from: machine (this "
                    "machine's own programs) or debian13 (a Debian 13 root filesystem, debootstrap'd once into "
                    ".cache/rootfs: dockerd 26.1, OVS 3.5; needs --engine 26) (default machine)")
    up.add_argument("--plugins", choices=("processes", "managed"), default="processes",
                    help="how the hosts run acsnet: 'acsnet serve' processes (plugins vlan, vxlan, vpc, acsnet), or "
                    "Docker managed plugins made by 'acsnet plugin build' (acsnet/vlan, ..., acsnet/ipam) (default processes)")
    up.add_argument("--swarm", action="store_true",
                    help="make the hosts a swarm: h1 its manager, the others workers (needs --plugins managed)")
    up.add_argument("--relay", action="store_true",
                    help="run a store relay ('acsnet relay') on svc and start the hosts' plugins with --relay: they "
                    "follow their segments and the live hosts through it (managed plugins: ACSNET_RELAY)")
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
    demo.add_argument("--host-os", choices=tuple(HOST_OSES), default=None,
                      help="host OS of a lab brought up by the demo (default machine); a lab already up must run it")
    demo.add_argument("--swarm", action="store_true",
                      help="the swarm scenario: a lab brought up by the demo runs the managed plugins in a swarm "
                      "(as 'lab up --plugins managed --swarm'); a lab already up must be one")
    demo.add_argument("--relay", action="store_true",
                      help="a lab brought up by the demo has a store relay (as 'lab up --relay'), and the vxlan "
                      "scenario checks that the hosts follow through it; a lab already up must have one")
    demo.set_defaults(run=run_lab_demo)


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(args.workdir, args.prefix)


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def run_lab_up(args: argparse.Namespace) -> int:
    _lab(args).up(args.hosts, args.scope, args.link_rate, progress=_progress, zookeepers=args.zookeepers,
                  engine=args.engine, host_os=args.host_os, plugins=args.plugins, swarm=args.swarm,
                  underlay_mtu=args.underlay_mtu, relay=args.relay)
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
          f"Docker {status['engine']} ({status['dockerd']}), hosts' OS {status['host_os']}, "
          f"hosts {', '.join(status['hosts'])}, store {status['zookeeper']}, link rate {status['link_rate'] or 'unshaped'}, "
          f"underlay MTU {status['underlay_mtu']}" + (f", store relay {status['relay']}" if status.get("relay") else ""))
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
    # A host with its own OS (--host-os debian13) runs the command from it, as logging into it would.
    return subprocess.run(node.command_in_os(argv), env=lab.exec_env()).returncode


def run_lab_demo(args: argparse.Namespace) -> int:
    lab = _lab(args)
    if not lab.is_up:
        engine = args.engine or "20.10"
        host_os = args.host_os or DEFAULT_HOST_OS
        print(f"no lab is up: bringing one up with {args.hosts} hosts ({host_os}) and Docker {engine}"
              + (", managed plugins in a swarm" if args.swarm else "") + (", a store relay" if args.relay else ""),
              flush=True)
        lab.down()
        lab.up(args.hosts, "local", None, progress=_progress, engine=engine, host_os=host_os,
               plugins="managed" if args.swarm else "processes", swarm=args.swarm, relay=args.relay)
    elif args.engine and args.engine != lab.engine:
        raise AcsnetError(f"the lab that is up runs Docker {lab.engine}, not {args.engine}: "
                          f"run 'acsnet lab down' first, or the demo without --engine")
    elif args.host_os and args.host_os != lab.host_os:
        raise AcsnetError(f"the lab that is up runs its hosts from {lab.host_os}, not {args.host_os}: "
                          f"run 'acsnet lab down' first, or the demo without --host-os")
    elif args.swarm and not (lab.state() or {}).get("swarm"):
        raise AcsnetError("the lab that is up is no swarm: run 'acsnet lab down' first, or the demo without --swarm")
    elif args.relay and not (lab.state() or {}).get("relay"):
        raise AcsnetError("the lab that is up has no store relay: run 'acsnet lab down' first, or the demo without --relay")
    return 0 if run_demo(lab) else 1
