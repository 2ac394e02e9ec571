"""The lowest versions pyproject.toml allows really work: a fresh venv with every dependency pinned at
its floor (`name>=X` -> `name==X`; what they need in turn resolves freely) runs the fast tests that
exercise them: gunicorn (the plugins' server), Flask (the dashboard's app), prometheus_client (metrics over TLS), pyroute2
(netlink), netaddr (the IPAM), kazoo's import, ovs (python-ovs's IDL, on a real Open vSwitch of a
simulated host). A floor that cannot install or fails here is raised to what passes. ovsdbapp is
installed at its floor but no code imports it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

from acsnet.lab.host import REPO

# Tests that need no ZooKeeper, dockerd or lab (the embedded store stands in for ZooKeeper where a
# test offers both); hypothesis's long random runs are left to the main run.
FAST_TESTS = ["tests/test_config.py", "tests/test_front_create.py", "tests/test_metrics_tls.py",
              "tests/test_links_netlink.py", "tests/test_protocol_server.py", "tests/test_ipam_driver.py",
              "tests/test_ovsdb_idl.py", "tests/test_dashboard.py::test_dashboard_pages_search_and_bad_input"]
# A plugin process in a simulated host imports acsnet from the main environment (nsenter leaves the
# checkout's directory), so test_ovsdb_idl.py's IDL test runs here and its plugin test does not.
DESELECT = "not zookeeper and not random_bodies and not fullness and not forks_no_ovs_vsctl"


def floors() -> list[str]:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    pins = []
    for requirement in project["dependencies"] + [r for r in project["optional-dependencies"]["test"]
                                                  if r.startswith(("pytest", "hypothesis"))]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9A-Za-z.]*)", requirement.strip())
        assert match, f"{requirement}: a floor is written name>=version"
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def test_the_unit_tests_pass_with_every_dependency_at_its_floor(tmp_path):
    venv = tmp_path / "floors"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *floors()],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    # The checkout is imported from its own directory (tests/ is a package under it): nothing installed.
    result = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", DESELECT, *FAST_TESTS],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
