"""A bridge's OpenFlow table, installed whole and atomically.

`replace_flows` hands the complete desired table to `ovs-ofctl --bundle replace-flows`, which diffs it
against what the switch has and applies the difference in one transaction: flows that stay are not
touched (their counters and the traffic through them go on), new ones appear with the removal of stale
ones, never a gap. The same call rebuilds everything after a restart and applies one endpoint's change.
"""

from __future__ import annotations

from ovsctl.command import check_interface_name, run



def replace_flows(bridge: str, flows: list[str], timeout: float = 20.0) -> None:
    run(["ovs-ofctl", "--bundle", "replace-flows", check_interface_name(bridge), "-"],
        input_text="\n".join(flows) + "\n", timeout=timeout)


def dump_flows(bridge: str, timeout: float = 10.0) -> list[str]:
    out = run(["ovs-ofctl", "--no-stats", "--names", "dump-flows", check_interface_name(bridge)], timeout=timeout)
    return [line.strip() for line in out.splitlines() if line.strip() and not line.startswith(("OFPST_FLOW", "NXST_FLOW"))]


def packet_out(bridge: str, actions: str, packet: bytes, timeout: float = 10.0) -> None:
    """Send `packet` (a whole Ethernet frame) into the bridge's pipeline as if from the controller."""
    run(["ovs-ofctl", "packet-out", check_interface_name(bridge),
         f"in_port=controller,packet={packet.hex()},actions={actions}"], timeout=timeout)
