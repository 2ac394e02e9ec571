"""acsnet.ovsctl.openflow against a real Open vSwitch (a lab host's): the incremental flow table ends where a
whole install would, falls back to one when the difference is refused or flows went missing, and never
touches another cookie's flows."""

import json
import sys

import pytest

from acsnet.errors import DatapathError
from acsnet.lab.host import REPO
from acsnet.ovsctl import openflow

SCRIPT = r"""
import json, socket, subprocess, sys
sys.path.insert(0, sys.argv[1])
from acsnet.ovsctl import links, openflow
from acsnet.ovsctl.ovsdb import Ovsdb

BRIDGE, A, B, LATE = "acsft0", "acsfta", "acsftb", "acsftl"
C = "0xacf"
ovsdb = Ovsdb()
ovsdb.add_bridge(BRIDGE, "netdev", secure=True)
for port in (A, B):
    links.create_veth(port, port + "p", mtu=1500, container_mac=None)
    ovsdb.add_port(BRIDGE, port)
whole_installs = []
real_replace = openflow.replace_flows
openflow.replace_flows = lambda *a, **k: whole_installs.append(1) or real_replace(*a, **k)
started = []  # every process this script starts, by its arguments
real_popen = subprocess.Popen
subprocess.Popen = lambda argv, *a, **k: started.append(list(argv)) or real_popen(argv, *a, **k)

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
    table = openflow.FlowTable(BRIDGE, C, ovsdb.ofports)
    base = [flow(0, 0, "ip", "drop"), flow(0, 100, f"in_port={A}", "resubmit(,10)"), flow(10, 50, "ip,nw_dst=192.0.2.9", f"output:{A}")]
    table.install(base)
    seen["whole"] = installed()
    # one flow added, one changed in place, one removed: what a whole install of the same list leaves
    changed = [base[0], flow(0, 100, f"in_port={A}", "drop"), flow(10, 60, "ip,nw_dst=192.0.2.10", f"output:{B}")]
    table.install(changed)
    seen["incremental"] = installed()
    seen["whole_installs_before_late_port"] = len(whole_installs)
    # a port made after the connection opened is named in the next change all the same, on that connection
    connection = table._connection._socket
    links.create_veth(LATE, LATE + "p", mtu=1500, container_mac=None)
    ovsdb.add_port(BRIDGE, LATE)
    table.change([flow(0, 100, f"in_port={LATE}", f"output:{A}")], [])
    seen["late_port"] = [f for f in installed() if f"in_port={LATE}" in f]
    seen["connection_kept"] = table._connection._socket is connection
    # a connection that broke (as when ovs-vswitchd restarts) is opened again, and the change still goes in
    # as a change
    connection.shutdown(socket.SHUT_RDWR)
    table.change([], [f"table=0,priority=100,in_port={LATE}"])
    seen["after_connection_broke"] = [f for f in installed() if f"in_port={LATE}" in f]
    seen["connection_opened_again"] = table._connection._socket not in (None, connection)
    seen["whole_installs_after_late_port"] = len(whole_installs)
    seen["ovs_ofctl_add_flows_started"] = sum(1 for argv in started if "add-flows" in argv and "--bundle" not in argv)
    ovsdb.delete_port(BRIDGE, LATE)
    openflow.FlowTable(BRIDGE, C, ovsdb.ofports).install(changed)
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
    table.close()
    seen["connection_closed"] = table._connection._socket is None
finally:
    subprocess.run(["ovs-vsctl", "--if-exists", "del-br", BRIDGE])
    for port in (A, B, LATE):
        links.delete(port)
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def seen(lab):
    """What the script saw on a lab host's Open vSwitch (run once for the module's tests)."""
    out = lab.node("h1").run([sys.executable, "-c", SCRIPT, REPO]).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_incremental_changes_end_where_a_whole_install_does(seen):
    assert len(seen["whole"]) == 3
    assert seen["incremental"] == seen["whole_again"]
    assert any("priority=100,in_port=acsfta actions=drop" in f for f in seen["incremental"])
    assert not any("192.0.2.9" in f for f in seen["incremental"])
    assert any("192.0.2.10" in f for f in seen["incremental"])
    assert len(seen["after_port_gone"]) == 2 and not any("acsftb" in f for f in seen["after_port_gone"])
    assert seen["intact"] and seen["noticed"] and seen["repaired"] == seen["after_port_gone"]
    assert seen["others"] == 1, "another cookie's flow was touched"


def test_changes_go_over_one_kept_connection_by_port_number_even_for_a_port_made_after_it_opened(seen):
    """No ovs-ofctl is started for a change; by port name the late port would have needed a fresh read."""
    assert seen["whole_installs_before_late_port"] == 1  # the first install only
    assert len(seen["late_port"]) == 1 and "actions=output:acsfta" in seen["late_port"][0]
    assert seen["connection_kept"]
    assert seen["after_connection_broke"] == [] and seen["connection_opened_again"]
    assert seen["whole_installs_after_late_port"] == 1, "a change fell back to a whole install"
    assert seen["ovs_ofctl_add_flows_started"] == 0
    assert seen["connection_closed"]


def test_port_names_become_numbers_and_reserved_ports_stay__no_switch():
    lines = ["cookie=0xac5,table=0,priority=300,in_port=vl1a2b,actions=set_field:5->reg0,resubmit(,10)",
             "cookie=0xac5,table=10,priority=100,reg0=5,dl_dst=02:00:00:00:00:01,actions=pop_vlan,output:vl1a2b,output:uplink0",
             "cookie=0xac5,table=0,priority=250,in_port=LOCAL,ip,nw_dst=192.0.2.1,actions=output:LOCAL",
             "delete_strict cookie=0xac5/-1,table=0,priority=300,in_port=7",
             "cookie=0xac5,table=36,priority=100,icmp6,actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],IN_PORT"]
    assert openflow.port_names(lines) == {"vl1a2b", "uplink0"}
    assert openflow.numbered(lines, {"vl1a2b": 12, "uplink0": 1}) == [
        "cookie=0xac5,table=0,priority=300,in_port=12,actions=set_field:5->reg0,resubmit(,10)",
        "cookie=0xac5,table=10,priority=100,reg0=5,dl_dst=02:00:00:00:00:01,actions=pop_vlan,output:12,output:1",
        lines[2], lines[3], lines[4]]


def test_a_port_with_no_number_refuses_the_change__no_switch():
    with pytest.raises(DatapathError, match="vl1a2b"):
        openflow.numbered(["cookie=0xac5,table=0,priority=300,in_port=vl1a2b,actions=drop"], {})
