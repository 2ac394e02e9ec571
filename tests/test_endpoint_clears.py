"""DeleteEndpoint answered before its records' removal is committed (`acsnet.after_answer`), on the lab's
real dockerd, Open vSwitch and ZooKeeper: a vlan plugin killed with a removal answered and not
committed commits it when it starts again, and leaves no record or port behind. The rules themselves
(what waits, in what order) are shown on the real store in `tests/test_agent_recording_datapath.py`."""

from __future__ import annotations

import glob
import json
import os
import signal
import sys
import time

from acsnet.plugins.segments.model import LAYOUTS
from tests.test_ipam_releases import until
from tests.test_vlan import V217, acsnet_ports, create_network, run

# Run on the lab's services node, which reaches its ZooKeeper: argv is the store URL, a node's path in
# the store, and "lock" (no child of it may be deleted) or "open".
SET_ACL = """
import sys, urllib.parse
from kazoo.client import KazooClient
from kazoo.security import OPEN_ACL_UNSAFE, make_acl
url = urllib.parse.urlparse(sys.argv[1].replace("zk://", "http://"))
zk = KazooClient(hosts=url.netloc + url.path)
zk.start(10)
if sys.argv[3] == "lock":
    zk.set_acls(sys.argv[2], [make_acl("world", "anyone", read=True, write=True, create=True, admin=True)])
else:
    zk.set_acls(sys.argv[2], OPEN_ACL_UNSAFE)
zk.stop()
"""

RECORDS = """
import json, sys
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.store import open_store
store = open_store(sys.argv[1])
print(json.dumps(sorted(state.read_host_endpoints(store, LAYOUTS["vlan"], sys.argv[2]))))
"""


def endpoint_records(lab, host: str) -> list[str]:
    return json.loads(lab.node("svc").run([sys.executable, "-c", RECORDS, lab.zookeeper_url, host]).stdout)


def set_acl(lab, path: str, mode: str) -> None:
    lab.node("svc").run([sys.executable, "-c", SET_ACL, lab.zookeeper_url, path, mode])


def test_a_vlan_plugin_killed_with_a_removal_answered_and_not_committed_commits_it_when_started_again(fresh_lab):
    lab = fresh_lab
    create_network(lab, "v217", V217, hosts=("h1",))
    address = run(lab, "h1", "removed", "v217")
    endpoint_id = json.loads(lab.docker("h1", "inspect", "removed").stdout)[0]["NetworkSettings"]["Networks"]["v217"]["EndpointID"]
    assert endpoint_records(lab, "h1") == [endpoint_id]
    workdir = lab.node("h1").workdir

    # The endpoint's segment record cannot be deleted: its removal is answered, and its commit refused.
    segment = "/" + LAYOUTS["vlan"].segment(V217[2]).lstrip("/")
    set_acl(lab, segment, "lock")
    try:
        lab.docker("h1", "rm", "-f", "removed")  # answered: dockerd removed the container
        assert until(lambda: acsnet_ports(lab, "h1") == [], timeout=15)
        journals = glob.glob(os.path.join(workdir, "vlan-clears-h1-*.journal"))
        assert len(journals) == 1 and endpoint_id in open(journals[0]).read()
        time.sleep(1.0)  # refused at least once more
        assert endpoint_records(lab, "h1") == [endpoint_id]
        lab.kill_plugin("h1", "vlan", signal.SIGKILL)
    finally:
        set_acl(lab, segment, "open")

    lab.start_plugin("h1", "vlan")
    assert until(lambda: endpoint_records(lab, "h1") == [], timeout=15), "the removal was not committed after the restart"
    assert until(lambda: not os.path.exists(journals[0]), timeout=15)
    assert "answered before a restart, committing them" in lab.log_tail("h1", 400)
    # the address moves to a container of another host at once
    create_network(lab, "v217", V217, hosts=("h2",))
    assert run(lab, "h2", "next", "v217", "--ip", address) == address
    lab.docker("h2", "rm", "-f", "next")
