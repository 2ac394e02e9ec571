"""The dashboard at scale: `python -m acsnet.benchmarks.dashboard_bench [--hosts 1000] [--addresses 100000]
[--store embedded|zookeeper]`.

Fills a store (embedded, or a ZooKeeper server of its own on loopback; either on tmpfs: the fill is not
what is measured) through the IPAM and the segment
state modules: `--addresses` endpoint addresses in one pool, spread over `--hosts` live hosts, each with
a vlan network and its endpoints, each named for its container (as the hosts' drivers write them). Then runs `acsnet dashboard` on a unix socket, as an operator would,
waits until its watches hold every endpoint, and times each kind of request through the socket (median
and p99 of `--repeat`), beside one whole-store read (every address record, as `acsnet audit` does)
measured in the same run: a page must cost a small fraction of it, whatever the store holds.
Writes benchmarks/results/dashboard.json and .md (`--out`).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

import netaddr

from acsnet.benchmarks.progress import Steps
from acsnet.ipam.driver import AcsnetIpam
from acsnet.ipam.state import AddressRecords
from acsnet.lab.host import REPO
from acsnet.lab.zookeeper import ZooKeeperServer
from acsnet.plugins.protocol import AddressRequest, PoolRequest
from acsnet.plugins.segments import state as segment_state
from acsnet.plugins.segments.model import LAYOUTS, NamesChanged, SegmentEndpoint, SegmentNetwork
from acsnet.store import open_store

VLAN = 300
MAC_OPTION = "com.docker.network.endpoint.macaddress"


def mac_of(n: int) -> str:
    return "02:42:%02x:%02x:%02x:%02x" % (n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)


def fill(store, hosts: int, addresses: int, steps: Steps) -> dict:
    size = 1 << max(8, (addresses + 2).bit_length())
    subnet = netaddr.IPNetwork(f"10.128.0.0/{32 - size.bit_length() + 1}")
    layout = LAYOUTS["vlan"]
    names = [f"host{n:04d}" for n in range(hosts)]
    steps(f"registering {hosts} hosts, each with a vlan network on {subnet}")
    for host in names:
        store.register_host(host, "bench", {"host_id": host})
        segment_state.write_host_network(store, layout, host, SegmentNetwork(f"net-{host}".ljust(64, "0"), VLAN, subnet,
                                                                             str(subnet.network + 1), None, 1500))
    ipam = AcsnetIpam(store, names[0])
    pool_id = ipam.request_pool(PoolRequest("acsnet-local", subnet, None, {}, False)).pool_id
    steps(f"allocating {addresses} addresses and their endpoints", estimate=addresses / 500)
    ipams = {h: AcsnetIpam(store, h) for h in names}
    last = None
    for n in range(addresses):
        host = names[n % hosts]
        mac = mac_of(n + 1)
        grant = ipams[host].request_address(AddressRequest(pool_id, None, {MAC_OPTION: mac}))
        ip = str(grant.address)
        endpoint_id = hashlib.sha256(f"endpoint {n}".encode()).hexdigest()  # as random as dockerd's
        container_id = hashlib.sha256(f"container {n}".encode()).hexdigest()
        segment_state.write_host_endpoint(store, layout, host, SegmentEndpoint(
            endpoint_id, f"net-{host}".ljust(64, "0"), VLAN, ip, grant.prefixlen, mac, time.time(),
            container_id, f"app-{n:06d}"))
        last = {"ip": ip, "mac": mac, "endpoint": endpoint_id, "host": host, "container_id": container_id, "name": f"app-{n:06d}"}
    return {"pool": pool_id, "subnet": str(subnet), "last": last}


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("dashboard", timeout=60)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(self.socket_path)


def get(path: str, url: str) -> tuple[int, bytes]:
    connection = UnixHTTPConnection(path)
    try:
        connection.request("GET", url)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def timed(path: str, url: str, repeat: int) -> dict:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        status, body = get(path, url)
        seconds.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"{url}: HTTP {status}: {body[:200]!r}")
    seconds.sort()
    return {"p50_ms": round(statistics.median(seconds) * 1000, 2),
            "p99_ms": round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))] * 1000, 2), "bytes": len(body)}


def measure(hosts: int, addresses: int, repeat: int, kind: str, steps: Steps) -> dict:
    directory = tempfile.mkdtemp(prefix="acsnet-dashboard-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    zookeeper = None
    if kind == "zookeeper":
        steps("starting ZooKeeper on loopback (data on tmpfs)")
        zookeeper = ZooKeeperServer(os.path.join(directory, "zk")).start()
        url = f"zk://{zookeeper.address}/bench"
    else:
        url = f"file://{directory}/store.db"
    store = open_store(url, timeout=30)
    dashboard = None
    try:
        started = time.monotonic()
        filled = fill(store, hosts, addresses, steps)
        fill_seconds = time.monotonic() - started
        steps("reading every address record once (a whole-store read, for comparison)")
        started = time.perf_counter()
        count = sum(1 for _ in AddressRecords.read_all(store))
        whole_read = time.perf_counter() - started

        steps("starting acsnet dashboard; waiting until its watches hold every endpoint")
        socket_path = f"{directory}/dashboard.sock"
        dashboard = subprocess.Popen([sys.executable, "-m", "acsnet.cli", "dashboard", "--store", url, "--listen",
                                      f"unix://{socket_path}", "--log-level", "warning"], cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=open(f"{directory}/dashboard.log", "wb"))
        started = time.monotonic()
        last = filled["last"]
        while True:
            try:
                status, body = get(socket_path, "/api/search?q=" + urllib.parse.quote(last["mac"]))
                if status == 200 and json.loads(body)["rows"]:
                    break
            except OSError:
                pass
            if dashboard.poll() is not None or time.monotonic() - started > 900:
                raise RuntimeError(f"the dashboard did not index the endpoints: see {directory}/dashboard.log")
            time.sleep(0.2)
        ready = time.monotonic() - started
        # The first problem scan (every address record, on its own thread) runs at start; time the pages
        # after it, as they are between scans (a scan takes at most a tenth of the time).
        while b"scanned" not in get(socket_path, "/fragment/problems")[1]:
            if time.monotonic() - started > 1800:
                raise RuntimeError("the first problem scan did not end")
            time.sleep(0.5)
        first_scan = time.monotonic() - started

        pool, pages = filled["pool"], -(-addresses // 50)
        requests = {
            "whole page (/)": "/",
            "pools": "/fragment/pools",
            "hosts, first page": "/fragment/hosts?hosts_page=1",
            "hosts, last page": f"/fragment/hosts?hosts_page={-(-hosts // 50)}",
            "addresses, first page": f"/fragment/addresses?pool={pool}&page=1",
            "addresses, last page": f"/fragment/addresses?pool={pool}&page={pages}",
            "search by IP": "/fragment/search?q=" + last["ip"],
            "search by MAC": "/fragment/search?q=" + urllib.parse.quote(last["mac"]),
            "search by endpoint id (12)": "/fragment/search?q=" + last["endpoint"][:12],
            "search by container id (12)": "/fragment/search?q=" + last["container_id"][:12],
            "search by container name": "/fragment/search?q=" + last["name"],
            "search, unknown name (not found)": "/fragment/search?q=nosuchapp",
        }
        results = {}
        whole_read_ms = round(whole_read * 1000, 2)
        for name, path in requests.items():
            steps(f"timing {name} ({repeat} requests)")
            results[name] = timed(socket_path, path, repeat)
            results[name]["of_whole_read"] = round(results[name]["p50_ms"] / whole_read_ms, 4)

        # A container named after the dashboard started, as a host's namer announces it: one record
        # read again, not the host's, nor the store's.
        steps("renaming a container as a host's driver would; waiting until the dashboard finds the new name")
        segment_state.name_host_endpoint(store, LAYOUTS["vlan"], last["host"], last["endpoint"], last["container_id"], "renamed-late")
        started = time.monotonic()
        segment_state.write_names_changed(store, LAYOUTS["vlan"], last["host"], NamesChanged(1, (last["endpoint"],)))
        while not json.loads(get(socket_path, "/api/search?q=renamed-late")[1]).get("rows"):
            if time.monotonic() - started > 60:
                raise RuntimeError("the dashboard did not follow a rename within 60 s")
            time.sleep(0.01)
        renamed = time.monotonic() - started
        return {"hosts": hosts, "addresses": addresses, "records_read": count, "store": f"{kind} (tmpfs)",
                "fill_seconds": round(fill_seconds, 1), "whole_store_read_ms": whole_read_ms,
                "dashboard_ready_seconds": round(ready, 1), "first_scan_seconds": round(first_scan, 1), "requests": results,
                "rename_seen_seconds": round(renamed, 3), "load_average": [round(x, 1) for x in os.getloadavg()],
                "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    finally:
        if dashboard is not None and dashboard.poll() is None:
            dashboard.terminate()
            dashboard.wait(30)
        store.close()
        if zookeeper is not None:
            zookeeper.stop()
        shutil.rmtree(directory, ignore_errors=True)


def markdown(report: dict) -> str:
    lines = [f"Dashboard with {report['hosts']} hosts and {report['addresses']} addresses ({report['store']}, "
             f"{report['date']}, {report['cpus']} cores): filled in {report['fill_seconds']} s; the dashboard held every "
             f"endpoint {report['dashboard_ready_seconds']} s after it started, and had scanned for problems after "
             f"{report['first_scan_seconds']} s; reading every address record once took {report['whole_store_read_ms']} ms. "
             f"A container renamed after the start was found by its new name {report['rename_seen_seconds']} s after its "
             f"host announced it. Load average at the end: {report['load_average']}. Requests timed after that scan:", "",
             "| request | p50 (ms) | p99 (ms) | p50 / whole-store read | bytes |", "|---|---|---|---|---|"]
    for name, r in report["requests"].items():
        lines.append(f"| {name} | {r['p50_ms']} | {r['p99_ms']} | {r['of_whole_read']} | {r['bytes']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acsnet.benchmarks.dashboard_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--store", choices=("embedded", "zookeeper"), default="embedded")
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"),
                        help="directory for dashboard.json and dashboard.md ('' for none)")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.addresses < args.hosts:
        parser.error("need at least one host, and at least as many addresses as hosts")
    report = measure(args.hosts, args.addresses, args.repeat, args.store, Steps())
    text = markdown(report)
    print(text)
    if args.out:
        name = "dashboard" if args.store == "embedded" else f"dashboard-{args.store}"
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(report, f, indent=2)
        with open(os.path.join(args.out, f"{name}.md"), "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
