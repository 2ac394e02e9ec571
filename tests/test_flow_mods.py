"""acsnet.ovsctl.flow_mods against ovs-ofctl itself: every flow the three pipelines emit (the desired states
of tests/test_pipeline_doc.py, which take every branch), and its delete_strict, encodes to the bytes
`ovs-ofctl --no-names add-flows` sends for the same line. ovs-ofctl talks to a recording socket that
answers its hello and barriers (no switch: what the switch does with the bytes is tests/test_openflow.py's,
on a lab host)."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import threading

import pytest

from acsnet.ovsctl import flow_mods, openflow
from acsnet.ovsctl.vlan_pipeline import vlan_flows
from acsnet.ovsctl.vpc_pipeline import vpc_flows
from acsnet.ovsctl.vxlan_pipeline import vxlan_flows
from tests.test_pipeline_doc import vlan_states, vpc_states, vxlan_states

pytestmark = pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl (openvswitch-common)")


def sent_by_ovs_ofctl(lines: list[str], tmp_path) -> list[bytes]:
    """The messages `ovs-ofctl --no-names add-flows` sends for the lines, to a socket that records them
    (it answers the hello, barriers and echoes as a switch would, and refuses nothing)."""
    path = os.path.join(tmp_path, "switch.mgmt")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    server.settimeout(20)
    received: list[bytes] = []

    def serve() -> None:
        connection, _ = server.accept()
        connection.settimeout(20)
        connection.sendall(flow_mods.message(flow_mods.OFPT_HELLO, 0))
        buffer = b""
        while data := connection.recv(65536):
            buffer += data
            while len(buffer) >= 8 and len(buffer) >= struct.unpack("!H", buffer[2:4])[0]:
                length = struct.unpack("!H", buffer[2:4])[0]
                one, buffer = buffer[:length], buffer[length:]
                received.append(one)
                xid = struct.unpack("!I", one[4:8])[0]
                if one[1] == flow_mods.OFPT10_BARRIER_REQUEST:
                    connection.sendall(flow_mods.message(flow_mods.OFPT10_BARRIER_REPLY, xid))
        connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        subprocess.run(["ovs-ofctl", "--no-names", "add-flows", f"unix:{path}", "-"], input="\n".join(lines) + "\n",
                       text=True, check=True, capture_output=True, timeout=30)
        thread.join(20)
    finally:
        server.close()
    return [m for m in received if m[1] == flow_mods.OFPT_VENDOR and m[8:16] == struct.pack("!II", flow_mods.NX_VENDOR_ID, flow_mods.NXT_FLOW_MOD)]


def without_xid(message: bytes) -> bytes:
    return message[:4] + bytes(4) + message[8:]


def pipeline_lines() -> list[str]:
    """Every flow of the pipelines' desired states and the delete_strict of each, port names numbered."""
    flows = sorted({f for s in vlan_states() for f in vlan_flows(s)} | {f for s in vxlan_states() for f in vxlan_flows(s)}
                   | {f for s in vpc_states() for f in vpc_flows(s)})
    deletes = [f"delete_strict {f.split(',', 1)[0]}/-1,{openflow.flow_identity(f)}" for f in flows]
    names = sorted(openflow.port_names(flows))
    return openflow.numbered(flows + deletes, {name: number for number, name in enumerate(names, start=3)})


def test_every_pipeline_flow_and_its_delete_encode_as_ovs_ofctl_sends_them__recording_socket(tmp_path):
    lines = pipeline_lines()
    assert len(lines) > 300  # the three pipelines' kinds of flow, each added and deleted
    expected = sent_by_ovs_ofctl(lines, tmp_path)
    assert len(expected) == len(lines)
    for line, theirs in zip(lines, expected):
        assert without_xid(flow_mods.encode_flow_mod(line, 0)) == without_xid(theirs), line


@pytest.mark.parametrize("line", [
    "cookie=0xac5,table=0,priority=1,icmp,actions=drop",  # a protocol the pipelines do not match
    "cookie=0xac5,table=0,priority=1,ip,actions=learn(table=1)",  # an action they do not use
    "cookie=0xac5,table=0,priority=1,in_port=vh-a,actions=drop",  # a port name, not its number
    "cookie=0xac5,table=0,priority=1,reg0=5,reg0=6,actions=drop",
    "cookie=0xac5,priority=1,ip,actions=drop",  # no table
    "cookie=0xac5,table=0,priority=1,dl_dst=02:00:00:00:00,actions=drop",
    "cookie=0xac5,table=0,priority=1,icmp_type=135,actions=drop",  # without icmp6
    "delete_strict cookie=0xac5,table=0,priority=1,ip",  # not cookie/-1
])
def test_a_line_in_another_form_is_refused_not_guessed__no_switch(line):
    with pytest.raises(flow_mods.Unencodable):
        flow_mods.encode_flow_mod(line, 1)
