"""What `acsnet status` and `acsnet inspect` report, as plain dicts (the CLI prints them as tables or
JSON). Sources: the store (every host's records), this host's OVS, the plugins' own /healthz, and the
local dockerd's API for names (the CLI may call dockerd; a plugin handler never does)."""

from __future__ import annotations

import os
import urllib.parse

import netaddr

from acsnet.docker_api import DockerAddress, DockerUnreachable
from acsnet.errors import AcsnetError, NotFound
from acsnet.ipam.state import AddressRecords
from acsnet.ovsctl import links, openflow, vlan_pipeline, vpc_pipeline
from acsnet.ovsctl.host_setup import host_layout
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.plugin_client import get_json
from acsnet.plugins.segments import state as segment_state
from acsnet.plugins.segments.model import LAYOUTS, SegmentNetwork, host_end
from acsnet.plugins.vpc.state import HostSubnetRecord, VpcNetworkSettings
from acsnet.store import Store
from acsnet.store.liveness import HostRecord, HostSessions

PLUGINS = ("acsnet", "vlan", "vxlan", "vpc")
HOST_BRIDGE_COOKIES = (vlan_pipeline.COOKIE, vpc_pipeline.COOKIE)  # the drivers sharing the host bridge


def plugin_health(plugin_dir: str) -> dict[str, dict]:
    report = {}
    for name in PLUGINS:
        path = os.path.join(plugin_dir, f"{name}.sock")
        if not os.path.exists(path):
            continue
        try:
            status, body = get_json(path, "/healthz", timeout=5.0)
            report[name] = {"up": True, "healthy": status == 200, **body}
        except (OSError, ValueError) as e:
            report[name] = {"up": False, "healthy": False, "error": str(e)}
    return report


def docker_status(docker: DockerAddress) -> dict:
    try:
        status, body = docker.get_json("/version", timeout=5.0)
    except DockerUnreachable as e:
        return {"address": docker.url, "reachable": False, "error": e.message}
    if status != 200:
        return {"address": docker.url, "reachable": False, "error": f"{docker.url} answered /version with HTTP {status}"}
    return {"address": docker.url, "reachable": True, "version": body.get("Version", "?")}


def host_status(store: Store, host_id: str, plugin_dir: str, ovsdb: Ovsdb, bridge: str, docker: DockerAddress) -> dict:
    """`ok`: the plugins, the store and OVS; dockerd is reported beside them (the plugins serve it, and
    run without it)."""
    status = {"host": host_id, "plugins": plugin_health(plugin_dir), "store": {"connected": store.connected},
              "docker": docker_status(docker)}
    try:
        status["store"]["live_hosts"] = sorted(store.live_hosts())
        status["networks"] = sum(len(segment_state.host_network_ids(store, layout, host_id)) for layout in LAYOUTS.values())
        status["endpoints"] = sum(len(segment_state.host_endpoint_ids(store, layout, host_id)) for layout in LAYOUTS.values())
        status["host_subnets"] = held_host_subnets(store, host_id)
    except AcsnetError as e:
        status["store"]["error"] = e.message
    status["ovs"] = {"reachable": ovsdb.reachable()}
    if status["ovs"]["reachable"]:
        try:
            layout = host_layout(ovsdb, bridge)
            status["ovs"].update(bridge=layout.bridge, uplink=layout.uplink, datapath=layout.datapath,
                                 flows=sum(openflow.count_flows(bridge, c) for c in HOST_BRIDGE_COOKIES),
                                 userspace_tso=layout.datapath == "netdev" and links.segmentation_offload(bridge))
        except AcsnetError as e:
            status["ovs"]["error"] = e.message
    status["ok"] = (store.connected and status["ovs"]["reachable"]
                    and all(p["healthy"] for p in status["plugins"].values()))
    return status


def held_host_subnets(store: Store, host_id: str) -> list[dict]:
    """The host subnets this host holds, one per vpc network it is in (a vpc network is not one segment:
    each host routes its own part of it)."""
    held = []
    for network in VpcNetworkSettings.read_all(store):
        record = HostSubnetRecord.read(store, network, host_id)
        if record is not None and not record.left_at:
            held.append({"network": record.network, "subnet": record.subnet, "host": record.host})
    return held


def host_subnets_of(store: Store, network: SegmentNetwork) -> list[dict]:
    """A vpc network's host subnets: which host holds which part, where it is routed, and whether the
    host left (its subnet stays its own for a grace period)."""
    return [{"subnet": r.subnet, "host": r.host, "underlay": r.underlay, "left": bool(r.left_at),
             **({"subnet6": r.subnet6} if r.subnet6 else {})}  # a dual-stack network's IPv6 slice
            for r in sorted(HostSubnetRecord.read_all(store, network.subnet.cidr).values(), key=lambda r: netaddr.IPNetwork(r.subnet))]


def docker_network(docker: DockerAddress, name_or_id: str) -> dict | None:
    """The local dockerd's view of a network (id, name, containers by endpoint), or None if it has no
    such network. DockerUnreachable if dockerd cannot be asked."""
    status, body = docker.get_json(f"/networks/{urllib.parse.quote(name_or_id, safe='')}", timeout=5.0)
    return body if status == 200 else None


def _host_address(published: dict) -> str:
    """The host address a port was published on, as `-p` wrote it ("" where none was given)."""
    host_ip = published.get("host_ip") or ""
    return f"[{host_ip}]:" if ":" in host_ip else f"{host_ip}:" if host_ip else ""


def inspect_network(store: Store, host_id: str, name_or_id: str, docker_address: DockerAddress) -> dict:
    """Without dockerd a network is still found by its id (endpoints then go by their ids); a name
    needs dockerd, and an unreachable one is said so."""
    try:
        docker, unreachable = docker_network(docker_address, name_or_id), None
    except DockerUnreachable as e:
        docker, unreachable = None, e
    network_id = docker["Id"] if docker else name_or_id
    for layout in LAYOUTS.values():
        network = segment_state.read_host_network(store, layout, host_id, network_id)
        if network is not None:
            break
    else:
        if unreachable is not None:
            raise DockerUnreachable(f"{name_or_id} is not the id of a network of host {host_id}, and its name "
                                    f"cannot be resolved: {unreachable.message}")
        raise NotFound(f"{name_or_id} is not a vlan, vxlan or vpc network of host {host_id}"
                       + ("" if docker else f" (and dockerd at {docker_address.url} does not know that name)"))
    names = {}
    for container_id, info in ((docker or {}).get("Containers") or {}).items():
        names[info.get("EndpointID", "")] = info.get("Name", container_id[:12])
    endpoints = []
    host_endpoints: dict[str, dict] = {}  # each host's endpoint records, read once in one batch
    for found in segment_state.read_segment_records(store, layout, network.segment).values():
        record = found.to_json()
        if record["ip"] not in network.subnet:
            continue
        published = segment_state.read_published(store, layout, record["host"], record["endpoint_id"])
        # the port's name is the host's record's (a pair made ahead is not named by the endpoint ID)
        if record["host"] not in host_endpoints:
            host_endpoints[record["host"]] = segment_state.read_host_endpoints(store, layout, record["host"])
        endpoint = host_endpoints[record["host"]].get(record["endpoint_id"])
        port = endpoint.host_port if endpoint else host_end(record["endpoint_id"][:12])
        endpoints.append({"container": names.get(record["endpoint_id"], record["endpoint_id"][:12]),
                          "ip": record["ip"], "mac": record["mac"], "host": record["host"],
                          "vtep": record["vtep"], "port": port, "endpoint": record["endpoint_id"],
                          "published": ", ".join(f"{_host_address(p)}{p['host_port']}->{p['port']}" for p in published)})
    report = {"network": docker["Name"] if docker else network_id, "id": network_id, "driver": layout.driver,
              "segment": network.segment, "subnet": str(network.subnet.cidr), "gateway": network.gateway,
              "gateway_mac": network.gateway_mac, "mtu": network.mtu, "internal": network.internal,
              "endpoints": sorted(endpoints, key=lambda e: (e["host"], e["ip"]))}
    if layout.driver == "vpc":  # no segment: its host subnets, and the gateway is this host's in its own
        report["segment"] = None
        report["host_subnets"] = host_subnets_of(store, network)
    return report


def inspect_host(store: Store, host_id: str) -> dict:
    if HostRecord.read(store, host_id) is None:
        raise NotFound(f"host {host_id} is not known to the store")
    networks, endpoints = [], []
    held = {h["network"]: h["subnet"] for h in held_host_subnets(store, host_id)}
    for layout in LAYOUTS.values():
        networks += [{"driver": layout.driver, **n.to_json()}
                     for n in segment_state.read_host_networks(store, layout, host_id).values()]
        endpoints += [{"driver": layout.driver, **e.to_json()}
                      for e in segment_state.read_host_endpoints(store, layout, host_id).values()]
    for network in networks:
        if network["driver"] == "vpc":  # a vpc network is this host's subnet of it, not a segment
            network["segment"], network["host_subnet"] = None, held.get(network.get("subnet"))
    for endpoint in endpoints:
        if endpoint["driver"] == "vpc" and "ip" in endpoint:
            endpoint["segment"] = None
            endpoint["host_subnet"] = next((s for s in held.values() if netaddr.IPAddress(endpoint["ip"]) in netaddr.IPNetwork(s)), None)
    addresses = []
    for pool, address, record in AddressRecords.read_all(store):
        if host_id in record.holders:
            addresses.append({"pool": pool, "address": address, "kind": record.kind})
    return {"host": host_id, "alive": store.host_alive(host_id),
            "sessions": HostSessions.read_all(store, host_id),
            "networks": [n for n in networks if len(n) > 1], "endpoints": [e for e in endpoints if len(e) > 1], "addresses": addresses}
