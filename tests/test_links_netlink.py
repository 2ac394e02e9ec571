"""ovsctl/links.py on the kernel's netlink through pyroute2, in a network namespace of the test's own
(`unshare --net --mount`: it goes with the process, and so does the tmpfs on /run/netns that holds
the router's named namespace; the machine's own network is never touched). Fast, and run
again at the dependency floors (tests/test_dependency_floors.py): pyroute2's API moved under 0.9."""

from __future__ import annotations

import subprocess
import sys

from acsnet.lab.host import REPO

EXERCISE = r"""
from acsnet.ovsctl import links
from acsnet.ovsctl.links import Route
links.set_up("lo")
import subprocess


def host_end_flags(name):  # the host end is up and out of the host's ARP, as it is made
    line = subprocess.run(["ip", "-o", "link", "show", name], capture_output=True, text=True, check=True).stdout
    return set(line.split("<", 1)[1].split(">", 1)[0].split(","))


links.create_veth("vhtest0", "vctest0", mtu=1400, container_mac="02:00:00:00:00:0a")
assert links.exists("vhtest0") and links.exists("vctest0") and {"vhtest0", "vctest0"} <= links.names()
assert links.mtu_of("vhtest0") == 1400 and links.mac_of("vctest0") == "02:00:00:00:00:0a"
assert {"UP", "NOARP"} <= host_end_flags("vhtest0") and "UP" not in host_end_flags("vctest0")
links.create_veth("vhtest0", "vctest0", mtu=1450, container_mac=None)  # a leftover of the name is replaced
assert links.mtu_of("vctest0") == 1450 and {"UP", "NOARP"} <= host_end_flags("vhtest0")
links.set_up("vctest0", mtu=1450)
links.add_address("vctest0", "192.0.2.10", 24)
links.add_address("vctest0", "192.0.2.10", 24)  # again: no error
assert links.addresses("vctest0") == [("192.0.2.10", 24)]
links.create_veth("vhtest1", "vctest1", mtu=1500, container_mac=None)
links.set_up("vctest1")
moved = links.move_addresses_and_routes("vctest0", "vctest1")
assert links.addresses("vctest1") == [("192.0.2.10", 24)] and links.addresses("vctest0") == [], moved
links.delete_address("vctest1", "192.0.2.10", 24)
assert links.addresses("vctest1") == [] and links.routes("vctest1") == []
index = links.index_of("vhtest1")
links.delete_index(index)
links.delete_index(index)  # gone already: no error
links.delete("vhtest0")
links.delete("vhtest0")
assert not links.exists("vctest0") and not links.exists("vhtest1")

# kernel_routes: acsnet's own routes (protocol 172) in this namespace's main table.
from acsnet.ovsctl import kernel_routes
links.create_veth("vhtest2", "vctest2", mtu=1500, container_mac=None)
links.set_up("vctest2")
links.add_address("vctest2", "192.0.2.10", 24)
kernel_routes.replace("198.51.100.0/24", "192.0.2.1")
kernel_routes.replace("198.51.100.0/24", "192.0.2.2")
assert kernel_routes.owned() == {"198.51.100.0/24": "192.0.2.2"}, kernel_routes.owned()
kernel_routes.delete("198.51.100.0/24")
kernel_routes.delete("198.51.100.0/24")  # gone already: no error
assert kernel_routes.owned() == {}

# router: a named namespace (NetNS), in the tmpfs this process mounted on /run/netns.
import subprocess
subprocess.run(["mount", "-t", "tmpfs", "acsnet-test", "/run/netns"], check=True, timeout=10)
from pyroute2 import netns
from acsnet.ovsctl import router
made = router.ensure_router(7, "100.64.7.1", 24, "02:00:00:00:07:01", 1450, userspace_datapath=False)
assert router.ensure_router(7, "100.64.7.1", 24, "02:00:00:00:07:01", 1450, userspace_datapath=False) == made
assert router.routers() == {7: made} and router.namespace(7) in netns.listnetns()
inside = subprocess.run(["ip", "netns", "exec", router.namespace(7), "ip", "-o", "-4", "addr"], capture_output=True,
                        text=True, check=True, timeout=10).stdout
assert "100.64.7.1/24" in inside and made.router_address + "/30" in inside, inside
assert links.mtu_of(router.gateway_port(7)) == 1450
router.remove_router(7)
assert router.routers() == {} and router.namespace(7) not in netns.listnetns()
print("ok")
"""


def run_in_own_namespace(script: str) -> None:
    """Run a script in a network and mount namespace of its own; it prints "ok" when its checks pass."""
    result = subprocess.run(["unshare", "--net", "--mount", "--", sys.executable, "-c", script], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_links_routes_and_routers_on_netlink_in_a_namespace_of_its_own():
    run_in_own_namespace(EXERCISE)


ROUTERS = r"""
import os, shutil, subprocess, tempfile
subprocess.run(["mount", "-t", "tmpfs", "acsnet-test", "/run/netns"], check=True, timeout=10)
from acsnet.ovsctl import router
from acsnet.ovsctl.router import Publication

real = {tool: shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "nft")}
shims = tempfile.mkdtemp()
log = os.path.join(shims, "forks.log")
for tool, path in real.items():  # each logs its invocation (and an nft script: its text) and runs the real one
    with open(os.path.join(shims, tool), "w") as f:
        f.write(f'#!/bin/sh\necho "{tool} $*" >> {log}\n'
                f'if [ "$1" = "-f" ] && [ "$2" = "-" ]; then cat > {shims}/script.nft; cat {shims}/script.nft >> {log}; '
                f'exec {path} -f {shims}/script.nft; fi\nexec {path} "$@"\n')
    os.chmod(os.path.join(shims, tool), 0o755)
os.environ["PATH"] = shims + ":" + os.environ["PATH"]

def forks():
    lines = open(log).read().splitlines() if os.path.exists(log) else []
    open(log, "w").close()
    return lines

def inside(vni, *argv):
    return subprocess.run([real["ip"], "netns", "exec", router.namespace(vni), *argv], capture_output=True, text=True,
                          check=True, timeout=10).stdout

def host_table():
    return subprocess.run([real["nft"], "list", "table", "ip", router.HOST_TABLE], capture_output=True, text=True,
                          check=True, timeout=10).stdout

# Setting routers up forks nothing, and what it sets is the router namespace's, not the caller's.
a = router.ensure_router(7, "100.64.7.1", 24, "02:00:00:00:07:01", 1450, userspace_datapath=True)
b = router.ensure_router(8, "100.64.8.1", 24, "02:00:00:00:08:01", 1450, userspace_datapath=True)
assert forks() == []
assert inside(7, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "0", "forwarding went on in the caller's namespace"
assert "tx-checksumming: off" in inside(7, real["ethtool"], "-k", router.GATEWAY_LINK)
assert "tx-checksumming: off" in subprocess.run([real["ethtool"], "-k", router.gateway_port(7)], capture_output=True,
                                                text=True, check=True).stdout

web, dns, other = Publication(6, 8080, "100.64.7.10", 80), Publication(17, 5353, "100.64.7.11", 53), Publication(6, 8081, "100.64.8.10", 80)
router.apply_router_nat(a, [web])
router.apply_router_nat(b, [other])
router.apply_host_nat(["192.0.2.11"], [(a, web), (b, other)])
assert [line for line in forks() if line.startswith("nft")] == ["nft -f -"] * 3

# -p on network 7: its router's table and its chain of the host's, nothing of network 8's.
router.apply_router_nat(a, [web, dns])
router.apply_router_nat(b, [other])
router.apply_host_nat(["192.0.2.11"], [(a, web), (a, dns), (b, other)])
written = forks()
assert [line for line in written if line.startswith("nft")] == ["nft -f -"] * 2, written
assert "published_7" in "\n".join(written) and "published_8" not in "\n".join(written), written
assert "udp dport 5353 dnat to 100.64.7.11:53" in inside(7, real["nft"], "list", "table", "ip", router.ROUTER_TABLE)
incremental = host_table()
assert "udp dport 5353 dnat to 169.254.0.2" in incremental and "tcp dport 8081 dnat to 169.254.0.6" in incremental, incremental
router._applied.hosts.clear()  # as after a restart: the table is written whole, and reads the same
router.apply_host_nat(["192.0.2.11"], [(a, web), (a, dns), (b, other)])
assert host_table() == incremental, (host_table(), incremental)

# the last port of network 8 unpublished: its chain is emptied, the rest stays
router.apply_router_nat(b, [])
router.apply_host_nat(["192.0.2.11"], [(a, web), (a, dns)])
assert "8081" not in host_table() and "8080" in host_table()
router.remove_host_nat()
router.remove_router(7)
router.remove_router(8)
print("ok")
"""


def test_routers_fork_nothing_to_set_up_and_one_networks_ports_rewrite_only_its_rules():
    run_in_own_namespace(ROUTERS)


DUAL_STACK_ROUTER = r"""
import subprocess
subprocess.run(["mount", "-t", "tmpfs", "acsnet-test", "/run/netns"], check=True, timeout=10)
from acsnet.ovsctl import links, router
from acsnet.ovsctl.router import Publication

def inside(vni, *argv):
    return subprocess.run(["ip", "netns", "exec", router.namespace(vni), *argv], capture_output=True, text=True,
                          check=True, timeout=10).stdout

def nft(*argv):
    return subprocess.run(["nft", *argv], capture_output=True, text=True, check=True, timeout=10).stdout

v4 = router.ensure_router(3, "100.64.3.1", 24, "02:00:00:00:03:01", 1450, userspace_datapath=False)
dual = router.ensure_router(4, "100.64.4.1", 24, "02:00:00:00:04:01", 1450, userspace_datapath=False,
                            gateway6="2001:db8:4::1", prefixlen6=64)
assert not v4.ipv6 and dual.ipv6 and router.routers() == {3: v4, 4: dual}, router.routers()
assert dual.router_address6 == "fdac:5e7:a9fe::a9fe:6" and dual.host_address6 == "fdac:5e7:a9fe::a9fe:5", dual
assert f"{dual.router_address6}/126" in inside(4, "ip", "-6", "addr", "show", "up0")
assert f"default via {dual.host_address6}" in inside(4, "ip", "-6", "route")
assert inside(4, "cat", "/proc/sys/net/ipv6/conf/all/forwarding").strip() == "1"
assert "fdac" not in inside(3, "ip", "-6", "addr") and router.host_ipv6_addresses() == ()
assert open("/proc/sys/net/ipv4/conf/vr4/route_localnet").read().strip() == "1"

web = Publication(6, 8080, "100.64.4.10", 80, "", "2001:db8:4::10")  # -p 8080:80: both families
six = Publication(6, 8081, "100.64.4.10", 80, "2001:db8:99::11", "2001:db8:4::10")  # -p [2001:db8:99::11]:8081:80
local = Publication(6, 8082, "100.64.4.10", 80, "127.0.0.1", "2001:db8:4::10")  # -p 127.0.0.1:8082:80
router.apply_router_nat(dual, [web, six, local])
ipv4_rules = inside(4, "nft", "list", "table", "ip", router.ROUTER_TABLE)
ipv6_rules = inside(4, "nft", "list", "table", "ip6", router.ROUTER_TABLE)
assert "dport 8080 dnat to 100.64.4.10:80" in ipv4_rules and "8081" not in ipv4_rules, ipv4_rules
assert "dport 8080 dnat to [2001:db8:4::10]:80" in ipv6_rules and "dport 8081 dnat to [2001:db8:4::10]:80" in ipv6_rules
assert "8082" not in ipv6_rules and 'oifname "up0" masquerade' in ipv6_rules, ipv6_rules
router.apply_host_nat(["192.0.2.11"], [(dual, web), (dual, six), (dual, local)], ("2001:db8:99::10",), ipv6=True)
host4, host6 = nft("list", "table", "ip", router.HOST_TABLE), nft("list", "table", "ip6", router.HOST_TABLE)
assert "ip daddr 192.0.2.11 tcp dport 8080 dnat to 169.254.0.6" in host4 and "ip daddr 127.0.0.1 tcp dport 8082" in host4, host4
assert "ip6 daddr 2001:db8:99::10 tcp dport 8080 dnat to fdac:5e7:a9fe::a9fe:6" in host6, host6
assert "ip6 daddr 2001:db8:99::11 tcp dport 8081" in host6 and "ip6 saddr fdac:5e7:a9fe::/96" in host6, host6
assert open("/proc/sys/net/ipv6/conf/all/forwarding").read().strip() == "1"
router.remove_host_nat()
assert subprocess.run(["nft", "list", "table", "ip6", router.HOST_TABLE], capture_output=True).returncode != 0
router.remove_router(3)
router.remove_router(4)
print("ok")
"""


def test_a_dual_stack_router_routes_ipv6_over_its_transfer_links_twins_and_publishes_by_family():
    run_in_own_namespace(DUAL_STACK_ROUTER)
