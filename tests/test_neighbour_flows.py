"""acsnet.ovsctl.neighbour's NDP answer on a real Open vSwitch (userspace datapath, as the lab runs it),
judged by real Linux neighbour tables: a container's solicitation is answered by flows with the MAC
given (checksums and options right, or the kernel would ignore it), with the router flag when asked,
never for a duplicate address detection probe, and never for an address no flow names.

The "containers" are network namespaces made by the test inside a simulated host; the addresses are
2001:db8::/32 (documentation). Everything is removed with the host."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from acsnet.lab.host import SimulatedHost
from acsnet.lab.ovs import OpenVSwitch
from acsnet.ovsctl import neighbour

BRIDGE, COOKIE = "acsnd0", "0xacd"
ANSWERED, ROUTER, UNKNOWN = "2001:db8:5::1", "2001:db8:5::fe", "2001:db8:5::99"
ANSWER_MAC, ROUTER_MAC = "02:00:00:00:0d:01", "02:00:00:00:0d:fe"
ANSWER, FINISH = 0, 1


class Namespace:
    """A network namespace held by a sleeping process inside the host, with one veth on the bridge."""

    def __init__(self, host: SimulatedHost, name: str, mac: str, ip6: str):
        self.host, self.name = host, name
        pidfile = os.path.join(host.workdir, f"{name}.pid")
        self.process = subprocess.Popen(host.command(["unshare", "--net", "sh", "-c", f"echo $$ > {pidfile}; exec sleep 600"]))
        deadline = time.monotonic() + 10
        while not (os.path.exists(pidfile) and open(pidfile).read().strip()):
            assert time.monotonic() < deadline, "namespace holder did not start"
            time.sleep(0.05)
        self.pid = open(pidfile).read().strip()
        host.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}c"])
        host.run(["ip", "link", "set", name, "up"])
        host.run(["ovs-vsctl", "add-port", BRIDGE, name])
        host.run(["ip", "link", "set", f"{name}c", "netns", self.pid])
        for argv in (["ip", "link", "set", "lo", "up"], ["ip", "link", "set", f"{name}c", "address", mac],
                     ["ip", "link", "set", f"{name}c", "up"],
                     ["ip", "-6", "addr", "add", f"{ip6}/64", "dev", f"{name}c", "nodad"]):
            self.run(argv)

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return self.host.run(["nsenter", "-t", self.pid, "-n", "--", *argv], check=check)

    def neighbour(self, ip6: str) -> str:
        """The kernel's neighbour entry for ip6 after trying to reach it ('' when there is none)."""
        self.run(["ping", "-6", "-c1", "-W1", ip6], check=False)
        return self.run(["ip", "-6", "neigh", "show", ip6, "dev", f"{self.name}c"]).stdout.strip()


def flows() -> list[str]:
    def flow(table, priority, match, actions):
        return f"cookie={COOKIE},table={table},priority={priority},{match},actions={actions}"

    return [flow(ANSWER, 300, neighbour.nd_dad_probe_match(), "drop"),
            flow(ANSWER, 200, neighbour.nd_solicitation_match(ANSWERED),
                 neighbour.nd_advert_actions(ANSWER_MAC, ANSWERED, FINISH)),
            flow(ANSWER, 200, neighbour.nd_solicitation_match(ROUTER),
                 neighbour.nd_advert_actions(ROUTER_MAC, ROUTER, FINISH, router=True)),
            flow(ANSWER, 0, "ipv6", "drop"),
            flow(FINISH, 100, neighbour.nd_advert_finish_match(), neighbour.nd_advert_finish_actions())]


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("neighbour"))
    host = SimulatedHost("nd", f"acsnet-nd-{uuid.uuid4().hex[:8]}", workdir).start()
    holders: list[Namespace] = []
    try:
        OpenVSwitch(host).start()
        host.run(["ovs-vsctl", "add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev",
                  "fail_mode=secure"])
        host.run(["ovs-ofctl", "add-flows", BRIDGE, "-"], input="\n".join(flows()) + "\n")

        def namespace(name: str, mac: str, ip6: str) -> Namespace:
            holders.append(Namespace(host, name, mac, ip6))
            return holders[-1]

        yield host, namespace
    finally:
        for holder in holders:
            holder.process.kill()
            holder.process.wait()
        host.stop()


def test_a_solicitation_is_answered_by_flows_with_the_mac_given(bridge):
    host, namespace = bridge
    c1 = namespace("ndc1", "02:42:00:00:0d:10", "2001:db8:5::10")
    entry = c1.neighbour(ANSWERED)
    assert f"lladdr {ANSWER_MAC}" in entry and "FAILED" not in entry and "INCOMPLETE" not in entry, entry
    assert "router" not in entry
    # the answer never needed the wire: the request was turned around by table 0, finished in table 1
    dump = host.run(["ovs-ofctl", "dump-flows", BRIDGE, f"cookie={COOKIE}/-1,table={FINISH}"]).stdout
    assert "n_packets=0" not in dump, dump


def test_a_router_is_answered_with_the_router_flag(bridge):
    _, namespace = bridge
    c2 = namespace("ndc2", "02:42:00:00:0d:11", "2001:db8:5::11")
    entry = c2.neighbour(ROUTER)
    assert f"lladdr {ROUTER_MAC} router" in entry, entry


def test_an_address_no_flow_names_gets_no_answer(bridge):
    _, namespace = bridge
    c3 = namespace("ndc3", "02:42:00:00:0d:12", "2001:db8:5::12")
    entry = c3.neighbour(UNKNOWN)
    assert "lladdr" not in entry, entry


def test_duplicate_address_detection_is_not_answered(bridge):
    """A container given an address the flows answer for still passes DAD: its probe (from ::) is dropped,
    not answered. Without the DAD flow the kernel would mark the address dadfailed."""
    _, namespace = bridge
    c4 = namespace("ndc4", "02:42:00:00:0d:13", "2001:db8:5::13")
    c4.run(["sysctl", "-qw", "net.ipv6.conf.ndc4c.dad_transmits=1", "net.ipv6.conf.ndc4c.accept_dad=1"])
    c4.run(["ip", "-6", "addr", "add", f"{ANSWERED}/64", "dev", "ndc4c"])
    deadline = time.monotonic() + 10
    while "tentative" in (state := c4.run(["ip", "-6", "addr", "show", "dev", "ndc4c"]).stdout):
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert "dadfailed" not in state and ANSWERED in state, state
