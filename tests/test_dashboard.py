"""`acsnet pools` and the dashboard's process on real stores (embedded and ZooKeeper): counts from the
chunk bitmaps agree with the address records, pages of addresses, search answers and bad input, and
the access rules of its TCP listener. The browser's view of a lab is tests/test_dashboard_browser.py."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse

import netaddr
import pytest

from acsnet.ipam import retention
from acsnet.ipam.driver import AcsnetIpam
from acsnet.ipam.model import RETAINED
from acsnet.ipam.state import AddressRecords
from acsnet.lab.host import REPO
from acsnet.lab.zookeeper import free_port
from acsnet.plugins.protocol import AddressRelease, AddressRequest, PoolRequest
from acsnet.pools import pool_usages
from acsnet.store import open_store
from tests import test_metrics_tls

MAC_OPTION = "com.docker.network.endpoint.macaddress"


def fill(store, subnet: str, count: int, ip_range: str | None = None, host: str = "h1") -> str:
    """A pool with a gateway and `count` endpoint addresses, through the IPAM itself."""
    ipam = AcsnetIpam(store, host)
    pool_id = ipam.request_pool(PoolRequest("acsnet-local", netaddr.IPNetwork(subnet),
                                            netaddr.IPNetwork(ip_range) if ip_range else None, {}, False)).pool_id
    ipam.request_address(AddressRequest(pool_id, None, {"RequestAddressType": "com.docker.network.gateway"}))
    for n in range(count):
        ipam.request_address(AddressRequest(pool_id, None, {MAC_OPTION: f"02:42:00:00:{n // 256:02x}:{n % 256:02x}"}))
    return pool_id


def test_pool_counts_from_bitmaps_agree_with_the_address_records(store):
    pool_id = fill(store, "10.40.0.0/16", 250, ip_range="10.40.1.0/24")
    ipam = AcsnetIpam(store, "h1")
    # An address kept for an application when its container goes (IP retention), one released.
    kept = str(next(a for _, a, r in AddressRecords.read_all(store) if r.kind == "endpoint"))
    record = AddressRecords.read(store, pool_id, kept)
    assert retention.remember(store, "web", 600, netaddr.IPAddress(kept), record.mac)
    ipam.release_address(AddressRelease(pool_id, netaddr.IPAddress(kept)))
    ipam.release_address(AddressRelease(pool_id, netaddr.IPAddress("10.40.1.200")))
    ipam.request_address(AddressRequest(pool_id, netaddr.IPAddress("10.40.7.7"), {MAC_OPTION: "02:42:00:00:77:77"}))

    [usage] = pool_usages(store)
    records = {a: r for p, a, r in AddressRecords.read_all(store) if p == pool_id}
    in_range = {a: r for a, r in records.items() if netaddr.IPAddress(a) in netaddr.IPNetwork("10.40.1.0/24")}
    # The range is a /24 of a /16: all 256 of its addresses can be handed out; the gateway (the subnet's first
    # address) and 10.40.7.7 (pinned) are outside it, and not counted.
    assert usage.size == 256 and usage.used == len(in_range) > 240 and len(records) == len(in_range) + 2
    assert usage.retained == sum(1 for r in in_range.values() if r.kind == RETAINED) == 1
    assert (usage.free, usage.in_use, usage.range, usage.subnet) == (256 - usage.used, usage.used - 1, "10.40.1.0/24", "10.40.0.0/16")


def test_acsnet_pools_json_and_table(embedded_url):
    store = open_store(embedded_url)
    try:
        fill(store, "10.42.0.0/24", 10)
    finally:
        store.close()
    result = subprocess.run([sys.executable, "-m", "acsnet.cli", "pools", "--json", "--store", embedded_url], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [pool] = json.loads(result.stdout)
    assert (pool["subnet"], pool["size"], pool["used"], pool["free"], pool["retained"], pool["hosts"]) == \
        ("10.42.0.0/24", 254, 11, 243, 0, ["h1"])
    table = subprocess.run([sys.executable, "-m", "acsnet.cli", "pools", "--store", embedded_url], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "10.42.0.0/24" in table.stdout and "4.3" in table.stdout, table.stdout


def test_acsnet_pools_with_a_bad_store_url_says_so():
    result = subprocess.run([sys.executable, "-m", "acsnet.cli", "pools", "--store", "http://nowhere"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown store URL" in result.stderr and "Traceback" not in result.stderr


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("dashboard", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def get(path: str, url: str) -> tuple[int, str]:
    connection = UnixHTTPConnection(path)
    try:
        connection.request("GET", url)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def start_dashboard(tmp_path, store_url: str, *extra: str) -> tuple[subprocess.Popen, str]:
    path = str(tmp_path / "dash.sock")
    process = subprocess.Popen([sys.executable, "-m", "acsnet.cli", "dashboard", "--store", store_url,
                                "--listen", f"unix://{path}", *extra], cwd=REPO,
                               stdout=open(tmp_path / "dashboard.log", "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120  # a loaded machine (CI shares its cores) starts gunicorn slowly
    while True:
        try:
            if get(path, "/healthz")[0] in (200, 503):
                return process, path
        except OSError:
            pass
        assert process.poll() is None, (tmp_path / "dashboard.log").read_text()
        assert time.monotonic() < deadline, "the dashboard did not answer"
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    """gunicorn's master stops its worker and exits; a TERM that came before its handlers (a slow start)
    may be lost, so it is killed after a while (its worker exits when it sees its parent gone)."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)
    return value


def test_dashboard_pages_search_and_bad_input(tmp_path, store_url):
    store = open_store(store_url)
    try:
        pool_id = fill(store, "10.43.0.0/24", 120)
        store.register_host("h1", "test", {"host_id": "h1"})
        process, path = start_dashboard(tmp_path, store_url)
        try:
            status, html = until(lambda: (r := get(path, "/")) and 'data-used="121"' in r[1] and r)
            assert status == 200 and 'data-subnet="10.43.0.0/24"' in html and "<script>" in html
            assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # nothing fetched

            # Pages of taken addresses: 121 in pages of 50, each address once.
            seen = []
            for page in (1, 2, 3):
                status, fragment = get(path, f"/fragment/addresses?pool={pool_id}&page={page}")
                assert status == 200
                seen += [line.split('data-ip="')[1].split('"')[0] for line in fragment.split("\n") if 'class="address"' in line]
            assert seen == [f"10.43.0.{n}" for n in range(1, 122)]  # the gateway, then the endpoints, in order

            status, body = get(path, "/api/search?q=10.43.0.7")
            [row] = json.loads(body)["rows"]
            assert status == 200 and row["holder"] == "h1" and row["host_state"] == "alive" and row["kind"] == "endpoint"
            status, body = get(path, "/api/search?q=10.43.0.250")
            assert status == 200 and "is free in 10.43.0.0/24" in json.loads(body)["message"]
            status, body = get(path, "/api/search?q=192.0.2.99")
            assert status == 200 and "in no pool" in json.loads(body)["message"]
            for bad, says in (("10.43.0.300", "not a valid IP address"), ("<script>x", "not understood"),
                              ("a b", "not understood"), ("x" * 300, "not understood")):
                status, body = get(path, "/api/search?" + urllib.parse.urlencode({"q": bad}))
                assert status == 400 and says in json.loads(body)["Err"], (bad, body)
                status, fragment = get(path, "/fragment/search?" + urllib.parse.urlencode({"q": bad}))
                assert status == 400 and says in fragment and "<script>x" not in fragment
            status, body = get(path, "/api/search?q=web")
            assert status == 200 and "not found: no container on a vlan, vxlan or vpc network is called 'web'" in json.loads(body)["message"]
            assert get(path, "/fragment/hosts?hosts_page=x")[0] == 400
            assert get(path, "/fragment/addresses?pool=nope")[0] == 400
            assert get(path, "/fragment/nothing")[0] == 404
            assert json.loads(get(path, "/nowhere")[1])["Err"]

            # Live: one more address shows on the next read of the pools, pushed by the watch.
            AcsnetIpam(store, "h1").request_address(AddressRequest(pool_id, None, {MAC_OPTION: "02:42:00:00:99:99"}))
            until(lambda: 'data-used="122"' in get(path, "/fragment/pools")[1])
            assert process.poll() is None
        finally:
            stop(process)
    finally:
        store.close()


def test_live_index_follows_container_names_written_after_the_endpoint(store):
    """The dashboard's index on a real store: names the host's namer writes after the endpoint exists,
    one announced pass, two passes of which the watch saw only the second (every record read again), a
    rename (the old name leaves the index); a name is never written into an endpoint deleted meanwhile."""
    from acsnet.dashboard.live import LiveStore
    from acsnet.plugins.segments import state
    from acsnet.plugins.segments.model import LAYOUTS, NamesChanged, SegmentEndpoint

    layout, host = LAYOUTS["vlan"], "h1"
    endpoints = [SegmentEndpoint(f"{n:x}" * 64, "n" * 64, 10, f"10.44.0.{n}", 24, f"02:42:0a:2c:00:0{n}", time.time())
                 for n in (2, 3, 4)]
    state.prepare_host_endpoints(store, layout, host)
    for endpoint in endpoints:
        state.write_host_endpoint(store, layout, host, endpoint)
    live = LiveStore(store, "test").start()
    try:
        until(lambda: all(live.endpoints_at(e.ip) for e in endpoints))
        first, second, third = (e.endpoint_id for e in endpoints)

        def name(endpoint_id: str, container: str) -> None:
            assert state.name_host_endpoint(store, layout, host, endpoint_id, container + "c" * 60, container)

        def named(container: str) -> list[str]:
            return [e.endpoint.endpoint_id for e in live.endpoints_named(container)]

        name(first, "web0")
        state.write_names_changed(store, layout, host, NamesChanged(1, (first,)))
        until(lambda: named("web0") == [first])
        assert [e.endpoint.ip for e in live.endpoints_of_container("web0ccc", 10)] == ["10.44.0.2"]
        assert named("WEB0") == [first]  # whatever the case, when no name matches exactly

        name(second, "web1")
        name(third, "web2")
        state.write_names_changed(store, layout, host, NamesChanged(3, (third,)))  # the pass that wrote web1 unseen
        until(lambda: named("web1") == [second] and named("web2") == [third])

        name(first, "web9")
        state.write_names_changed(store, layout, host, NamesChanged(4, (first,)))
        until(lambda: named("web9") == [first])
        assert named("web0") == [] and live.endpoints_of_container("web0ccc", 10) == []

        state.clear_host_endpoint(store, layout, host, third)
        assert not state.name_host_endpoint(store, layout, host, third, "f" * 64, "late")
        assert state.read_host_endpoint(store, layout, host, third) is None
        until(lambda: named("web2") == [])
    finally:
        live.stop()


def test_the_container_namer_waits_out_a_dockerd_that_does_not_answer(store, tmp_path):
    """No dockerd at the socket (down, or a managed plugin without docker.sock): a pass changes nothing,
    raises nothing, and says to look again soon while a new endpoint has no name."""
    from acsnet.docker_api import parse_docker_address
    from acsnet.plugins.segments import state
    from acsnet.plugins.segments.containers import ContainerNamer
    from acsnet.plugins.segments.model import LAYOUTS, SegmentEndpoint

    layout = LAYOUTS["vxlan"]
    endpoint = SegmentEndpoint("e" * 64, "n" * 64, 5001, "10.45.0.2", 24, "02:42:0a:2d:00:02", time.time())
    state.prepare_host_endpoints(store, layout, "h1")
    state.write_host_endpoint(store, layout, "h1", endpoint)
    namer = ContainerNamer(store, layout, "h1", parse_docker_address(str(tmp_path / "no-docker.sock")), lambda: [endpoint])
    assert namer.name_pass() is True
    assert state.read_host_endpoint(store, layout, "h1", endpoint.endpoint_id) == endpoint
    assert state.read_names_changed(store, layout, "h1") is None
    assert ContainerNamer(store, layout, "h1", namer.docker, lambda: []).name_pass() is False  # nothing to name: dockerd not asked


def test_containers_listed_by_dockerd_give_each_endpoint_its_container():
    from acsnet.plugins.segments.containers import endpoint_containers
    from acsnet.plugins.segments.model import SegmentEndpoint

    listed = [{"Id": "c1", "Names": ["/db/web-alias", "/web"],
               "NetworkSettings": {"Networks": {"a": {"EndpointID": "e1"}, "b": {"EndpointID": "e2"}, "none": {"EndpointID": ""}}}},
              {"Id": "c2", "Names": ["/solo"], "NetworkSettings": {"Networks": {"a": None}}},
              {"Id": "c3", "Names": [], "NetworkSettings": None}]
    assert endpoint_containers(listed) == {"e1": ("c1", "web"), "e2": ("c1", "web")}
    assert endpoint_containers({"message": "not a list"}) == {}
    # A record written by an older version (no container fields) and one by a newer (more fields) both read.
    old = {"endpoint_id": "e", "network_id": "n", "segment": 1, "ip": "10.0.0.2", "prefixlen": 24, "mac": "02:42:0a:00:00:02"}
    assert SegmentEndpoint.from_json(old).container_name == ""
    assert SegmentEndpoint.from_json({**old, "container_name": "x", "added_later": 1}).container_name == "x"


@pytest.mark.zookeeper
def test_dashboard_starts_without_its_store_and_follows_it_when_it_comes(tmp_path):
    """Nothing listens on the store's port: the page says the store is down, the process stays."""
    port = free_port()
    process, path = start_dashboard(tmp_path, f"zk://127.0.0.1:{port}/acsnet")
    try:
        status, html = until(lambda: (r := get(path, "/")) and 'id="store-down"' in r[1] and r)
        assert status == 200 and "not reachable" in html
        assert get(path, "/healthz")[0] == 503
        status, fragment = get(path, "/fragment/pools")
        assert status == 503 and "Cannot read the store now" in fragment
        time.sleep(1)
        assert process.poll() is None
    finally:
        stop(process)


def test_a_tcp_listener_needs_tls_with_client_certificates_or_insecure(tmp_path, embedded_url):
    for extra, says in (([], "needs --tls-cert, --tls-key and --tls-ca, or --insecure"),
                        (["--tls-cert", "/x.pem", "--tls-key", "/x.key"], "requires client certificates: give --tls-ca"),
                        (["--listen", "nowhere"], "is not unix:///PATH, tcp://HOST:PORT or HOST:PORT")):
        listen = [] if "--listen" in extra else ["--listen", f"127.0.0.1:{free_port()}"]
        result = subprocess.run([sys.executable, "-m", "acsnet.cli", "dashboard", "--store", embedded_url, *listen, *extra],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode in (1, 2) and says in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.fixture
def pki(tmp_path):
    """A CA, a server and a client certificate, as the metrics listener's tests make them."""
    return test_metrics_tls.pki.__wrapped__(tmp_path)


def test_dashboard_over_tls_needs_a_client_certificate(tmp_path, embedded_url, pki):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "acsnet.cli", "dashboard", "--store", embedded_url,
                                "--listen", f"tcp://127.0.0.1:{port}", "--tls-cert", f"{pki}/server.pem",
                                "--tls-key", f"{pki}/server.key", "--tls-ca", f"{pki}/ca.pem"], cwd=REPO,
                               stdout=open(tmp_path / "dashboard.log", "ab"), stderr=subprocess.STDOUT)
    try:
        client = ssl.create_default_context(cafile=f"{pki}/ca.pem")
        client.load_cert_chain(f"{pki}/client.pem", f"{pki}/client.key")

        def fetch(context):
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
            connection.request("GET", "/healthz")
            return connection.getresponse().status

        status = until(lambda: _quietly(fetch, client), 120)
        assert status == 200
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            fetch(ssl.create_default_context(cafile=f"{pki}/ca.pem"))
    finally:
        stop(process)


def _quietly(fetch, context):
    try:
        return fetch(context)
    except (ConnectionRefusedError, ConnectionResetError):
        return None


def test_no_dashboard_socket_left_world_writable(tmp_path, embedded_url):
    process, path = start_dashboard(tmp_path, embedded_url)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o660
    finally:
        stop(process)


@pytest.mark.docker
@pytest.mark.zookeeper
def test_dashboard_finds_a_lab_container_by_name_and_by_id(lab, tmp_path):
    """dockerd sends the plugins no container name or id: h1's vlan driver asks h1's dockerd in the
    background and writes them into the endpoint record; the dashboard on the lab's ZooKeeper finds the
    container by its name, its id and a 12-digit prefix of it, and forgets it when it is removed."""
    import uuid

    from acsnet.lab.dockerd import IMAGE

    network, name = f"dn{uuid.uuid4().hex[:6]}", f"dash-{uuid.uuid4().hex[:6]}"
    socket_path = str(tmp_path / "dashboard.sock")
    dashboard = lab.node("svc").popen([sys.executable, "-m", "acsnet.cli", "dashboard", "--store", lab.zookeeper_url,
                                       "--listen", f"unix://{socket_path}"], str(tmp_path / "dashboard.log"))
    try:
        lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "198.18.41.0/24",
                   "--gateway", "198.18.41.1", "-o", "VlanId=241", network)
        lab.docker("h1", "run", "-d", "--stop-timeout", "1", "--net", network, "--name", name, IMAGE, "sleep", "600")
        started = time.monotonic()
        info = json.loads(lab.docker("h1", "inspect", name).stdout)[0]
        container_id, settings = info["Id"], info["NetworkSettings"]["Networks"][network]

        def found(query: str) -> dict | None:
            try:
                status, body = get(socket_path, "/api/search?" + urllib.parse.urlencode({"q": query}))
            except OSError:  # the dashboard not listening yet
                return None
            answer = json.loads(body) if status == 200 else {}
            return answer if answer.get("rows") else None

        by_name = until(lambda: found(name), 60)
        print(f"found by name {time.monotonic() - started:.2f}s after docker run returned")
        [row] = by_name["rows"]
        assert by_name["kind"] == "container"
        assert (row["ip"], row["holder"], row["host_state"], row["endpoint"], row["container"], row["container_id"]) == \
            (settings["IPAddress"], "h1", "alive", settings["EndpointID"], name, container_id)
        assert row["network"].startswith("vlan ")
        for query in (container_id, container_id[:12], "/" + name):
            answer = found(query)
            assert answer is not None and [r["ip"] for r in answer["rows"]] == [settings["IPAddress"]], query
            assert answer["kind"] == ("container" if query.startswith("/") else "container id"), answer
        # The page shows the container's name beside its address.
        status, fragment = get(socket_path, "/fragment/search?" + urllib.parse.urlencode({"q": name}))
        assert status == 200 and f'data-container-id="{container_id}"' in fragment and f">{name}" in fragment

        status, body = get(socket_path, "/api/search?q=no-such-container")
        assert status == 200 and not json.loads(body)["rows"]
        assert json.loads(body)["message"].startswith("not found: no container on a vlan, vxlan or vpc network is called "
                                                      "'no-such-container'")
        status, fragment = get(socket_path, "/fragment/search?q=no-such-container")
        assert status == 200 and 'id="search-empty"' in fragment and "not found" in fragment

        # Gone from dockerd, gone from the index.
        lab.docker("h1", "rm", "-f", name)
        until(lambda: found(name) is None, 30)
        status, body = get(socket_path, "/api/search?" + urllib.parse.urlencode({"q": container_id[:12]}))
        assert status == 200 and "not found: no endpoint or container id starts with" in json.loads(body)["message"]
        assert dashboard.poll() is None
    finally:
        lab.docker("h1", "rm", "-f", name, check=False)
        lab.docker("h1", "network", "rm", network, check=False)
        dashboard.terminate()
        dashboard.wait(15)


@pytest.mark.docker
@pytest.mark.zookeeper
def test_the_front_names_what_it_starts_when_the_driver_cannot_ask_dockerd(lab, tmp_path):
    """h1's vlan driver given a dockerd socket that does not exist (as a managed plugin has none): a
    container started on dockerd directly stays nameless, one started through `acsnet front` is found by
    its name and id at once: the front wrote them into its endpoint's record after the start."""
    import uuid

    from acsnet.lab.dockerd import IMAGE

    network, suffix = f"df{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    front = f"unix:///run/acsnet/db-front-{suffix}.sock"
    socket_path = str(tmp_path / "dashboard.sock")
    dashboard = lab.node("svc").popen([sys.executable, "-m", "acsnet.cli", "dashboard", "--store", lab.zookeeper_url,
                                       "--listen", f"unix://{socket_path}"], str(tmp_path / "dashboard.log"))
    lab.kill_plugin("h1", "vlan", signal.SIGTERM)
    lab.start_plugin("h1", "vlan", "--docker", "unix:///run/acsnet/no-dockerd.sock")
    try:
        lab.start_front("h1", front, "--host-id", "h1")
        lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "198.18.42.0/24",
                   "--gateway", "198.18.42.1", "-o", "VlanId=242", network)
        lab.docker("h1", "run", "-d", "--stop-timeout", "1", "--net", network, "--name", f"direct-{suffix}", IMAGE, "sleep", "600")
        lab.node("h1").run([lab.docker_cli, "run", "-d", "--stop-timeout", "1", "--net", network, "--name", f"fronted-{suffix}",
                            IMAGE, "sleep", "600"], env={**os.environ, "DOCKER_HOST": front})
        fronted = json.loads(lab.docker("h1", "inspect", f"fronted-{suffix}").stdout)[0]

        def rows(query: str) -> list:
            try:
                status, body = get(socket_path, "/api/search?" + urllib.parse.urlencode({"q": query}))
            except OSError:
                return []
            return json.loads(body).get("rows", []) if status == 200 else []

        [row] = until(lambda: rows(f"fronted-{suffix}"), 60)
        assert (row["ip"], row["container_id"], row["endpoint"]) == (
            fronted["NetworkSettings"]["Networks"][network]["IPAddress"], fronted["Id"],
            fronted["NetworkSettings"]["Networks"][network]["EndpointID"])
        assert [r["ip"] for r in rows(fronted["Id"][:12])] == [row["ip"]]
        time.sleep(2)  # the driver would have named it by now (it asks every 0.5 s), had it reached dockerd
        assert rows(f"direct-{suffix}") == []
    finally:
        lab.stop_front("h1", front)
        for name in (f"direct-{suffix}", f"fronted-{suffix}"):
            lab.docker("h1", "rm", "-f", name, check=False)
        lab.docker("h1", "network", "rm", network, check=False)
        lab.kill_plugin("h1", "vlan", signal.SIGTERM)
        lab.start_plugin("h1", "vlan")
        dashboard.terminate()
        dashboard.wait(15)


def test_a_host_forgotten_and_back_has_one_sessions_watch_and_each_change_is_called_back_once(store, store_url):
    """A host whose record is deleted (its last session gone, `hosts/<host>` cleared) and that comes
    back: the dashboard keeps the one sessions watch it set (a children watch goes on through its node's
    deletion, on both stores), not a second beside it that would call back, and be worked on, twice."""
    from acsnet.dashboard.live import LiveStore
    from acsnet.store.liveness import HostRecord, HostSessions

    calls, watches = [], []

    class CallsCounted(LiveStore):
        def _on_sessions(self, host, names):
            calls.append((host, list(names)))
            super()._on_sessions(host, names)

    sessions_key = HostSessions.key("h1")
    watch_children = store.watch_children

    def counted(path, callback):
        watches.append(path)
        return watch_children(path, callback)

    store.watch_children = counted  # the real store's watch, counted
    live = CallsCounted(store, "test").start()
    first = open_store(store_url, timeout=5.0)
    returned = None
    try:
        first.register_host("h1", "plugin", {})
        until(lambda: live.sessions.get("h1"))
        first.close()
        HostRecord.clear(store, "h1")
        until(lambda: "h1" not in live.host_names())

        returned = open_store(store_url, timeout=5.0)
        returned.register_host("h1", "plugin", {})
        until(lambda: live.sessions.get("h1"))
        returned.register_host("h1", "second", {})
        two = sorted(HostSessions.read_all(store, "h1"))
        until(lambda: live.sessions.get("h1") == two)
        returned.register_host("h1", "third", {})  # seen after every call of the one before
        until(lambda: len(live.sessions.get("h1", [])) == 3)
        assert watches.count(sessions_key) == 1, "the sessions watch of a host back set again"
        assert calls.count(("h1", two)) == 1, f"one change called back more than once: {calls}"
        assert "h1" not in live.died, "a host alive again is not dead"
    finally:
        live.stop()
        for opened in (first, returned):
            if opened is not None:
                opened.close()


def test_pages_of_addresses_of_a_pool_of_many_chunks(embedded_url):
    """A /16 has 1,024 chunks of 64 addresses: the dashboard's pages of taken addresses and its pool counts
    place each chunk's bits at the pool's own chunk size (10.45.3.7 is bit 7 of chunk 12)."""
    from acsnet.dashboard import queries
    from acsnet.dashboard.live import LiveStore

    store = open_store(embedded_url)
    try:
        pool_id = fill(store, "10.45.0.0/16", 3)
        ipam = AcsnetIpam(store, "h1")
        pinned = ["10.45.3.7", "10.45.200.1", "10.45.255.254"]
        for n, address in enumerate(pinned):
            ipam.request_address(AddressRequest(pool_id, netaddr.IPAddress(address), {MAC_OPTION: f"02:42:00:00:88:{n:02x}"}))
        taken = ["10.45.0.1", "10.45.0.2", "10.45.0.3", "10.45.0.4", *pinned]
        live = LiveStore(store, "test").start()
        try:
            until(lambda: pool_id in live.pools)
            page = until(lambda: (p := queries.addresses(live, pool_id, 1)) and p["total"] == len(taken) and p)
            assert [row["ip"] for row in page["addresses"]] == taken
            assert all(row["kind"] == ("gateway" if row["ip"] == "10.45.0.1" else "endpoint") for row in page["addresses"])
        finally:
            live.stop()
        [usage] = pool_usages(store)
        assert (usage.size, usage.used) == (65534, len(taken))
    finally:
        store.close()


def test_a_released_pools_watches_end_and_a_pool_made_again_is_watched_anew(store):
    """Pools made and released, three times over (the same ids each time: a shared pool's id is its
    request's hash): each released pool's chunks and bitmap watches end in the store (counted by
    `watched_paths`, on both stores), so they do not pile up; a pool made again is watched and shown again."""
    from acsnet.dashboard.live import LiveStore
    from acsnet.ipam.state import PoolRecords

    def watched_below(pool_id: str) -> list[str]:
        return [path for path in store.watched_paths() if path.startswith(PoolRecords.key(pool_id) + "/")]

    live = LiveStore(store, "test").start()
    try:
        # One IPAM, as a plugin process has: its own watch of each subnet's split is set once.
        ipam, after_release = AcsnetIpam(store, "h1"), []
        for _ in range(3):
            pool_ids = [ipam.request_pool(PoolRequest("acsnet-local", netaddr.IPNetwork(f"10.5{n}.0.0/24"), None, {}, False)).pool_id
                        for n in range(2)]
            for pool_id in pool_ids:
                ipam.request_address(AddressRequest(pool_id, None, {"RequestAddressType": "com.docker.network.gateway"}))
            for pool_id in pool_ids:
                until(lambda: live.bitmaps.get(pool_id, {}).get(0))
                # Its chunks' watch and chunk 0's bitmap watch (only the gateway is taken).
                until(lambda: len(watched_below(pool_id)) == 2)
            for pool_id in pool_ids:
                ipam.release_pool(pool_id)
            for pool_id in pool_ids:
                until(lambda: pool_id not in live.pools)
                until(lambda: watched_below(pool_id) == [], 10)
            after_release.append(len(store.watched_paths()))
        assert after_release[0] == after_release[-1], f"watches piled up: {after_release}"
    finally:
        live.stop()
