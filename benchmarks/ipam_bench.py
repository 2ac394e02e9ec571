"""IPAM benchmark: RequestAddress through the plugin socket, as dockerd calls it.

Prints, for the ZooKeeper store (a real server on loopback) and the embedded store, side by side in one
run:
- latency of RequestAddress (p50/p99) and sequential throughput,
- concurrent throughput with several client threads,
- the cost of one allocation when a /16 pool is 0%, 50% and 99% full (filled from the start, the worst
  case for an allocator that scans), which should not grow.
Targets: p50 under 5 ms on ZooKeeper on loopback; no growth with fullness.

    python -m acsnet.benchmarks.ipam_bench [--requests N] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

import netaddr

from acsnet.ipam import chunks
from acsnet.ipam.state import ChunkBitmaps, ChunkSummary, PoolRecords
from acsnet.lab.plugin_process import PluginProcess
from acsnet.lab.zookeeper import ZooKeeperServer
from acsnet.store import open_store

MAC_OPTION = "com.docker.network.endpoint.macaddress"
SUBNET = "100.64.0.0/16"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def request_address(client, pool_id: str, n: int) -> float:
    started = time.perf_counter()
    status, reply = client.call("IpamDriver.RequestAddress", {
        "PoolID": pool_id, "Address": "", "Options": {MAC_OPTION: f"02:42:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"}})
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"RequestAddress failed: {reply}")
    return elapsed


def fill_pool(store_url: str, pool_id: str, fraction: float) -> None:
    """Mark the first `fraction` of the pool's range allocated, straight in the store's bitmaps (as
    many allocations would leave them), so that the fullness runs need not make 65,000 requests."""
    store = open_store(store_url)
    try:
        geometry = PoolRecords.read(store, pool_id).geometry
        span = chunks.allocation_range(netaddr.IPNetwork(SUBNET), None)
        last = span.first + int((span.last - span.first + 1) * fraction) - 1
        full = []
        for chunk in geometry.chunks_in(span):
            bits = geometry.bits_in_chunk(chunk, chunks.OffsetRange(span.first, last))
            bitmap = 0 if bits.empty else ((1 << (bits.last + 1)) - 1) & ~((1 << bits.first) - 1)
            _old, version = ChunkBitmaps.read(store, pool_id, chunk)
            assert store.commit([ChunkBitmaps.write_operation(pool_id, geometry, chunk, bitmap, version)])
            if chunks.first_free_bit(bitmap, geometry.bits_in_chunk(chunk, span)) is None:
                full.append(chunk)
        _old, version = ChunkSummary.read(store, pool_id)
        assert store.commit([ChunkSummary.write_operation(pool_id, set(full), version)])
    finally:
        store.close()


def run_store(label: str, store_url: str, workdir: str, requests: int, threads: int) -> dict:
    plugin = PluginProcess.acsnet("ipam", os.path.join(workdir, label), "--store", store_url, "--host-id", "bench",
                                  "--log-level", "warning", log_dir=workdir).start()
    try:
        client = plugin.client()
        status, reply = client.call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-global", "Pool": SUBNET})
        pool_id = reply["PoolID"]
        for n in range(20):  # warm up the connection and caches
            request_address(client, pool_id, 1_000_000 + n)

        started = time.perf_counter()
        latencies = [request_address(client, pool_id, n) for n in range(requests)]
        sequential_rate = requests / (time.perf_counter() - started)

        per_thread = requests // threads
        done = []

        def worker(t: int):
            c = plugin.client()
            for n in range(per_thread):
                request_address(c, pool_id, 2_000_000 + t * 100_000 + n)
            done.append(per_thread)

        started = time.perf_counter()
        workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        concurrent_rate = sum(done) / (time.perf_counter() - started)

        # One pool per fullness level, measured in rotation (request by request) so drift cancels.
        fractions = (0.0, 0.5, 0.99)
        pools = {}
        for fraction in fractions:
            status, reply = client.call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-global", "Pool": SUBNET})
            fill_pool(store_url, reply["PoolID"], fraction)
            pools[fraction] = reply["PoolID"]
        samples = {fraction: [] for fraction in fractions}
        for n in range(300):
            for fraction in fractions:
                samples[fraction].append(request_address(client, pools[fraction], 3_000_000 + int(fraction * 100) * 10_000 + n))
        by_fullness = {fraction: statistics.median(values) for fraction, values in samples.items()}
        return {
            "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "sequential_per_s": sequential_rate,
            "concurrent_per_s": concurrent_rate,
            "by_fullness_ms": {k: v * 1000 for k, v in by_fullness.items()},
        }
    finally:
        plugin.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="acsnet-ipam-bench-") as workdir, \
            tempfile.TemporaryDirectory(prefix="acsnet-ipam-bench-", dir="/dev/shm") as memory:
        # The same ZooKeeper with its transaction log in memory: the difference is this disk's fsync.
        zookeeper = ZooKeeperServer(os.path.join(workdir, "zk")).start()
        zookeeper_in_memory = ZooKeeperServer(os.path.join(memory, "zk")).start()
        try:
            results = {
                "zookeeper": run_store("zookeeper", f"zk://{zookeeper.address}/bench", workdir, args.requests, args.threads),
                "zookeeper, log on tmpfs": run_store("zk-tmpfs", f"zk://{zookeeper_in_memory.address}/bench", workdir,
                                                     args.requests, args.threads),
                "embedded": run_store("embedded", f"file://{workdir}/store.db", workdir, args.requests, args.threads),
            }
        finally:
            zookeeper.stop()
            zookeeper_in_memory.stop()
    print(f"IPAM RequestAddress through the plugin socket ({args.requests} requests, {args.threads} threads concurrent)")
    print()
    print("| store | p50 (ms) | p99 (ms) | sequential (/s) | concurrent (/s) | /16 0% full (ms) | 50% (ms) | 99% (ms) | 99%/0% |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in results.items():
        f = r["by_fullness_ms"]
        print(f"| {label} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['sequential_per_s']:.0f} | {r['concurrent_per_s']:.0f} "
              f"| {f[0.0]:.2f} | {f[0.5]:.2f} | {f[0.99]:.2f} | {f[0.99] / f[0.0]:.2f} |")
    zk = results["zookeeper"]
    print()
    print(f"target p50 < 5 ms on ZooKeeper: {'met' if zk['p50_ms'] < 5 else 'NOT met'} ({zk['p50_ms']:.2f} ms)")
    print(f"of which this disk's fsync (zookeeper minus log on tmpfs): "
          f"{zk['p50_ms'] - results['zookeeper, log on tmpfs']['p50_ms']:.2f} ms")
    growth = max(r["by_fullness_ms"][0.99] / r["by_fullness_ms"][0.0] for r in results.values())
    print(f"target no growth with fullness: {'met' if growth < 1.5 else 'NOT met'} (worst 99%/0% ratio {growth:.2f})")


if __name__ == "__main__":
    main()
