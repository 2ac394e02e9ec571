"""--docker: one form for every command, and a dockerd that cannot be reached said so, naming the
address. Where a running dockerd is needed, tests/test_operations.py uses the lab's."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from acsnet.docker_api import parse_docker_address
from acsnet.errors import AcsnetError
from acsnet.lab.host import REPO
from acsnet.plugin_client import UnixHTTPConnection


@pytest.mark.parametrize("text", ["unix:///var/run/docker.sock", "unix:/var/run/docker.sock", "/var/run/docker.sock"])
def test_every_form_names_the_same_socket(text):
    address = parse_docker_address(text)
    assert address.socket_path == "/var/run/docker.sock" and address.url == "unix:///var/run/docker.sock"


@pytest.mark.parametrize("text,message", [
    ("tcp://127.0.0.1:2375", "dockerd over TCP is not supported"),
    ("http://127.0.0.1:2375", "is not a unix socket"),
    ("unix://", "names no socket"),
])
def test_what_is_not_a_unix_socket_is_refused_by_name(text, message):
    with pytest.raises(AcsnetError, match=message):
        parse_docker_address(text)


def acsnet(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acsnet.cli", *argv], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_commands_without_a_reachable_dockerd_say_so(tmp_path):
    nowhere = f"unix://{tmp_path}/no-dockerd.sock"
    store = ["--store", f"file://{tmp_path}/store.db", "--host-id", "h1"]
    ovsdb = ["--ovsdb", f"unix:{tmp_path}/no-ovsdb.sock"]  # what status, audit and gc read besides the store
    local = [*store, *ovsdb, "--plugin-dir", str(tmp_path / "plugins")]
    for argv in (["inspect", "network", "vlan217", *store], ["audit", *store, *ovsdb], ["gc", *store, *ovsdb]):
        result = acsnet(*argv, "--docker", nowhere)
        assert result.returncode == 1, (argv, result.stdout, result.stderr)
        assert f"dockerd could not be reached at {nowhere}" in result.stderr and "Traceback" not in result.stderr, result.stderr
    result = acsnet("status", "--docker", nowhere.replace("unix://", "unix:"), *local)
    assert f"dockerd: NOT reachable: dockerd could not be reached at {nowhere}" in result.stdout, result.stdout
    result = acsnet("audit", "--docker", "tcp://127.0.0.1:2375", *store, *ovsdb)
    assert result.returncode == 2 and "dockerd over TCP is not supported" in result.stderr and "Traceback" not in result.stderr


def test_the_front_answers_502_naming_a_dockerd_it_cannot_reach(tmp_path):
    listen = tmp_path / "front.sock"
    nowhere = tmp_path / "no-dockerd.sock"
    front = subprocess.Popen([sys.executable, "-m", "acsnet.cli", "front", "--listen", f"unix://{listen}",
                              "--docker", str(nowhere)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(listen):
            assert front.poll() is None and time.monotonic() < deadline, "the front did not start"
            time.sleep(0.05)
        connection = UnixHTTPConnection(str(listen), 10.0)
        connection.request("GET", "/_ping")
        response = connection.getresponse()
        assert response.status == 502
        assert f"dockerd could not be reached at unix://{nowhere}" in response.read().decode()
    finally:
        front.terminate()
        _out, err = front.communicate(timeout=30)
    # It says so when it starts too (and serves all the same: dockerd may be starting).
    assert f"dockerd could not be reached at unix://{nowhere}" in err, err
