"""What the running ovs-vswitchd can do, asked of it over its control socket (`ovs-appctl version`):
the daemon's version, not the installed tools' (a host's daemon and this machine's tools may differ,
as on the lab's Debian 13 hosts: OVS 3.5 running, 3.1 tools)."""

from __future__ import annotations

import os
import re

from acsnet.errors import DatapathError
from acsnet.ovsctl.command import run

RUNDIR = "/run/openvswitch"
# The first OVS shown here to segment, in software, a TSO packet sent out of a tunnel port (3.1 drops
# it): benchmarks/netperf.py --host-os machine,debian13, and the soft-segmentation coverage counter.
TUNNEL_TSO_SINCE = (3, 5)


def control_socket(rundir: str = RUNDIR) -> str:
    """ovs-vswitchd's unixctl socket: OVS's default name (with the daemon's pid), else the plain name
    a daemon started with --unixctl=RUNDIR/ovs-vswitchd.ctl has (the lab's)."""
    candidates = []
    try:
        with open(os.path.join(rundir, "ovs-vswitchd.pid")) as f:
            candidates.append(os.path.join(rundir, f"ovs-vswitchd.{int(f.read().strip())}.ctl"))
    except (OSError, ValueError):
        pass
    candidates.append(os.path.join(rundir, "ovs-vswitchd.ctl"))
    return next((path for path in candidates if os.path.exists(path)), candidates[0])


def version(rundir: str = RUNDIR) -> tuple[int, int]:
    """The running ovs-vswitchd's (major, minor)."""
    out = run(["ovs-appctl", "-t", control_socket(rundir), "version"], timeout=5)
    found = re.search(r"\(Open vSwitch\) (\d+)\.(\d+)", out)
    if not found:
        raise DatapathError(f"ovs-vswitchd answered 'version' with no version: {out.strip()[:80]!r}")
    return int(found.group(1)), int(found.group(2))


def segments_tunneled_tso(rundir: str = RUNDIR) -> bool:
    """Whether the running ovs-vswitchd (userspace datapath) takes TSO packets to a tunnel port."""
    return version(rundir) >= TUNNEL_TSO_SINCE
