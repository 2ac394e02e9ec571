"""The IPAM under contention at scale: many hosts allocating from one pool at once, each host the real
IPAM driver (`AcsnetIpam`) with its own ZooKeeper session, the hosts spread over a few processes (a
thread each). Reports allocations per second, latency percentiles and the duplicates found (there
must be none); and the cost of an allocation in a /16 that is 99% full against an empty one, with
the same contention.
"""

from __future__ import annotations

import collections
import multiprocessing
import threading
import time

import netaddr

from acsnet.benchmarks.ipam_bench import fill_pool
from acsnet.benchmarks.scale_before import run_from
from acsnet.ipam.driver import AcsnetIpam
from acsnet.ipam.state import AddressRecords
from acsnet.plugins.protocol import AddressRequest, PoolRequest
from acsnet.store import open_store

SUBNET = "100.64.0.0/16"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def duplicates(addresses: list[str]) -> list[str]:
    """Addresses handed out more than once (the check the benchmark fails on)."""
    return sorted(a for a, n in collections.Counter(addresses).items() if n > 1)


def _hosts_process(url: str, pool_id: str, hosts: list[str], per_host: int, start_at: float, results) -> None:
    """This process's hosts: each connects, then all allocate at `start_at` (wall clock), as fast as
    each host's driver answers."""
    stores = [open_store(url, timeout=30.0) for _ in hosts]
    drivers = [AcsnetIpam(store, host, timeout=30.0) for store, host in zip(stores, hosts)]
    granted: list[tuple[str, str, float]] = []  # (host, address, seconds)
    errors: list[str] = []
    lock = threading.Lock()

    def allocate(index: int) -> None:
        driver = drivers[index]
        mine = []
        for n in range(per_host):
            mac = f"02:42:{index >> 8 & 255:02x}:{index & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
            started = time.perf_counter()
            try:
                grant = driver.request_address(AddressRequest(pool_id, None, {AddressRequest.MAC_OPTION: mac}))
            except Exception as e:  # reported, and fails the run
                with lock:
                    errors.append(f"{driver.host_id}: {e}")
                continue
            mine.append((driver.host_id, str(grant.address), time.perf_counter() - started))
        with lock:
            granted.extend(mine)

    threads = [threading.Thread(target=allocate, args=(i,)) for i in range(len(hosts))]
    time.sleep(max(0.0, start_at - time.time()))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished = time.time()
    for store in stores:
        store.close()
    results.put((granted, errors, finished))


def contend(url: str, pool_id: str, *, hosts: int, per_host: int, processes: int, tree: str | None = None) -> dict:
    """`hosts` hosts in `processes` processes allocate `per_host` addresses each from one pool at once
    (with the IPAM of the checkout `tree`, if given: see scale_before)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    names = [f"ipam-host-{i:04d}" for i in range(hosts)]
    # Every host has its session before the clock starts: connecting 1,000 sessions is not allocating.
    start_at = time.time() + 2 + hosts * 0.02
    workers = [context.Process(target=run_from, args=(tree, __name__, "_hosts_process", url, pool_id, names[p::processes],
                                                      per_host, start_at, results))
               for p in range(processes)]
    for worker in workers:
        worker.start()
    granted, errors, finished = [], [], start_at
    for _ in workers:
        g, e, f = results.get(timeout=600)
        granted, errors, finished = granted + g, errors + e, max(finished, f)
    for worker in workers:
        worker.join(30)
    elapsed = max(finished - start_at, 1e-9)  # from the start to the last allocation done
    latencies = [seconds for _h, _a, seconds in granted]
    addresses = [address for _h, address, _s in granted]
    return {"hosts": hosts, "per_host": per_host, "allocations": len(granted), "errors": errors[:5],
            "error_count": len(errors), "per_s": len(granted) / elapsed, "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000, "duplicates": duplicates(addresses), "addresses": addresses}


def new_pool(url: str) -> str:
    store = open_store(url, timeout=30.0)
    try:
        grant = AcsnetIpam(store, "ipam-bench", timeout=30.0).request_pool(
            PoolRequest("acsnet-global", netaddr.IPNetwork(SUBNET), None, {}, False))
        return grant.pool_id
    finally:
        store.close()


def stored_addresses(url: str, pool_id: str) -> list[str]:
    store = open_store(url, timeout=30.0)
    try:
        return AddressRecords.addresses(store, pool_id)
    finally:
        store.close()


def run(url: str, *, hosts: int, per_host: int, fullness_hosts: int, processes: int, before: str | None = None) -> dict:
    """The contention run on an empty /16 (and with the IPAM of the checkout `before`, if given), then the
    same smaller run on an empty and a 99% full /16."""
    earlier = None
    if before is not None:
        earlier = contend(url, new_pool(url), hosts=hosts, per_host=per_host, processes=processes, tree=before)
        earlier.pop("addresses")
    pool_id = new_pool(url)
    at_scale = contend(url, pool_id, hosts=hosts, per_host=per_host, processes=processes)
    # What the store holds agrees: one record per address handed out, none twice.
    at_scale["stored"] = len(stored_addresses(url, pool_id))
    addresses = at_scale.pop("addresses")
    at_scale["stored_matches"] = sorted(stored_addresses(url, pool_id)) == sorted(addresses)
    by_fullness = {}
    for fraction in (0.0, 0.99):  # a 99% full /16 has 655 addresses left: fewer hosts, one each
        pool = new_pool(url)
        if fraction:
            fill_pool(url, pool, fraction)
        result = contend(url, pool, hosts=fullness_hosts, per_host=1, processes=processes)
        result.pop("addresses")
        by_fullness[fraction] = result
    return {"contention": at_scale, "contention_before": earlier, "by_fullness": by_fullness,
            "full_over_empty_p50": by_fullness[0.99]["p50_ms"] / max(by_fullness[0.0]["p50_ms"], 1e-9)}
