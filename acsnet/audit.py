"""`acsnet audit` and `acsnet gc`: compare the store, this host's OVS and veths and its dockerd, list
every inconsistency, and repair them (gc, a dry run unless told to apply). A dockerd that cannot be
reached stops both before anything is compared (DockerUnreachable): an audit that silently left out
what needs dockerd would pass for a clean one.

Kinds of finding:
- orphan-port: an OVS port made by acsnet whose endpoint the store does not know (a crash between
  steps) -> the port and its veth are removed.
- endpoint-without-veth: a stored endpoint of this host whose veth is gone (its container died, or
  the host rebooted, while the plugin was away) -> its records are removed.
- endpoint-unknown-to-docker: a stored endpoint of this host, older than the grace period, that no
  network of this host's dockerd lists (the plugin died inside CreateEndpoint, and dockerd sends no
  DeleteEndpoint for a create that failed) -> its port, veth and records are removed. Needs dockerd.
- leaked-address: an endpoint address this host holds in the IPAM that no container of this host's
  dockerd uses, allocated longer ago than the grace period (a dockerd crash skipped ReleaseAddress)
  -> released. Needs dockerd.
- expired-retention: an address kept for an application (acsnet front's IP retention) past its
  retention period -> released.
- dead-host-record: a segment record of a host that is not alive -> removed only with --dead-hosts
  (a host that is only cut off would lose its ARP entries elsewhere until it re-creates them).
- dead-host-address: an endpoint address the IPAM holds for a host that is not alive -> released only
  with --dead-hosts (a host that is only cut off keeps using it: another container could get it twice).
- dead-host-pool-reference: a shared pool a host that is not alive still references (its dockerd
  will never send ReleasePool, so the pool would outlive its network) -> the reference is dropped,
  and the pool with the last one, only with --dead-hosts.
- dead-host-endpoint: an endpoint a host that is not alive still lists under its own keys -> removed
  only with --dead-hosts (a host that comes back removes its stale endpoints itself).
- dead-host-subnet: a vpc host subnet of a host that is not alive -> released only with --dead-hosts,
  and the network's settings with the range's last one (a host that comes back claims one again).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import netaddr

from acsnet.docker_api import DockerAddress
from acsnet.ipam import retention
from acsnet.ipam.model import ENDPOINT
from acsnet.ipam.state import AddressRecords, PoolHostReferences, PoolRecords
from acsnet.ovsctl import links
from acsnet.ovsctl.ovsdb import Ovsdb
from acsnet.plugins.segments.ports import DRIVER_ID, ENDPOINT_ID
from acsnet.plugins.segments import state as segment_state
from acsnet.plugins.segments.model import LAYOUTS, SegmentEndpoint
from acsnet.plugins.vpc.state import HostSubnetRecord, VpcNetworkSettings
from acsnet.store import Store


DEAD_HOST_KINDS = ("dead-host-record", "dead-host-address", "dead-host-pool-reference", "dead-host-endpoint",
                   "dead-host-subnet")  # repaired only when told the hosts are dead


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: str
    subject: str
    detail: str
    repair: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _docker_view(docker: DockerAddress) -> tuple[set[str], set[str]]:
    """The IPv4 addresses and endpoint ids of dockerd's containers on this host (DockerUnreachable if
    dockerd cannot be asked)."""
    def get(path: str):
        status, body = docker.get_json(path)
        return body if status == 200 else None

    networks = get("/networks") or []
    addresses, endpoint_ids = set(), set()
    for network in networks:
        detail = get(f"/networks/{network['Id']}") or {}
        for info in (detail.get("Containers") or {}).values():
            endpoint_ids.add(info.get("EndpointID", ""))
            if info.get("IPv4Address"):
                addresses.add(info["IPv4Address"].split("/")[0])
    return addresses, endpoint_ids


def _where(driver: str, segment: int | str, ip: str, vpc_networks: list[netaddr.IPNetwork]) -> str:
    """A record's place as users know it: "vlan segment 217"; for vpc its network's range (a vpc network
    is its hosts' subnets, not a segment: the number only keys its records)."""
    if driver != "vpc":
        return f"{driver} segment {segment}"
    network = next((n for n in vpc_networks if netaddr.IPAddress(ip) in n), None)
    return f"vpc network {network.cidr}" if network is not None else "a vpc network no longer stored"


def audit(store: Store, ovsdb: Ovsdb, bridges: dict[str, str], host_id: str, docker_address: DockerAddress,
          grace: float) -> list[Finding]:
    """`bridges`: each segment driver's bridge on this host (driver -> bridge); subjects of endpoint
    findings are `<driver>/<endpoint-id>`."""
    findings = []
    docker = _docker_view(docker_address)
    live = store.live_hosts()
    endpoint_addresses = set()
    known: dict[str, dict[str, SegmentEndpoint]] = {}  # driver -> this host's endpoints in the store
    vpc_networks = VpcNetworkSettings.read_all(store) if "vpc" in bridges else []
    for driver in bridges:
        known[driver] = segment_state.read_host_endpoints(store, LAYOUTS[driver], host_id)
    for bridge in sorted(set(bridges.values())):
        if not ovsdb.bridge_exists(bridge):
            continue
        sharing = [d for d, b in bridges.items() if b == bridge]  # vlan and vpc share the host bridge
        for name, info in ovsdb.ports(bridge).items():
            owner, driver = info["external_ids"].get(ENDPOINT_ID), info["external_ids"].get(DRIVER_ID)
            if owner and not any(owner in known[d] for d in ([driver] if driver in sharing else sharing)):
                findings.append(Finding("orphan-port", f"{bridge}/{name}", f"port of endpoint {owner[:12]}, which the "
                                        "store does not know", f"delete port {name} and its veth"))
    for driver in bridges:
        endpoints = known[driver]
        endpoint_addresses |= {e.ip for eid, e in endpoints.items() if eid in docker[1]}
        for eid, endpoint in endpoints.items():
            where = f"{endpoint.ip} on {_where(driver, endpoint.segment, endpoint.ip, vpc_networks)}"
            if not links.exists(endpoint.host_port):
                findings.append(Finding("endpoint-without-veth", f"{driver}/{eid}", f"{where}: veth {endpoint.host_port} is gone",
                                        "delete its endpoint and segment records"))
            elif eid not in docker[1] and time.time() - endpoint.since > grace:
                findings.append(Finding("endpoint-unknown-to-docker", f"{driver}/{eid}", f"{where}: no container of "
                                        "this host's dockerd uses it", "delete its port, veth and records"))

    used = docker[0] | endpoint_addresses
    return findings + store_findings(store, live, grace, list(bridges), host_id, lambda address: address not in used)


def store_findings(store: Store, live: set[str], grace: float, drivers: list[str], host_id: str | None = None,
                   unused: Callable[[str], bool] | None = None) -> list[Finding]:
    """What the store alone shows (any host, or the dashboard, can see it): records and addresses of
    hosts that are not alive, and retention past its time. With `host_id`, that host's own endpoint
    addresses older than `grace` for which `unused` says no container uses them are leaked-address."""
    findings = []
    vpc_networks = VpcNetworkSettings.read_all(store) if "vpc" in drivers else []
    for driver in drivers:
        layout = LAYOUTS[driver]
        for number in segment_state.segment_numbers(store, layout):
            for key, record in segment_state.read_segment_records(store, layout, number).items():
                if record.host not in live:
                    findings.append(Finding("dead-host-record", f"{driver}/{number}/{key}", f"{record.ip} on "
                                            f"{_where(driver, number, record.ip, vpc_networks)} of host {record.host}, which is not alive",
                                            "delete the record (with --dead-hosts)"))
        for host in segment_state.hosts(store, layout):
            if host in live:
                continue
            for endpoint_id in segment_state.host_endpoint_ids(store, layout, host):
                findings.append(Finding("dead-host-endpoint", f"{driver}/{host}/{endpoint_id}",
                                        f"endpoint of host {host}, which is not alive", "delete it (with --dead-hosts)"))

    for network in vpc_networks:
        for host, record in HostSubnetRecord.read_all(store, network).items():
            if host not in live:
                findings.append(Finding("dead-host-subnet", f"{network}/{host}", f"host subnet {record.subnet} of vpc "
                                        f"network {network} held by host {host}, which is not alive",
                                        "release it, and the network's settings with the last one (with --dead-hosts)"))

    for kept in retention.addresses(store):
        if kept.until is not None and kept.until < time.time():
            findings.append(Finding("expired-retention", f"{kept.app}/{kept.ip}", f"kept for application {kept.app} "
                                    f"past its retention ({kept.state})", "release it"))

    for pool, address, record in AddressRecords.read_all(store):
        if record.kind != ENDPOINT or time.time() - record.since <= grace:
            continue
        holder = record.holders[0]
        if holder == host_id:
            if unused is not None and unused(address):
                findings.append(Finding("leaked-address", f"{pool}/{address}",
                                        f"held by {host_id} since {time.ctime(record.since)}, used by no container",
                                        "release it"))
        elif holder not in live:
            findings.append(Finding("dead-host-address", f"{pool}/{address}",
                                    f"held by host {holder}, which is not alive, since {time.ctime(record.since)}",
                                    "release it (with --dead-hosts)"))

    for pool_id in PoolRecords.ids(store):
        for host in PoolHostReferences.hosts(store, pool_id):
            if host not in live:
                findings.append(Finding("dead-host-pool-reference", f"{pool_id}/{host}",
                                        f"shared pool still referenced by host {host}, which is not alive",
                                        "drop the reference, and the pool with the last one (with --dead-hosts)"))
    return findings


def repair(store: Store, ovsdb: Ovsdb, bridges: dict[str, str], host_id: str, findings: list[Finding], *,
           dead_hosts: bool) -> list[str]:
    from acsnet.ipam.driver import AcsnetIpam
    from acsnet.plugins.protocol import AddressRelease

    done = []
    for f in findings:
        if f.kind == "orphan-port":
            bridge, port = f.subject.split("/", 1)
            ovsdb.delete_port(bridge, port)
            links.delete(port)
        elif f.kind in ("endpoint-without-veth", "endpoint-unknown-to-docker"):
            driver, endpoint_id = f.subject.split("/", 1)
            layout = LAYOUTS[driver]
            endpoint = segment_state.read_host_endpoint(store, layout, host_id, endpoint_id)
            if endpoint is not None:
                ovsdb.delete_port(bridges[driver], endpoint.host_port)
                links.delete(endpoint.host_port)
                segment_state.clear_endpoint_record(store, layout, endpoint)
            segment_state.clear_host_endpoint(store, layout, host_id, endpoint_id)
        elif f.kind == "expired-retention":
            app, ip = f.subject.rsplit("/", 1)
            retention.release(store, app, ip, expired_only=True)
        elif f.kind == "leaked-address":
            pool, address = f.subject.split("/", 1)
            AcsnetIpam(store, host_id).release_address(AddressRelease(pool, netaddr.IPAddress(address)))
        elif f.kind in DEAD_HOST_KINDS and not dead_hosts:
            continue
        elif f.kind == "dead-host-address":
            pool, address = f.subject.split("/", 1)
            held = AddressRecords.read(store, pool, address)
            holder = held.holders[0] if held else None
            if holder and holder not in store.live_hosts():
                # Released as its holder would release it: an application's retained address stays its own.
                AcsnetIpam(store, holder).release_address(AddressRelease(pool, netaddr.IPAddress(address)))
        elif f.kind == "dead-host-pool-reference":
            pool_id, host = f.subject.rsplit("/", 1)
            if host not in store.live_hosts():
                AcsnetIpam(store, host).forget_dead_host(pool_id)
        elif f.kind == "dead-host-endpoint":
            driver, host, endpoint_id = f.subject.split("/", 2)
            if host not in store.live_hosts():
                segment_state.clear_host_endpoint(store, LAYOUTS[driver], host, endpoint_id)
        elif f.kind == "dead-host-subnet":
            from acsnet.plugins.vpc.membership import Membership

            network, host = f.subject.rsplit("/", 1)
            if host not in store.live_hosts():
                # Released as the host would release it: the range's settings go with its last subnet.
                Membership(store, host, underlay="").release(netaddr.IPNetwork(network))
        elif f.kind == "dead-host-record":
            driver, number, key = f.subject.split("/", 2)
            segment_state.clear_segment_record(store, LAYOUTS[driver], number, key)
        done.append(f"{f.kind} {f.subject}: {f.repair}")
    return done
