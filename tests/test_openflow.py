"""acsnet.ovsctl.openflow against a real Open vSwitch (a lab host's): the incremental flow table ends where a
whole install would, falls back to one when the difference is refused or flows went missing, and never
touches another cookie's flows."""

import json
import sys

from acsnet.lab.host import REPO

SCRIPT = r"""
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from acsnet.ovsctl import links, openflow
from acsnet.ovsctl.ovsdb import Ovsdb

BRIDGE, A, B = "acsft0", "acsfta", "acsftb"
C = "0xacf"
ovsdb = Ovsdb()
ovsdb.add_bridge(BRIDGE, "netdev", secure=True)
for port in (A, B):
    links.create_veth(port, port + "p", mtu=1500, container_mac=None)
    ovsdb.add_port(BRIDGE, port)

def flow(table, priority, match, actions):
    return f"cookie={C},table={table},priority={priority},{match},actions={actions}"

def installed():
    out = subprocess.run(["ovs-ofctl", "--no-stats", "--names", "dump-flows", BRIDGE], capture_output=True, text=True, check=True).stdout
    return sorted(line.strip() for line in out.splitlines() if f"cookie={C}" in line)

def others():
    out = subprocess.run(["ovs-ofctl", "--no-stats", "dump-flows", BRIDGE], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if "cookie=0xbee" in line)

seen = {}
try:
    other = "cookie=0xbee,table=0,priority=5,ip,nw_dst=198.51.100.5,actions=drop"  # another driver's
    subprocess.run(["ovs-ofctl", "add-flow", BRIDGE, other], check=True)
    table = openflow.FlowTable(BRIDGE, C)
    base = [flow(0, 0, "ip", "drop"), flow(0, 100, f"in_port={A}", "resubmit(,10)"), flow(10, 50, "ip,nw_dst=192.0.2.9", f"output:{A}")]
    table.install(base)
    seen["whole"] = installed()
    # one flow added, one changed in place, one removed: what a whole install of the same list leaves
    changed = [base[0], flow(0, 100, f"in_port={A}", "drop"), flow(10, 60, "ip,nw_dst=192.0.2.10", f"output:{B}")]
    table.install(changed)
    seen["incremental"] = installed()
    openflow.FlowTable(BRIDGE, C).install(changed)
    seen["whole_again"] = installed()
    # a removed flow names a port that is gone: the difference is refused, the whole table goes in
    table.install(changed + [flow(0, 100, f"in_port={B}", "drop")])
    ovsdb.delete_port(BRIDGE, B)
    table.install(changed[:2])
    seen["after_port_gone"] = installed()
    seen["intact"] = table.check()
    # flows someone else removed are noticed, and the next install is whole
    subprocess.run(["ovs-ofctl", "--strict", "del-flows", BRIDGE, f"cookie={C}/-1,table=0,priority=100,in_port={A}"], check=True)
    seen["noticed"] = not table.check()
    table.install(changed[:2])
    seen["repaired"] = installed()
    seen["others"] = others()
finally:
    subprocess.run(["ovs-vsctl", "--if-exists", "del-br", BRIDGE])
    for port in (A, B):
        links.delete(port)
print(json.dumps(seen))
"""


def test_incremental_changes_end_where_a_whole_install_does(lab):
    out = lab.node("h1").run([sys.executable, "-c", SCRIPT, REPO]).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert len(seen["whole"]) == 3
    assert seen["incremental"] == seen["whole_again"]
    assert any("priority=100,in_port=acsfta actions=drop" in f for f in seen["incremental"])
    assert not any("192.0.2.9" in f for f in seen["incremental"])
    assert any("192.0.2.10" in f for f in seen["incremental"])
    assert len(seen["after_port_gone"]) == 2 and not any("acsftb" in f for f in seen["after_port_gone"])
    assert seen["intact"] and seen["noticed"] and seen["repaired"] == seen["after_port_gone"]
    assert seen["others"] == 1, "another cookie's flow was touched"
