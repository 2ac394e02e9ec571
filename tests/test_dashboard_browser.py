"""The dashboard in a real browser (headless Chromium) against a lab's ZooKeeper: the pools with the right
counts, a container found by IP, by its name and id (from its host's dockerd, through the driver) and by
application name, an unknown name answered "not found", a container started during the test shown
without a reload, a powered-off host marked dead, and ZooKeeper stopped and started again: the page
says so, the process stays, the page recovers. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import pytest

from acsnet.lab.dockerd import IMAGE
from tests.browser import UnixRelay, headless_chromium, quit_chromium

FRONT = "unix:///run/acsnet/dash-front.sock"
SUBNET, VNI = "192.168.77.0/24", 177


def js(driver, script: str):
    return driver.execute_script(script)


def wait_for(driver, condition, timeout: float, what: str, shots: str | None = None):
    """Poll the page until `condition(driver)` is truthy; fail naming `what` (and save a screenshot)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition(driver)
        if value:
            return value
        if time.monotonic() > deadline:
            if shots:
                driver.save_screenshot(os.path.join(shots, f"failed-{uuid.uuid4().hex[:6]}.png"))
            pytest.fail(f"not within {timeout:g}s: {what}")
        time.sleep(0.05)


def pool_row(driver, subnet: str) -> dict | None:
    return js(driver, f"var r = document.querySelector('tr.pool[data-subnet=\"{subnet}\"]'); return r ? Object.assign({{}}, r.dataset) : null;")


def host_alive(driver, host: str) -> str | None:
    return js(driver, f"var r = document.querySelector('tr.host[data-host=\"{host}\"]'); return r ? r.dataset.alive : null;")


def search(driver, text: str) -> None:
    box = driver.find_element("id", "q")
    box.clear()
    box.send_keys(text)
    driver.find_element("css selector", "#search-form button").click()


def search_rows(driver) -> list[dict]:
    return js(driver, """return Array.prototype.map.call(document.querySelectorAll('#search tr.address'), function (r) {
        var c = r.cells; return {ip: c[0].innerText, kind: c[1].innerText, holder: c[2].innerText, host: c[3].innerText,
        mac: c[4].innerText, network: c[6].innerText, endpoint: c[7].title, retained: c[8].innerText,
        container: c[10].innerText, container_id: c[10].dataset.containerId}; });""")


def container_network(lab, host: str, name: str, network: str, env: dict | None = None) -> dict:
    result = lab.node(host).run([lab.docker_cli, "inspect", name], env=env)
    return json.loads(result.stdout)[0]["NetworkSettings"]["Networks"][network]


def acsnet_pools(lab) -> dict:
    result = lab.node("svc").run([sys.executable, "-m", "acsnet.cli", "pools", "--json", "--store", lab.zookeeper_url])
    return {p["subnet"]: p for p in json.loads(result.stdout)}


@pytest.mark.docker
@pytest.mark.zookeeper
def test_dashboard_in_chromium_follows_a_lab(fresh_lab, tmp_path):
    lab, network, app = fresh_lab, "dash", "dash-web"
    shots = str(tmp_path / "screenshots")
    os.makedirs(shots)
    socket_path = str(tmp_path / "dashboard.sock")
    dashboard = lab.node("svc").popen([sys.executable, "-m", "acsnet.cli", "dashboard", "--store", lab.zookeeper_url,
                                       "--listen", f"unix://{socket_path}"], str(tmp_path / "dashboard.log"))
    relay = driver = None
    try:
        for host in ("h1", "h2"):
            lab.docker(host, "network", "create", "-d", "vxlan", "--ipam-driver", "acsnet", "--subnet", SUBNET,
                       "--ipam-opt", f"vni={VNI}", "-o", f"VxlanId={VNI}", network)
        lab.start_front("h1", FRONT)
        through_front = {**os.environ, "DOCKER_HOST": FRONT}
        lab.node("h1").run([lab.docker_cli, "run", "-d", "--stop-timeout", "1", "--net", network, "--label", f"acsnet.app={app}",
                            "--name", "web1", IMAGE, "sleep", "600"], env=through_front)
        lab.docker("h2", "run", "-d", "--stop-timeout", "1", "--net", network, "--name", "c2", IMAGE, "sleep", "600")
        web1 = container_network(lab, "h1", "web1", network)
        c2 = container_network(lab, "h2", "c2", network)
        c2_id = json.loads(lab.node("h2").run([lab.docker_cli, "inspect", "c2"]).stdout)[0]["Id"]

        deadline = time.monotonic() + 30
        while not os.path.exists(socket_path):
            assert dashboard.poll() is None, open(tmp_path / "dashboard.log").read()
            assert time.monotonic() < deadline, "the dashboard's socket did not appear"
            time.sleep(0.1)
        relay = UnixRelay(socket_path)
        driver = headless_chromium()
        driver.get(relay.url)

        # Pools: the gateway (one address, shared by both hosts) and two containers; the CLI agrees.
        row = wait_for(driver, lambda d: (r := pool_row(d, SUBNET)) and r["used"] == "3" and r, 15, f"pool {SUBNET} with 3 used", shots)
        assert (row["size"], row["free"], row["retained"]) == ("254", "251", "0")
        cli = acsnet_pools(lab)[SUBNET]
        assert (cli["used"], cli["free"], cli["retained"]) == (3, 251, 0)
        assert any(n.startswith(f"vxlan VNI {VNI} on h1, h2 ") for n in cli["networks"]), cli["networks"]
        wait_for(driver, lambda d: host_alive(d, "h1") == "yes" and host_alive(d, "h2") == "yes", 15, "h1 and h2 alive", shots)
        driver.save_screenshot(os.path.join(shots, "1-pools-and-hosts.png"))

        # Search by IP: c2 on h2, its endpoint, its network.
        search(driver, c2["IPAddress"])
        rows = wait_for(driver, lambda d: search_rows(d), 10, f"a search answer for {c2['IPAddress']}", shots)
        assert [(r["ip"], r["holder"], r["host"], r["endpoint"]) for r in rows] == [(c2["IPAddress"], "h2", "alive", c2["EndpointID"])]
        assert rows[0]["network"].startswith("vxlan ") and rows[0]["mac"] == c2["MacAddress"]
        driver.save_screenshot(os.path.join(shots, "2-search-ip.png"))

        # Search by container name and by id: c2 was started on h2's dockerd directly (no front); h2's
        # vxlan driver asked its dockerd which container the endpoint is, and the dashboard indexed it.
        search(driver, "c2")
        rows = wait_for(driver, lambda d: (r := search_rows(d)) and r[0]["ip"] == c2["IPAddress"] and r, 10, "c2 by name", shots)
        assert [(r["holder"], r["endpoint"], r["container_id"]) for r in rows] == [("h2", c2["EndpointID"], c2_id)]
        assert rows[0]["container"].startswith("c2") and c2_id[:12] in rows[0]["container"]
        driver.save_screenshot(os.path.join(shots, "2-search-name.png"))
        search(driver, c2_id[:12])
        rows = wait_for(driver, lambda d: (r := search_rows(d)) and r[0]["container_id"] == c2_id and r, 10, "c2 by id", shots)
        assert [r["ip"] for r in rows] == [c2["IPAddress"]]
        search(driver, "no-such-container")
        empty = wait_for(driver, lambda d: js(d, "var e = document.getElementById('search-empty'); return e && e.innerText;"), 10,
                         "an answer for an unknown name", shots)
        assert empty.startswith("not found: no container") and "'no-such-container'" in empty

        # Search by name: the application web1 belongs to (its acsnet.app label, through the front).
        search(driver, app)
        rows = wait_for(driver, lambda d: (r := search_rows(d)) and r[0]["ip"] == web1["IPAddress"] and r, 10, f"{app}'s address", shots)
        assert rows[0]["holder"] == "h1" and f"kept for application {app}" in rows[0]["retained"]
        driver.save_screenshot(os.path.join(shots, "3-search-application.png"))

        # Bad input gets a clear answer.
        search(driver, "10.0.0.300")
        error = wait_for(driver, lambda d: js(d, "var e = document.getElementById('search-error'); return e && e.innerText;"), 10, "an error")
        assert "not a valid IP address" in error
        search(driver, "203.0.113.99")
        empty = wait_for(driver, lambda d: js(d, "var e = document.getElementById('search-empty'); return e && e.innerText;"), 10, "an answer")
        assert "in no pool" in empty
        search(driver, "c2")
        wait_for(driver, lambda d: search_rows(d), 10, "the search answer again")

        # Live: a container started on h2 appears within a second of `docker run` returning, no reload.
        js(driver, "window.notReloaded = true;")
        asked = time.monotonic()
        lab.docker("h2", "run", "-d", "--stop-timeout", "1", "--net", network, "--name", "c3", IMAGE, "sleep", "600")
        started = time.monotonic()
        wait_for(driver, lambda d: (pool_row(d, SUBNET) or {}).get("used") == "4", 1.0, "the new container in the pool bar", shots)
        shown = time.monotonic() - started
        assert js(driver, "return window.notReloaded === true;"), "the page was reloaded"
        wait_for(driver, lambda d: "vxlan 2" in js(d, "return document.querySelector('tr.host[data-host=\"h2\"]').innerText;"),
                 5, "h2 with 2 vxlan endpoints", shots)
        print(f"container shown {shown:.3f}s after docker run returned ({time.monotonic() - asked:.3f}s after it began)")
        driver.save_screenshot(os.path.join(shots, "4-live-container.png"))

        # A host powered off: dead once its ZooKeeper sessions expire; its records become problems.
        lab.power_off("h2")
        wait_for(driver, lambda d: host_alive(d, "h2") == "no", 60, "h2 marked dead", shots)
        assert "dead since" in js(driver, "return document.querySelector('tr.host[data-host=\"h2\"]').innerText;")
        problem = wait_for(driver, lambda d: js(d, """var found = Array.prototype.filter.call(document.querySelectorAll('#problems tr.problem'),
            function (r) { return r.cells[0].innerText === 'dead-host-record'; }); return found.length && found[0].innerText;"""),
            60, "h2's segment records listed as problems", shots)
        assert "h2" in problem and "acsnet gc --apply --dead-hosts" in problem
        driver.save_screenshot(os.path.join(shots, "5-host-dead.png"))

        # The store down: the page says so, the process stays; back, the page follows it again.
        lab.stop_zookeeper()
        wait_for(driver, lambda d: js(d, "return !!document.getElementById('store-down');"), 30, "the store-down message", shots)
        # What the page showed stays, greyed, rather than an error in its place.
        wait_for(driver, lambda d: js(d, "return document.getElementById('pools').classList.contains('stale');"), 10,
                 "the pools greyed as stale", shots)
        assert (pool_row(driver, SUBNET) or {}).get("used") == "4"
        driver.save_screenshot(os.path.join(shots, "6-store-down.png"))
        time.sleep(2)
        assert dashboard.poll() is None, "the dashboard exited while the store was down"
        lab.start_zookeeper()
        wait_for(driver, lambda d: js(d, "return !!document.getElementById('store-up');"), 60, "the store back on the page", shots)
        wait_for(driver, lambda d: not js(d, "return document.getElementById('pools').classList.contains('stale');"), 10,
                 "the pools current again", shots)
        lab.docker("h1", "run", "-d", "--stop-timeout", "1", "--net", network, "--name", "c4", IMAGE, "sleep", "600")
        wait_for(driver, lambda d: (pool_row(d, SUBNET) or {}).get("used") == "5", 10, "a container started after the outage", shots)
        assert js(driver, "return window.notReloaded === true;"), "the page was reloaded"
        driver.save_screenshot(os.path.join(shots, "7-store-back.png"))
        assert dashboard.poll() is None
    finally:
        if driver is not None:
            quit_chromium(driver)
        if relay is not None:
            relay.close()
        dashboard.terminate()
        dashboard.wait(15)
        print(f"screenshots: {shots}")
