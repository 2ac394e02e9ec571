"""What the dashboard's page shows, as plain dicts: pools, a page of hosts, a page of a pool's
addresses, search answers and the problems `acsnet audit` would find from the store. Each answer reads
from what `LiveStore` keeps plus the store nodes of the rows it returns, never the whole store."""

from __future__ import annotations

import dataclasses
import re
import threading
import time

import netaddr

from acsnet.audit import store_findings
from acsnet.dashboard.live import ID_PREFIX, LiveStore
from acsnet.errors import AcsnetError, InvalidRequest
from acsnet.ipam.model import RETAINED, Pool
from acsnet.ipam.state import AddressRecords, Retentions
from acsnet.plugins.segments.model import LAYOUTS
from acsnet.plugins.vpc.state import HostSubnetRecord, VpcNetworkSettings
from acsnet.pools import NetworkUse, pool_usages, used_in_range
from acsnet.store.liveness import HostSessions

PAGE_SIZE = 50
MAX_ROWS = 100  # of a search answer
MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")
HEX_ID = re.compile(r"^[0-9a-f]{%d,64}$" % ID_PREFIX)
APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
SEARCH_HELP = ("an IP address (10.0.5.7), a MAC (02:42:0a:00:05:07), a container or endpoint id or its first 6+ hex "
               "digits, a container name, or an application name (the acsnet.app label)")
NAMES_FROM = ("a container's name and id reach the dashboard a moment after it starts, from its host's dockerd "
              "through the host's acsnet driver")


def when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "?"


def pools(live: LiveStore) -> list[dict]:
    with live._lock:
        bitmaps = {pool_id: dict(found) for pool_id, found in live.bitmaps.items()}
        uses = [NetworkUse(driver, n.network_id, n.segment, str(n.subnet.cidr), host)
                for (driver, host), found in live.networks.items() for n in found.values()]
    rows = []
    for usage in pool_usages(live.store, lambda pool: used_in_range(pool, bitmaps.get(pool.pool_id, {}), set()), uses):
        row = usage.to_json()
        row["percent"] = {k: (100.0 * row[k] / usage.size if usage.size else 0.0) for k in ("in_use", "retained", "free")}
        rows.append(row)
    return rows


def page_of(items: list, page: int) -> tuple[list, dict]:
    pages = max(1, -(-len(items) // PAGE_SIZE))
    page = min(max(1, page), pages)
    return items[(page - 1) * PAGE_SIZE:page * PAGE_SIZE], {"page": page, "pages": pages, "total": len(items)}


def hosts(live: LiveStore, page: int, only_dead: bool = False) -> dict:
    names = live.host_names()
    with live._lock:
        sessions = {h: list(live.sessions.get(h, [])) for h in names}
    if only_dead:
        names = [h for h in names if not sessions[h]]
    shown, paging = page_of(names, page)
    vpc_networks = VpcNetworkSettings.read_all(live.store) if shown else []
    def row(host: str) -> dict:
        alive = bool(sessions[host])
        if alive:
            since = HostSessions.alive_since(live.store, host, sessions[host])
            state = f"alive since {when(since)}" if since else "alive"
        elif host in live.died:
            state = f"dead since {when(live.died[host])}"
        else:
            state = f"dead (before {when(live.started)}, when the dashboard started)"
        subnets = []
        for network in vpc_networks:
            record = HostSubnetRecord.read(live.store, network, host)
            if record is not None:
                subnets.append(f"{record.subnet} of {record.network}" + (" (left)" if record.left_at else ""))
        networks = live.host_networks(host)
        return {"host": host, "alive": alive, "state": state, "sessions": sessions[host],
                "networks": sorted(f"{driver} {n.network_id[:12]} {n.subnet.cidr}" for driver, n in networks),
                "endpoints": live.endpoint_count(host), "vpc_subnets": subnets}

    rows = live.in_parallel(row, shown)
    alive_count = sum(1 for h in sessions if sessions[h])
    return {"hosts": rows, "alive": alive_count, "dead": len(sessions) - alive_count, **paging}


def addresses(live: LiveStore, pool_id: str, page: int) -> dict:
    """A page of a pool's taken addresses, found from its bitmaps; only that page's records are read."""
    with live._lock:
        pool = live.pools.get(pool_id)
        bitmaps = dict(live.bitmaps.get(pool_id, {}))
    if pool is None:
        raise InvalidRequest(f"no pool {pool_id!r}")
    counts = {n: b.bit_count() for n, b in bitmaps.items()}
    total = sum(counts.values())
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    skip, offsets = (page - 1) * PAGE_SIZE, []
    for number in sorted(bitmaps):
        if skip >= counts[number]:
            skip -= counts[number]
            continue
        bitmap = bitmaps[number]
        while bitmap and len(offsets) < PAGE_SIZE:
            low = bitmap & -bitmap
            if skip:
                skip -= 1
            else:
                offsets.append(pool.geometry.offset_of(number, low.bit_length() - 1))
            bitmap ^= low
        if len(offsets) >= PAGE_SIZE:
            break
    ips = [str(netaddr.IPAddress(pool.network.first + o, pool.network.version)) for o in offsets]
    kept = set(Retentions.addresses(live.store, pool.network))  # an application's addresses: few
    rows = live.in_parallel(lambda ip: address_row(live, pool, ip, AddressRecords.read(live.store, pool_id, ip),
                                                   live.endpoints_at(ip), ip in kept), ips)
    return {"pool": pool_id, "subnet": str(pool.network.cidr), "addresses": rows, "page": page, "pages": pages, "total": total}


def address_row(live: LiveStore, pool: Pool, ip: str, record, indexed: list, maybe_kept: bool = True) -> dict:
    """Who holds `ip`: its IPAM record, the endpoint on that host with the record's MAC, retention."""
    row = {"ip": ip, "pool": pool.pool_id, "subnet": str(pool.network.cidr), "kind": "free", "holder": "", "host_state": "",
           "mac": "", "since": "", "network": "", "endpoint": "", "container": "", "container_id": "", "retained": ""}
    if record is None:
        return row
    row.update(kind=record.kind, holder=", ".join(dict.fromkeys(record.holders)), mac=record.mac or "", since=when(record.since))
    if record.kind == RETAINED:
        row["retained"] = f"kept for application {record.holders[0]} until {when(record.until)}"
        return row
    with live._lock:
        row["host_state"] = ", ".join("alive" if live.sessions.get(h) else "dead" for h in record.holders)
    for entry in indexed:
        if entry.host in record.holders and (not record.mac or entry.endpoint.mac.lower() == record.mac.lower()):
            network = next((n for d, n in live.host_networks(entry.host)
                            if d == entry.driver and n.network_id == entry.endpoint.network_id), None)
            row["network"] = f"{entry.driver} {entry.endpoint.network_id[:12]}" + (f" ({network.subnet.cidr})" if network else "")
            row["endpoint"] = entry.endpoint.endpoint_id
            row.update(container=entry.endpoint.container_name, container_id=entry.endpoint.container_id)
    kept = Retentions.read(live.store, pool.network, ip) if maybe_kept else None
    if kept is not None:
        row["retained"] = f"in use; kept for application {kept.app} when its container goes"
    return row


@dataclasses.dataclass
class SearchAnswer:
    query: str
    kind: str  # what the query was read as
    rows: list[dict]
    message: str  # said when there are no rows, or why the query is not understood
    ok: bool = True


def search(live: LiveStore, query: str) -> SearchAnswer:
    """An IP, a MAC, an endpoint or container id (or prefix), a container name or an application name ->
    who holds what. A query that is none of them is answered with what it may be (ok False: the page
    shows it as an error). Every lookup but the application's is in `LiveStore`'s indexes."""
    text = query.strip()
    if not text:
        return SearchAnswer(query, "", [], f"type {SEARCH_HELP}", ok=False)
    if len(text) > 200 or any(c.isspace() or not c.isprintable() for c in text):
        return SearchAnswer(query, "", [], f"not understood: {text[:60]!r} is not {SEARCH_HELP}", ok=False)
    try:
        address = netaddr.IPAddress(text, flags=netaddr.INET_PTON) if ("." in text or ":" in text) and not MAC.match(text.lower()) else None
    except (netaddr.AddrFormatError, ValueError):
        if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", text):
            return SearchAnswer(query, "ip", [], f"not understood: {text!r} is not a valid IP address", ok=False)
        address = None
    if address is not None:
        return _search_ip(live, text, address)
    lowered = text.lower()
    if MAC.match(lowered):
        mac = lowered.replace("-", ":")
        rows = [_endpoint_row(live, e) for e in live.endpoints_with_mac(mac)]
        return SearchAnswer(query, "mac", rows, "" if rows else f"no endpoint of a vlan, vxlan or vpc network has MAC {mac}")
    rows = []
    if HEX_ID.match(lowered):
        for kind, found in (("endpoint id", live.endpoints_with_id), ("container id", live.endpoints_of_container)):
            rows = [_endpoint_row(live, e) for e in found(lowered, MAX_ROWS + 1)]
            if rows:
                more = f"the first {MAX_ROWS}: give more of the id" if len(rows) > MAX_ROWS else ""
                return SearchAnswer(query, kind, rows[:MAX_ROWS], more)
    name = text[1:] if text.startswith("/") else text  # docker's own spelling of a name
    if APP_NAME.match(name):
        rows = [_endpoint_row(live, e) for e in live.endpoints_named(name)[:MAX_ROWS]]
        shown = {r["ip"] for r in rows}
        kept = [r for r in _search_app(live, name) if r["ip"] not in shown] if name == text else []
        if rows or kept:
            kind = " and ".join(k for k, found in (("container", rows), ("application", kept)) if found)
            return SearchAnswer(query, kind, rows + kept, "")
        if HEX_ID.match(lowered):
            return SearchAnswer(query, "id", [], f"not found: no endpoint or container id starts with {lowered}, and no "
                                f"container or application is called so ({NAMES_FROM})")
        return SearchAnswer(query, "name", [], f"not found: no container on a vlan, vxlan or vpc network is called {name!r} "
                            f"and no address is kept for an application called so ({NAMES_FROM})")
    return SearchAnswer(query, "", [], f"not understood: {text!r} is not {SEARCH_HELP}", ok=False)


def _search_ip(live: LiveStore, text: str, address: netaddr.IPAddress) -> SearchAnswer:
    with live._lock:
        holding = [p for p in live.pools.values() if address.version == p.network.version and address in p.network]
    if not holding:
        return SearchAnswer(text, "ip", [], f"{address} is in no pool of the IPAM")
    rows = []
    for pool in sorted(holding, key=lambda p: p.pool_id):
        record = AddressRecords.read(live.store, pool.pool_id, str(address))
        rows.append(address_row(live, pool, str(address), record, live.endpoints_at(str(address))))
    message = "" if any(r["kind"] != "free" for r in rows) else f"{address} is free in {', '.join(r['subnet'] for r in rows)}"
    return SearchAnswer(text, "ip", [r for r in rows if r["kind"] != "free"] or rows, message)


def _endpoint_row(live: LiveStore, indexed) -> dict:
    endpoint = indexed.endpoint
    with live._lock:
        pools_ = [p for p in live.pools.values() if netaddr.IPAddress(endpoint.ip) in p.network]
    for pool in pools_:
        record = AddressRecords.read(live.store, pool.pool_id, endpoint.ip)
        if record is not None and (not record.mac or record.mac.lower() == endpoint.mac.lower()):
            return address_row(live, pool, endpoint.ip, record, [indexed])
    with live._lock:
        alive = bool(live.sessions.get(indexed.host))
    return {"ip": endpoint.ip, "pool": "", "subnet": "", "kind": "endpoint", "holder": indexed.host,
            "host_state": "alive" if alive else "dead", "mac": endpoint.mac, "since": when(endpoint.since),
            "network": f"{indexed.driver} {endpoint.network_id[:12]}", "endpoint": endpoint.endpoint_id,
            "container": endpoint.container_name, "container_id": endpoint.container_id, "retained": ""}


def _search_app(live: LiveStore, app: str) -> list[dict]:
    with live._lock:
        pools_ = list(live.pools.values())
    rows = []
    for network, ip, kept in Retentions.read_all(live.store):
        if kept.app != app:
            continue
        for pool in pools_:
            if pool.network.cidr == network.cidr:
                record = AddressRecords.read(live.store, pool.pool_id, ip)
                row = address_row(live, pool, ip, record, live.endpoints_at(ip))
                if record is None:
                    row["retained"] = f"recorded for application {app}; free now"
                rows.append(row)
    return rows


GC_COMMANDS = {
    "dead-host-record": "acsnet gc --apply --dead-hosts",
    "dead-host-address": "acsnet gc --apply --dead-hosts",
    "dead-host-pool-reference": "acsnet gc --apply --dead-hosts",
    "dead-host-endpoint": "acsnet gc --apply --dead-hosts",
    "dead-host-subnet": "acsnet gc --apply --dead-hosts",
    "expired-retention": "acsnet gc --apply",
}
GRACE_SECONDS = 60.0  # as `acsnet audit`'s default: an address newer than this is not judged
SCAN_EVERY_SECONDS = 30.0


class ProblemScanner:
    """`acsnet audit`'s findings that the store alone shows, scanned on a thread of its own (a scan reads
    every address record): again when a host dies or comes back, and every SCAN_EVERY_SECONDS. Pages show
    the last scan."""

    def __init__(self, live: LiveStore):
        self.live = live
        self.findings: list[dict] = []
        self.scanned_at: float | None = None
        self.error: str | None = None

    def start(self) -> "ProblemScanner":
        threading.Thread(target=self._run, name="dashboard-problems", daemon=True).start()
        return self

    def _run(self) -> None:
        seen = self.live.version
        while not self.live._stopped.is_set():
            began = time.monotonic()
            try:
                live = self.live.store.live_hosts()  # read afresh (the embedded store purges dead sessions here)
                found = store_findings(self.live.store, live, GRACE_SECONDS, list(LAYOUTS))
                self.findings = [{**f.to_json(), "command": GC_COMMANDS.get(f.kind, "acsnet gc --apply")} for f in found]
                self.scanned_at, self.error = time.time(), None
            except AcsnetError as e:
                self.error = e.message
            except Exception as e:  # the scan must go on after a bug; the page shows what it was
                self.error = f"{type(e).__name__}: {e}"
            self.live._bump("problems")
            # A scan reads every address record: at most a tenth of the time goes to scanning, however
            # big the store and however often hosts come and go.
            took = time.monotonic() - began
            earliest, deadline = began + 10 * took, began + max(SCAN_EVERY_SECONDS, 10 * took)
            hurry = False
            while not self.live._stopped.is_set():
                now = time.monotonic()
                if now >= deadline or (hurry and now >= earliest):
                    break
                seen, changed = self.live.wait_change(seen, (earliest if hurry else deadline) - now)
                # A host died or came back, or the store did: scan again as soon as allowed.
                hurry = hurry or any(w.startswith("host:") or w == "store" for w in changed)
