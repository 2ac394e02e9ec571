"""`acsnet lab demo`: the reference scenarios of what has landed, run on a lab, each step printed, then a
PASS/FAIL summary. Every scenario removes what it made, at its start too (after a run that was
killed), so the demo can run again on the same lab."""

from __future__ import annotations

from typing import Callable

from acsnet.lab.demo.fault import fault_scenario
from acsnet.lab.demo.front import front_scenario
from acsnet.lab.demo.networks import ipam_scenario, underlay_scenario, vlan_scenario, vpc_scenario, vxlan_scenario
from acsnet.lab.demo.steps import DemoRun
from acsnet.lab.demo.swarm import swarm_scenario
from acsnet.lab.topology import Lab

SCENARIOS = [underlay_scenario, ipam_scenario, vlan_scenario, vxlan_scenario, vpc_scenario, front_scenario, fault_scenario]
# A lab of managed plugins in a swarm (`lab up --plugins managed --swarm`): its drivers are the swarm's.
SWARM_SCENARIOS = [underlay_scenario, swarm_scenario]


def run_demo(lab: Lab, out: Callable[[str], None] = print) -> bool:
    run = DemoRun(out)
    swarm = (lab.state() or {}).get("swarm", False)
    out(f"acsnet lab demo on {lab.prefix} ({', '.join(lab.hosts())}), Docker {lab.engine}"
        + (f", hosts from {lab.host_os}" if lab.host_os != "machine" else "")
        + (", a swarm of managed plugins" if swarm else ""))
    for scenario in SWARM_SCENARIOS if swarm else SCENARIOS:
        try:
            scenario(lab, run)
        except Exception as e:  # outside any step (a lab call that broke): the next scenario still runs
            run.record(f"{scenario.__name__} stopped", False, f"{type(e).__name__}: {e}")
    return run.summary()
