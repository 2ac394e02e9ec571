"""The plugins' composition root: from resolved settings, the objects one `acsnet serve PLUGIN` runs
(its store session, the datapath agent and driver or the IPAM, metrics, the WSGI app) and their
order of shutdown, handed to gunicorn by acsnet/service.py."""

from __future__ import annotations

import logging
import socket

from acsnet.docker_api import parse_docker_address
from acsnet.errors import AcsnetError
from acsnet.ipam.driver import AcsnetIpam, parse_supernets
from acsnet.after_answer import journal_path
from acsnet.ipam.releases import JOURNAL_KIND as RELEASES_JOURNAL
from acsnet.metrics import PluginMetrics, check_tcp_settings
from acsnet.ovsctl import links
from acsnet.ovsctl.host_setup import host_layout
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.plugins.segments.agent import SegmentAgent
from acsnet.plugin_socket import PLUGIN_NAMES
from acsnet.plugins.server import create_app
from acsnet.plugins.vlan.agent import VlanOvsDatapath
from acsnet.plugins.vlan.driver import VlanDriver
from acsnet.plugins.vpc.agent import VpcOvsDatapath
from acsnet.plugins.vpc.driver import VpcDriver
from acsnet.plugins.vpc.routes import provider_from_settings
from acsnet.plugins.vxlan.agent import VxlanOvsDatapath
from acsnet.plugins.vxlan.driver import VxlanDriver
from acsnet.service import serve
from acsnet.store import open_store
from acsnet.store.relayed import RelayedStore

log = logging.getLogger("acsnet")


def run_plugin(plugin: str, settings: dict, listener: socket.socket) -> None:
    """Check what can be checked before serving, then serve `plugin` on `listener` (already listening,
    acsnet/plugin_socket.py) until gunicorn stops."""
    name = PLUGIN_NAMES[plugin]
    check_tcp_settings(settings)
    supernets = parse_supernets(
        settings["default_pool"], settings["default_pool_size"],
        settings["default_pool_v6"], settings["default_pool_size_v6"],
    )
    if plugin in DRIVER_BUILDERS:
        with Ovsdb(settings["ovsdb"]) as ovsdb:  # closed before gunicorn forks: the worker makes its own
            host_layout(ovsdb, settings["bridge"])  # refuse to start on a host not set up
    opened = []  # stores of this worker
    stopping = []  # what this worker stops before its store closes: the datapath agent, or the IPAM's releases

    def app_factory():
        metrics = PluginMetrics(name)
        store = open_store(settings["store"], timeout=settings["store_timeout"], settings=settings)
        store.observer = metrics.observe_store
        metrics.store_connected.set_function(lambda: 1 if store.connected else 0)
        relayed = store if isinstance(store, RelayedStore) else None
        if relayed is not None:
            metrics.relay_connected.set_function(lambda: 1 if relayed.relay_connected else 0)
        opened.append(store)
        if settings["metrics_address"]:
            metrics.serve_tcp(settings["metrics_address"], cert=settings["metrics_tls_cert"],
                              key=settings["metrics_tls_key"], ca=settings["metrics_tls_ca"])
        try:
            store.register_host(settings["host_id"], name, {"host_id": settings["host_id"]})
        except AcsnetError as e:  # never exit over the store: it is retried when the session comes
            log.warning("plugin=%s liveness not registered yet: %s", name, e.message)

        def store_health() -> dict:
            report = {"ok": store.connected, "store": "connected" if store.connected else "disconnected",
                      "host_id": settings["host_id"]}
            if relayed is not None:  # away is not unhealthy: the watches go to the store directly
                report["relay"] = relayed.relay_peer or "away (watches direct)"
            return report

        if plugin == "ipam":
            ipam = AcsnetIpam(store, settings["host_id"], supernets=supernets, timeout=settings["store_timeout"],
                              release_journal=journal_path(settings["state_dir"], RELEASES_JOURNAL, settings["host_id"],
                                                           settings["store"] or ""))
            stopping.append(ipam.close)
            metrics.releases_pending.set_function(lambda: ipam.releases_pending)

            def ipam_health() -> dict:
                return {**store_health(), "releases_pending": ipam.releases_pending}

            return create_app(name=name, ipam_driver=ipam, metrics=metrics, health=ipam_health)
        driver = DRIVER_BUILDERS[plugin](store, settings, metrics)
        stopping.append(driver.agent.stop)
        metrics.endpoint_clears_pending.set_function(lambda: driver.agent.clears_pending)

        def driver_health() -> dict:
            report = store_health()
            ovsdb_ok = driver.agent.datapath.bridge.reachable()  # the persistent connection's state: no fork, no round trip
            return {**report, "ok": report["ok"] and ovsdb_ok, "ovsdb": "reachable" if ovsdb_ok else "unreachable",
                    "bridge": driver.agent.bridge, "endpoints": len(driver.agent.endpoints),
                    "clears_pending": driver.agent.clears_pending}

        return create_app(name=name, network_driver=driver, metrics=metrics, health=driver_health)

    def close_store():
        for stop in stopping:
            stop()
        for store in opened:
            store.close()

    serve(name, app_factory, listener=listener, threads=settings["threads"],
          log_level=settings["log_level"], on_exit=close_store)


def segment_agent(store, datapath, settings, metrics=None) -> SegmentAgent:
    """The one agent class, with the driver's datapath in it, started."""
    agent = SegmentAgent(store, datapath, settings["host_id"], cluster_wide=settings["scope"] == "global",
                         orphan_grace=settings["orphan_grace"], metrics=metrics, spare_pairs=settings["spare_pairs"],
                         docker=parse_docker_address(settings["docker"]) if settings.get("docker") else None,
                         clear_journal=journal_path(settings["state_dir"], f"{datapath.driver}-clears",
                                                    settings["host_id"], settings["store"] or ""))
    agent.start()
    return agent


def build_vlan_driver(store, settings, metrics=None):
    ovsdb = Ovsdb(settings["ovsdb"])
    layout = host_layout(ovsdb, settings["bridge"])
    datapath = VlanOvsDatapath(ovsdb, layout.bridge, layout.uplink, userspace_datapath=layout.datapath == "netdev")
    agent = segment_agent(store, datapath, settings, metrics)
    return VlanDriver(agent, settings["scope"])


def underlay_address(settings: dict, layout) -> str:
    """The host's underlay address (--vtep-ip, else the host bridge's: host-setup moved it from the uplink)."""
    if settings["vtep_ip"]:
        return settings["vtep_ip"]
    found = [a for a, _ in links.addresses(layout.bridge) if ":" not in a]
    if not found:
        raise AcsnetError(f"bridge {layout.bridge} has no IPv4 address to be this host's underlay address: give --vtep-ip")
    return found[0]


def build_vpc_driver(store, settings, metrics=None):
    ovsdb = Ovsdb(settings["ovsdb"])
    layout = host_layout(ovsdb, settings["bridge"])
    datapath = VpcOvsDatapath(store, ovsdb, settings["host_id"], settings["bridge"], layout.uplink,
                              underlay=underlay_address(settings, layout), datapath=layout.datapath,
                              routes=provider_from_settings(settings))
    agent = segment_agent(store, datapath, settings, metrics)
    return VpcDriver(agent, settings["scope"])


def build_vxlan_driver(store, settings, metrics=None):
    ovsdb = Ovsdb(settings["ovsdb"])
    layout = host_layout(ovsdb, settings["bridge"])
    vtep = underlay_address(settings, layout)
    datapath = VxlanOvsDatapath(ovsdb, settings["vxlan_bridge"], layout.uplink, vtep=vtep, datapath=layout.datapath)
    agent = segment_agent(store, datapath, settings, metrics)
    return VxlanDriver(agent, settings["scope"])


DRIVER_BUILDERS = {"vlan": build_vlan_driver, "vxlan": build_vxlan_driver, "vpc": build_vpc_driver}
