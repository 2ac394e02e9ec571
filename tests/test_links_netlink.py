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
links.create_veth("vhtest0", "vctest0", mtu=1400, container_mac="02:00:00:00:00:0a")
assert links.exists("vhtest0") and links.exists("vctest0") and {"vhtest0", "vctest0"} <= links.names()
assert links.mtu_of("vhtest0") == 1400 and links.mac_of("vctest0") == "02:00:00:00:00:0a"
links.create_veth("vhtest0", "vctest0", mtu=1450, container_mac=None)  # a leftover of the name is replaced
assert links.mtu_of("vctest0") == 1450
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


def test_links_routes_and_routers_on_netlink_in_a_namespace_of_its_own():
    result = subprocess.run(["unshare", "--net", "--mount", "--", sys.executable, "-c", EXERCISE], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
