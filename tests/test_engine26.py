"""The lab on Docker 26 (Debian 13's docker.io and docker-cli, unpacked by .ci/install under
.cache/trixie/, run with Debian 12's containerd, runc and tini): no cluster store, so local scope only."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from plugins.lab.dockerd import ENGINES
from plugins.lab.host import LabError
from plugins.lab.topology import Lab
from tests.test_lab import assert_demo_left_nothing, lab_cli


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
