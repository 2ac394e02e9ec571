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
    process = node.popen([sys.executable, "-m", "plugins.cli", "front", "--listen", FRONT, "--docker", "unix:///run/docker.sock",
                          "--store", lab.zookeeper_url, "--retention", "3600"], str(log))
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
        # (stdin stays open until the answer came: the CLI ends an attach whose stdin is at its end)
        attached = subprocess.Popen(front_argv(lab, "attach", "--sig-proxy=false", reader), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
        watchdog = threading.Timer(30, attached.kill)
        watchdog.start()
        attached.stdin.write("hello\n")
        attached.stdin.flush()
        answer = attached.stdout.readline()
        watchdog.cancel()
        attached.stdin.close()
        attached.wait(timeout=20)
        assert answer.strip() == "got-hello", answer

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


def acsnet_ip(lab, *args: str):
    out = lab.node("h1").run([sys.executable, "-m", "plugins.cli", "ip", *args, "--json", "--store", lab.zookeeper_url]).stdout
    return json.loads(out)


def test_an_application_redeployed_gets_its_addresses_back(lab, front):
    tag = uuid.uuid4().hex[:4]
    network, app = f"fapp-{tag}", f"web-{tag}"
    names = [f"web{i}-{tag}" for i in range(3)]
    others = [f"other{i}-{tag}" for i in range(2)]
    try:
        create_network(lab, network, V217, hosts=("h1",))
        for name in names:
            via_front(lab, "run", "-d", *QUICK, "--net", network, "--label", f"acsnet.app={app}", "--name", name, IMAGE, "sleep", "600")
        first = {ip_of(lab, name, network) for name in names}
        assert len(first) == 3
        assert {(a["ip"], a["state"]) for a in acsnet_ip(lab, "list", "--app", app)} == {(ip, "in use by h1") for ip in first}

        via_front(lab, "rm", "-f", *names)
        kept = acsnet_ip(lab, "list", "--app", app)
        assert {a["ip"] for a in kept} == first and all(a["state"].startswith("retained until") for a in kept), kept
        # Kept for the application: a container of no application gets none of them.
        via_front(lab, "run", "-d", *QUICK, "--net", network, "--name", others[0], IMAGE, "sleep", "600")
        assert ip_of(lab, others[0], network) not in first

        # Redeployed, the application gets the same three addresses.
        for name in names:
            via_front(lab, "run", "-d", *QUICK, "--net", network, "--label", f"acsnet.app={app}", "--name", name, IMAGE, "sleep", "600")
        assert {ip_of(lab, name, network) for name in names} == first

        # Released, they are free for anyone.
        via_front(lab, "rm", "-f", *names)
        assert sorted(acsnet_ip(lab, "release", "--app", app)["released"]) == sorted(first)
        assert acsnet_ip(lab, "list", "--app", app) == []
        pinned = sorted(first)[0]
        via_front(lab, "run", "-d", *QUICK, "--net", network, "--ip", pinned, "--name", others[1], IMAGE, "sleep", "600")
        via_front(lab, "rm", "-f", others[1])
        assert acsnet_ip(lab, "list", "--app", app) == [], "a container of no application left a retention behind"
    finally:
        remove(lab, {"h1": names + others}, [network])
