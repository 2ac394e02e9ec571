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

from acsnet.lab.dockerd import IMAGE
from acsnet.lab.host import REPO
from tests.test_vlan import QUICK, V217, V218, create_network, remove

FRONT = "unix:///run/acsnet/docker.sock"
LABEL = "com.docker.network.endpoint.ipv4address"


@pytest.fixture(scope="module")
def front(lab, tmp_path_factory):
    yield from _front(lab, tmp_path_factory)


@pytest.fixture(scope="module")
def front26(lab26, tmp_path_factory):
    """The front before h1's dockerd 26."""
    yield from _front(lab26, tmp_path_factory)


def _front(lab, tmp_path_factory):
    node = lab.node("h1")
    log = tmp_path_factory.mktemp("front") / "front.log"
    process = node.popen([sys.executable, "-m", "acsnet.cli", "front", "--listen", FRONT, "--docker", "unix:///run/docker.sock",
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
    return lab.node("h1").run([lab.docker_cli, *args], check=check, timeout=timeout, env=env, **kwargs)


def front_argv(lab, *args: str) -> list[str]:
    return lab.node("h1").command(["env", f"DOCKER_HOST={FRONT}", lab.docker_cli, *args])


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
        # --since a moment before: the CLI may subscribe after the run's "create" was sent (a loaded CI
        # machine did), and the replay still goes through the front; "destroy" comes live, streamed.
        since = str(int(time.time()) - 1)
        events = subprocess.Popen(front_argv(lab, "events", "--since", since, "--filter", f"container={ticker}",
                                             "--format", "{{.Action}}"),
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
    out = lab.node("h1").run([sys.executable, "-m", "acsnet.cli", "ip", *args, "--json", "--store", lab.zookeeper_url]).stdout
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

        lab.docker("h1", "rm", "-f", names[0])  # removed behind the front's back: kept all the same
        via_front(lab, "rm", "-f", *names[1:])
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


# A client that connects and then sends nothing: "raw" never starts TLS, "tls" completes the handshake
# and sends no request. It says when it connected and when the front closed it (time.monotonic() is
# the system's CLOCK_MONOTONIC, comparable across processes), and what the front said, if anything.
IDLE_CLIENT = """
import json, socket, ssl, sys, time
mode, port, certs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conn = socket.create_connection(("127.0.0.1", port), timeout=5)
if mode == "tls":
    context = ssl.create_default_context(cafile=certs + "/ca.pem")
    context.load_cert_chain(certs + "/cert.pem", certs + "/key.pem")
    conn = context.wrap_socket(conn, server_hostname="127.0.0.1")
conn.settimeout(None)
print(json.dumps({"connected": time.monotonic()}), flush=True)
said = b""
try:
    while chunk := conn.recv(4096):
        said += chunk
except OSError:
    pass
print(json.dumps({"closed": time.monotonic(), "said": said.decode("latin-1")}), flush=True)
"""


def test_an_idle_client_stalls_no_other_tls_client(lab, tmp_path):
    from tests.test_metrics_tls import openssl

    node, timeout = lab.node("h1"), 20
    certs = tmp_path / "certs"
    certs.mkdir()
    d = str(certs)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=acsnet-front-ca",
            "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("cert", "extendedKeyUsage=clientAuth")):
        key = "key" if name == "cert" else "server-key"
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{d}/{key}.pem", "-out", f"{d}/{name}.csr")
        (certs / f"{name}.ext").write_text(extra + "\n")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
                "-days", "1", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.pem")
    port = 23760
    log = tmp_path / "front.log"
    process = node.popen([sys.executable, "-m", "acsnet.cli", "front", "--listen", f"tcp://127.0.0.1:{port}",
                          "--docker", "unix:///run/docker.sock", "--tls-cert", f"{d}/server.pem", "--tls-key", f"{d}/server-key.pem",
                          "--tls-ca", f"{d}/ca.pem", "--request-timeout", str(timeout)], str(log))
    env = {**os.environ, "DOCKER_HOST": f"tcp://127.0.0.1:{port}", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": d}
    idle = []
    try:
        deadline = time.monotonic() + 20
        while node.run([lab.docker_cli, "version"], check=False, env=env, timeout=30).returncode != 0:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        for mode in ("raw", "tls"):
            idle.append(subprocess.Popen(node.command([sys.executable, "-c", IDLE_CLIENT, mode, str(port), d]),
                                         stdout=subprocess.PIPE, text=True))
        connected = [json.loads(client.stdout.readline())["connected"] for client in idle]

        for _ in range(20):  # each would wait for the idle clients' timeout if they held up the front
            node.run([lab.docker_cli, "ps"], env=env, timeout=timeout / 2)
        served = time.monotonic()

        # Both idle clients were still connected while the others were served, then cut off at the timeout;
        # the one that sent no request head was told why.
        ends = [json.loads(client.stdout.readline() or "{}") for client in idle]
        for start, end in zip(connected, ends):
            assert served < end["closed"] and timeout - 1 <= end["closed"] - start <= timeout + 30, (connected, served, ends)
        assert ends[0]["said"] == "", ends[0]
        assert ends[1]["said"].startswith("HTTP/1.1 408 ") and "no complete request head within 20s" in ends[1]["said"], ends[1]
    finally:
        for client in idle:
            client.kill()
        process.terminate()
        process.wait(timeout=10)


# Compose v1 (Debian 12's docker-compose 1.29.2) and v2 (Debian 13's 2.26, fetched by .ci/fetch-trixie,
# run standalone). v1 disconnects each created container from its network and connects it again before
# starting it; the front must pin on that connect too.
COMPOSE = {"v1": "/usr/bin/docker-compose",
           "v2": os.path.join(REPO, ".cache/trixie/docker-compose/usr/libexec/docker/cli-plugins/docker-compose")}
COMPOSE_FILE = """\
version: "2.4"
services:
  pinned:
    image: {image}
    command: ["sleep", "600"]
    container_name: {prefix}-pinned
    stop_grace_period: 1s
    labels:
      com.docker.network.endpoint.ipv4address: "{address}"
    networks: [ext]
  app:
    image: {image}
    command: ["sleep", "600"]
    container_name: {prefix}-app
    stop_grace_period: 1s
    labels:
      acsnet.app: "{app}"
    networks: [ext]
networks:
  ext:
    external: true
    name: {network}
"""


@pytest.mark.parametrize("engine", ["20.10", "26"])
@pytest.mark.parametrize("flavour", ["v1", "v2"])
def test_compose_keeps_the_ip_labels(request, tmp_path, flavour, engine):
    """An external acsnet network, an ipv4address label and an application's kept address, through the
    front, with both compose versions against both engines (the 26 lab is the one of test_engine26)."""
    lab = request.getfixturevalue("lab" if engine == "20.10" else "lab26")
    request.getfixturevalue("front" if engine == "20.10" else "front26")
    binary = COMPOSE[flavour]
    assert os.access(binary, os.X_OK), f"{binary} is missing: run .ci/install"
    tag = uuid.uuid4().hex[:4]
    network, app, prefix, other = f"fc{flavour}-{tag}", f"capp-{tag}", f"c{flavour}-{tag}", f"cother-{tag}"
    address = {"v1": "198.51.100.77", "v2": "198.51.100.78"}[flavour]
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE.format(image=IMAGE, prefix=prefix, address=address, app=app,
                                                                     network=network))
    env = {**os.environ, "DOCKER_HOST": FRONT}

    def compose(*args: str, check: bool = True):
        return lab.node("h1").run([binary, "-f", str(tmp_path / "docker-compose.yml"), "-p", prefix, *args],
                                  check=check, timeout=120, env=env)

    assert compose("version").returncode == 0
    try:
        create_network(lab, network, V217, hosts=("h1",))
        compose("up", "-d")
        assert ip_of(lab, f"{prefix}-pinned", network) == address
        kept = ip_of(lab, f"{prefix}-app", network)

        # Down and up again, with a container of no application started in between: the application's
        # address was kept for it, and the label's address is pinned again.
        compose("down", "-t", "1")
        via_front(lab, "run", "-d", *QUICK, "--net", network, "--name", other, IMAGE, "sleep", "600")
        assert ip_of(lab, other, network) not in (kept, address)
        compose("up", "-d")
        assert (ip_of(lab, f"{prefix}-pinned", network), ip_of(lab, f"{prefix}-app", network)) == (address, kept)
    finally:
        compose("down", "-t", "1", check=False)
        lab.node("h1").run([sys.executable, "-m", "acsnet.cli", "ip", "release", "--app", app, "--store", lab.zookeeper_url],
                           check=False)
        remove(lab, {"h1": [f"{prefix}-pinned", f"{prefix}-app", other]}, [network])


def test_network_connect_of_a_labelled_container_pins_its_address(lab, front):
    tag = uuid.uuid4().hex[:4]
    first, second, name = f"fcon1-{tag}", f"fcon2-{tag}", f"con-{tag}"
    try:
        create_network(lab, first, V218, hosts=("h1",))
        create_network(lab, second, V217, hosts=("h1",))
        # Made through dockerd itself on another network: its label names an address of the second one.
        lab.docker("h1", "create", *QUICK, "--net", first, "--label", f"{LABEL}=198.51.100.79", "--name", name,
                   IMAGE, "sleep", "600")
        via_front(lab, "network", "connect", second, name)
        via_front(lab, "start", name)
        assert ip_of(lab, name, second) == "198.51.100.79"
        assert ip_of(lab, name, first).startswith("203.0.113.")  # not its label's network: left alone
    finally:
        remove(lab, {"h1": [name]}, [first, second])


def test_the_ipv6_label_pins_a_dual_stack_containers_ipv6_address_reached_from_another_host(lab, front):
    from tests.test_ipv6 import create_dual_stack, pings6

    tag = uuid.uuid4().hex[:4]
    network, pinned, peer = f"fv6-{tag}", f"pin6-{tag}", f"peer6-{tag}"
    label6 = "com.docker.network.endpoint.ipv6address"
    try:
        create_dual_stack(lab, network, 196)
        via_front(lab, "run", "-d", *QUICK, "--net", network, "--label", f"{LABEL}=100.64.6.60",
                  "--label", f"{label6}=2001:db8:6::60", "--name", pinned, IMAGE, "sleep", "600")
        settings = json.loads(via_front(lab, "inspect", pinned).stdout)[0]["NetworkSettings"]["Networks"][network]
        assert (settings["IPAddress"], settings["GlobalIPv6Address"]) == ("100.64.6.60", "2001:db8:6::60"), settings
        lab.docker("h2", "run", "-d", *QUICK, "--net", network, "--name", peer, IMAGE, "sleep", "600")
        assert pings6(lab, "h2", peer, "2001:db8:6::60")
        refused = via_front(lab, "create", "--net", network, "--label", f"{label6}=2001:db8:7::60", IMAGE, "true", check=False)
        assert refused.returncode != 0 and "2001:db8:7::60 is outside network" in refused.stderr, refused.stderr
    finally:
        remove(lab, {"h1": [pinned], "h2": [peer]}, [network])
