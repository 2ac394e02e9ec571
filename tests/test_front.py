"""acsnet front in the lab: the real docker CLI with DOCKER_HOST pointed at the front, in front of a real
dockerd. IP labels pin addresses; streaming and hijacked commands behave as against dockerd itself."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
import uuid

import pytest

from plugins.lab.dockerd import IMAGE
from plugins.lab.topology import DOCKER_CLI
from tests.test_vlan import QUICK, V217, create_network, remove

FRONT = "unix:///run/acsnet/docker.sock"
LABEL = "com.docker.network.endpoint.ipv4address"


@pytest.fixture(scope="module")
def front(lab, tmp_path_factory):
    node = lab.node("h1")
    log = tmp_path_factory.mktemp("front") / "front.log"
    process = node.popen([sys.executable, "-m", "plugins.cli", "front", "--listen", FRONT, "--docker", "unix:///run/docker.sock"],
                         str(log))
    deadline = time.monotonic() + 20
    while via_front(lab, "version", check=False).returncode != 0:
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield process
    process.terminate()
    process.wait(timeout=10)


def via_front(lab, *args: str, check: bool = True, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": FRONT}
    return lab.node("h1").run([DOCKER_CLI, *args], check=check, timeout=timeout, env=env, **kwargs)


def front_argv(lab, *args: str) -> list[str]:
    return lab.node("h1").command(["env", f"DOCKER_HOST={FRONT}", DOCKER_CLI, *args])


def ip_of(lab, container: str, network: str) -> str:
    return json.loads(via_front(lab, "inspect", container).stdout)[0]["NetworkSettings"]["Networks"][network]["IPAddress"]


def test_the_ip_label_pins_the_address_and_bad_labels_are_refused(lab, front):
    tag = uuid.uuid4().hex[:4]
    network = f"fv217-{tag}"
    names = [f"pin-{tag}", f"twice-{tag}", f"both-{tag}"]
    try:
        create_network(lab, network, V217, hosts=("h1",))
        via_front(lab, "run", "-d", *QUICK, "--net", network, "--label", f"{LABEL}=198.51.100.120", "--name", names[0],
                  IMAGE, "sleep", "600")
        assert ip_of(lab, names[0], network) == "198.51.100.120"

        taken = via_front(lab, "run", "-d", *QUICK, "--net", network, "--label", f"{LABEL}=198.51.100.120",
                          "--name", names[1], IMAGE, "sleep", "600", check=False)
        assert taken.returncode != 0 and "198.51.100.120 is in use" in taken.stderr and "h1" in taken.stderr, taken.stderr
        lab.docker("h1", "rm", "-f", names[1], check=False)

        # Given both ways, --ip and the label must agree; agreeing is fine.
        via_front(lab, "run", "-d", *QUICK, "--net", network, "--ip", "198.51.100.121", "--label", f"{LABEL}=198.51.100.121",
                  "--name", names[2], IMAGE, "sleep", "600")
        assert ip_of(lab, names[2], network) == "198.51.100.121"
        before = lab.docker("h1", "ps", "-aq").stdout
        for extra, message in ((["--label", f"{LABEL}=not-an-ip"], f"label {LABEL}: 'not-an-ip' is not an IPv4 address"),
                               (["--label", f"{LABEL}=203.0.113.5"], "203.0.113.5 is outside network"),
                               (["--ip", "198.51.100.122", "--label", f"{LABEL}=198.51.100.123"], "disagree")):
            refused = via_front(lab, "create", "--net", network, *extra, IMAGE, "true", check=False)
            assert refused.returncode != 0 and message in refused.stderr, refused.stderr
        assert lab.docker("h1", "ps", "-aq").stdout == before, "a refused create made a container"
        refused = via_front(lab, "create", "--label", f"{LABEL}=198.51.100.124", IMAGE, "true", check=False)
        assert refused.returncode != 0 and "needs a user-defined network" in refused.stderr
    finally:
        remove(lab, {"h1": names}, [network])


def test_streams_and_hijacked_connections_pass_through(lab, front):
    tag = uuid.uuid4().hex[:4]
    ticker, reader = f"tick-{tag}", f"read-{tag}"
    try:
        events = subprocess.Popen(front_argv(lab, "events", "--filter", f"container={ticker}", "--format", "{{.Action}}"),
                                  stdout=subprocess.PIPE, text=True)
        via_front(lab, "run", "-d", *QUICK, "--name", ticker, IMAGE, "sh", "-c",
                  "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done")

        # logs -f streams: lines arrive while the container is still writing them.
        logs = subprocess.Popen(front_argv(lab, "logs", "-f", ticker), stdout=subprocess.PIPE, text=True)
        seen = [logs.stdout.readline().strip() for _ in range(8)]
        logs.kill()
        assert seen[0].startswith("line") and len(set(seen)) == 8, seen

        # exec -ti: a terminal both ways.
        pid, fd = pty.fork()
        if pid == 0:
            argv = front_argv(lab, "exec", "-ti", ticker, "sh")
            os.execvp(argv[0], argv)
        os.write(fd, b"echo answer-$((6*7)); exit\n")
        out = b""
        deadline = time.monotonic() + 20
        while b"answer-42" not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
        os.waitpid(pid, 0)
        assert b"answer-42" in out, out

        # attach: stdin to the container's process, its output back.
        via_front(lab, "run", "-d", "-i", *QUICK, "--name", reader, IMAGE, "sh", "-c", "read x; echo got-$x")
        attached = subprocess.run(front_argv(lab, "attach", "--sig-proxy=false", reader), input="hello\n",
                                  capture_output=True, text=True, timeout=30)
        assert "got-hello" in attached.stdout, (attached.stdout, attached.stderr)

        via_front(lab, "rm", "-f", ticker)
        actions = []
        reading = threading.Thread(target=lambda: actions.extend(line.strip() for line in events.stdout), daemon=True)
        reading.start()
        deadline = time.monotonic() + 20
        while "destroy" not in actions and time.monotonic() < deadline:
            time.sleep(0.2)
        events.kill()
        assert {"create", "start", "die", "destroy"} <= set(actions), actions

        # Plain requests answer exactly as dockerd does.
        assert via_front(lab, "ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.split("\n")[0].split()[:2] == \
            lab.docker("h1", "ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.split("\n")[0].split()[:2]
    finally:
        lab.docker("h1", "rm", "-f", ticker, reader, check=False)
