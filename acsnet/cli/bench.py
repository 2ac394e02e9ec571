"""`acsnet bench`: the netperf table and control-plane figures (acsnet/benchmarks/netperf.py), whose
parser owns its options: main() hands it what follows `bench`."""

from __future__ import annotations

import argparse

PROG = "acsnet bench"


def add_commands(commands) -> None:
    bench = commands.add_parser(
        "bench", help="the netperf table and control-plane figures on a 3-host lab: python -m acsnet.benchmarks.netperf (same options)",
        add_help=False)  # --help is the benchmark's
    bench.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from acsnet.benchmarks import netperf  # the benchmarks (and matplotlib): only when asked for

    return netperf.main(args.options, prog=PROG)
