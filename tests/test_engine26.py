"""The lab on Docker 26 (Debian 13's docker.io and docker-cli, unpacked by .ci/install under
.cache/trixie/, run with Debian 12's containerd, runc and tini): no cluster store, so local scope only."""

from __future__ import annotations

import json
import re
import sys
import time
import uuid

import pytest

from acsnet.lab.dockerd import ENGINES
from acsnet.lab.host import LabError
from acsnet.lab.topology import Lab
from tests.test_lab import assert_demo_left_nothing, lab_cli

STORED_NETWORKS = """
import json, sys
from acsnet.ipam.state import PoolRecords
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.store import open_store
store = open_store(sys.argv[1])
found = {"pools": sorted(PoolRecords.read_all(store))}
for driver, layout in LAYOUTS.items():
    found[driver] = state.global_network_ids(store, layout) + [
        n for h in state.hosts(store, layout) for n in state.host_network_ids(store, layout, h)]
print(json.dumps(found))
store.close()
"""

CLUSTER_NODES = """
import json, sys
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.store import open_store
store = open_store(sys.argv[1])
if len(sys.argv) > 2:  # what a dockerd 20.10 with a cluster store left before this host ran Docker 26
    for layout in LAYOUTS.values():
        state.write_cluster_node(store, layout, "h1", sys.argv[2])
print(json.dumps(sorted(d for d, layout in LAYOUTS.items() if state.read_cluster_node(store, layout, "h1"))))
store.close()
"""


def test_engine_26_is_unpacked_and_runs_from_the_project():
    engine = ENGINES["26"]
    assert engine.missing() == [], "Docker 26 is not unpacked: run .ci/install"
    assert all("/.cache/trixie/" in path for path in (engine.dockerd, engine.docker, engine.proxy))


def test_demo_passes_on_docker_26(lab26):
    result = lab_cli(lab26, "demo", "--engine", "26")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Docker 26" in result.stdout and "PASS:" in result.stdout and "FAIL" not in result.stdout
    assert re.findall(r"^== (\w+):", result.stdout, re.M) == ["lab", "ipam", "vlan", "vxlan", "vpc", "front", "fault"]
    assert "dockerd 26.1" in result.stdout, "the front's scenario names the dockerd behind it"
    assert_demo_left_nothing(lab26)


def test_status_shows_the_engine_and_the_cli_matches_it(lab26):
    status = json.loads(lab_cli(lab26, "status", "--json").stdout)
    assert status["up"] and status["engine"] == "26" and status["dockerd"] == ENGINES["26"].dockerd
    text = lab_cli(lab26, "status").stdout
    assert "Docker 26" in text
    versions = lab26.docker("h2", "version", "--format", "{{.Client.Version}} {{.Server.Version}}").stdout.split()
    assert [v.split(".")[:2] for v in versions] == [["26", "1"], ["26", "1"]], versions
    by_hand = lab_cli(lab26, "exec", "h2", "--", "docker", "version", "--format", "{{.Client.Version}} {{.Server.Version}}")
    assert by_hand.stdout.split() == versions, by_hand.stdout + by_hand.stderr
    asked = lab_cli(lab26, "demo", "--engine", "20.10")
    assert asked.returncode == 1 and "runs Docker 26, not 20.10" in asked.stderr and "Traceback" not in asked.stderr


def test_global_scope_on_docker_26_is_refused_before_anything_is_made(tmp_path):
    lab = Lab(str(tmp_path / "lab"), f"acsnet-r{uuid.uuid4().hex[:4]}")
    with pytest.raises(LabError, match=r"--scope global needs dockerd's cluster store, which Docker 26 does not have"):
        lab.up(hosts=1, scope="global", engine="26")
    assert lab.leftovers() == []
    result = lab_cli(lab, "up", "--scope", "global", "--engine", "26")
    assert result.returncode == 1 and "use --engine 20.10 for global scope" in result.stderr
    assert "Traceback" not in result.stderr and lab.leftovers() == []


def test_a_global_scope_driver_on_docker_26_refuses_networks_saying_what_to_run(tmp_path):
    """Docker 26 has no cluster store, yet creates a network of a global-scope driver: on the host it was
    made on only (other hosts cannot join it; one made on each host would be split in per-network pools,
    with the same addresses given twice). Its dockerd announces no cluster nodes, so the drivers refuse."""
    lab = Lab(str(tmp_path / "lab"), f"acsnet-s{uuid.uuid4().hex[:4]}")
    try:
        lab.up(hosts=1, engine="26")
        svc = lab.node("svc")
        stored = svc.run([sys.executable, "-c", CLUSTER_NODES, lab.zookeeper_url, "192.0.2.11"]).stdout
        assert json.loads(stored) == ["vlan", "vpc", "vxlan"]
        for plugin in ("vlan", "vxlan", "vpc"):
            lab.kill_plugin("h1", plugin)
            lab.start_plugin("h1", plugin, "--scope", "global")  # before dockerd first asks its capabilities
        for driver, options in (("vlan", ["-o", "VlanId=217"]), ("vxlan", []), ("vpc", [])):
            result = lab.docker("h1", "network", "create", "-d", driver, "--ipam-driver", "acsnet",
                                "--subnet", "100.72.0.0/16", *options, f"g-{driver}", check=False)
            assert result.returncode != 0, f"{driver}: a global network was made on a dockerd without a cluster"
            assert f"acsnet serve {driver} runs with --scope global" in result.stderr, result.stderr
            assert f"Run 'acsnet serve {driver} --scope local' on every host" in result.stderr, result.stderr
        networks = lab.network_names("h1")
        assert [n for n in networks if n.startswith("g-")] == []
        left = svc.run([sys.executable, "-c", STORED_NETWORKS, lab.zookeeper_url]).stdout
        assert json.loads(left) == {"pools": [], "vlan": [], "vxlan": [], "vpc": []}, "a refused network left records"

        # dockerd 26 activated the drivers without announcing a cluster: what an earlier dockerd
        # announced is forgotten, so a plugin restarted under this dockerd refuses too.
        deadline = time.monotonic() + 30
        while json.loads(svc.run([sys.executable, "-c", CLUSTER_NODES, lab.zookeeper_url]).stdout):
            assert time.monotonic() < deadline, "an earlier dockerd's cluster announcement was kept"
            time.sleep(0.2)
        lab.kill_plugin("h1", "vlan")
        lab.start_plugin("h1", "vlan", "--scope", "global")
        again = lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "100.72.0.0/16",
                           "-o", "VlanId=217", "g-again", check=False)
        assert again.returncode != 0 and "acsnet serve vlan runs with --scope global" in again.stderr, again.stderr
    finally:
        lab.down()
    assert lab.leftovers() == []
