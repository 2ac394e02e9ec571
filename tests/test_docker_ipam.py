"""The IPAM plugin under a real dockerd 20.10 (in a simulated host), with Docker's built-in bridge
driver: network create, run with --ip, rm, network rm, with the IPAM and dockerd restarted between
steps. The store is the embedded file, which the test reads directly to check for leftovers."""

from __future__ import annotations

import json
import time

from acsnet.ipam.state import AddressRecords, PoolRecords, SubnetPools
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.plugin_process import PluginProcess
from acsnet.store import open_store


def ipam_in_host(host, store_url: str) -> PluginProcess:
    """`acsnet serve ipam` inside the simulated host, on its default plugin dir, as a user runs it."""
    return PluginProcess.acsnet("ipam", "/run/docker/plugins", "--store", store_url, "--host-id", "h1",
                                log_dir=host.workdir, host=host)


# busybox sleep as PID 1 ignores SIGTERM: let dockerd's graceful shutdown kill it after a second.
QUICK_STOP = ("--stop-timeout", "1")


def addresses(store, pool_id):
    return sorted(address for pool, address, _ in AddressRecords.read_all(store) if pool == pool_id)


def container_ip(daemon, name, network):
    out = daemon.docker("inspect", "-f", f"{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}", name).stdout
    return out.strip()


def test_bridge_network_with_acsnet_ipam_across_restarts(docker_host, tmp_path):
    host, daemon = docker_host
    store_url = f"file://{tmp_path}/store.db"
    ipam = ipam_in_host(host, store_url).start()
    store = open_store(store_url)
    try:
        daemon.docker("network", "create", "-d", "bridge", "--ipam-driver", "acsnet", "--subnet", "192.0.2.0/24",
                      "--gateway", "192.0.2.254", "--ip-range", "192.0.2.128/25", "n1")
        network = json.loads(daemon.docker("network", "inspect", "n1").stdout)[0]
        assert network["IPAM"]["Config"][0]["Subnet"] == "192.0.2.0/24"
        (pool_id,) = PoolRecords.read_all(store)
        assert addresses(store, pool_id) == ["192.0.2.254"]

        ipam.stop()
        ipam.start()  # a restarted IPAM knows the pool from the store

        daemon.docker("run", "-d", "--name", "pinned", "--net", "n1", "--ip", "192.0.2.10", *QUICK_STOP, IMAGE, "sleep", "600")
        daemon.docker("run", "-d", "--name", "auto", "--net", "n1", *QUICK_STOP, IMAGE, "sleep", "600")
        assert container_ip(daemon, "pinned", "n1") == "192.0.2.10"
        assert container_ip(daemon, "auto", "n1") == "192.0.2.128", "automatic addresses come from --ip-range"
        inside = daemon.docker("exec", "pinned", "ip", "-4", "addr", "show", "eth0").stdout
        assert "192.0.2.10/24" in inside
        assert addresses(store, pool_id) == ["192.0.2.10", "192.0.2.128", "192.0.2.254"]

        clash = daemon.docker("run", "-d", "--name", "clash", "--net", "n1", "--ip", "192.0.2.10", IMAGE, "sleep", "600", check=False)
        assert clash.returncode != 0 and "192.0.2.10 is in use by another endpoint on this host (h1)" in clash.stderr
        daemon.docker("rm", "-f", "clash")

        # dockerd restarts (gracefully: it stops its containers, releasing their addresses). Nothing
        # is replayed to the IPAM, yet the network works again with the same pool.
        daemon.stop()
        ipam.stop()
        ipam.start()
        daemon.start()
        assert addresses(store, pool_id) == ["192.0.2.254"]
        daemon.docker("start", "pinned", "auto")
        assert container_ip(daemon, "pinned", "n1") == "192.0.2.10"
        daemon.docker("exec", "pinned", "ping", "-c", "1", "-W", "2", container_ip(daemon, "auto", "n1"))

        daemon.docker("rm", "-f", "pinned", "auto")
        # The releases are committed just after their answers (acsnet.ipam.releases): a few ms.
        deadline = time.monotonic() + 5
        while addresses(store, pool_id) != ["192.0.2.254"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert addresses(store, pool_id) == ["192.0.2.254"]
        daemon.docker("network", "rm", "n1")
        assert PoolRecords.read_all(store) == {} and SubnetPools.networks(store) == [], "nothing is left behind"

        # Without --subnet the pool is carved from the default supernet.
        daemon.docker("network", "create", "-d", "bridge", "--ipam-driver", "acsnet", "auto-net")
        network = json.loads(daemon.docker("network", "inspect", "auto-net").stdout)[0]
        assert network["IPAM"]["Config"][0]["Subnet"] == "100.64.0.0/24"
        daemon.docker("network", "rm", "auto-net")
        assert PoolRecords.read_all(store) == {}
    finally:
        store.close()
        ipam.stop()
