"""The lifecycle of endpoint ports on a driver's bridge: spare (made ahead, no endpoint's yet), attached,
unplugged (still named by installed flows), retired (taken off the bridge and their veth deleted, by a
thread of its own, which also makes the spares), and checked against what OVSDB and the kernel hold
after a restart."""

from __future__ import annotations

import dataclasses
import logging
import queue
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable

from acsnet.plugins.segments.bridge import Bridge
from acsnet.plugins.segments.model import SegmentEndpoint, container_end, host_end

log = logging.getLogger(__name__)

ENDPOINT_ID = "acsnet-endpoint"  # OVSDB external_ids key naming the endpoint that owns a port
DRIVER_ID = "acsnet-driver"  # ... and the driver whose endpoint it is (vlan and vpc share the host bridge)
ORPHAN_GRACE_SECONDS = 60.0  # dockerd joins an endpoint within moments of creating it
# How long a deleted endpoint's port waits before it leaves the bridge, with every port retired
# meanwhile. Taking a port off makes ovs-vswitchd reconfigure, and with the userspace datapath its main
# thread, which also forwards the host's own packets (the store's among them), stops forwarding for
# 10-15 ms. Right after DeleteEndpoint answers, dockerd releases the endpoint's address, and the IPAM's
# store round trips met that stall: its first read took 8-20 ms instead of 1 (measured on a lab host).
RETIRE_DELAY_SECONDS = 0.1
SPARE = "acsnet-spare"  # OVSDB external_ids key of a port made ahead that no endpoint has yet
# Veth pairs kept on the bridge ahead of CreateEndpoint. Making one costs a CreateEndpoint ~6 ms (the
# kernel) and adding its port ~10 ms more (ovs-vswitchd opening it, which with the userspace datapath
# also stalls the host's own packets, the store's among them); handing a spare to an endpoint is one
# netlink request and one OVSDB commit that ovs-vswitchd has nothing to open for. A burst beyond the
# spares makes its pairs on the request path, as before.
SPARE_PAIRS = 2
# A spare taken is made again only this long after: a `docker run --rm` lasts a few tenths of a second,
# and its pair, back on the host when its container is gone, becomes the spare instead (`_recycle`).
# Made at once, the new spare's port was one ovs-vswitchd reconfiguration per container, and the old
# pair's removal a second, each stalling the host's own packets on the userspace datapath.
REFILL_DELAY_SECONDS = 1.0
_REFILL = ""  # queued to the retirer: make spares up to the number kept (REFILL_DELAY_SECONDS later)


@dataclasses.dataclass(frozen=True)
class SparePair:
    pair: str  # `SegmentEndpoint.pair`: the veth ends are vh<pair> and vc<pair>
    mtu: int
    offloads: bool  # its veth's TX offloads kept (the bridge's `veth_offloads` when made or last fitted: `_fit`)

    @property
    def host_port(self) -> str:
        return host_end(self.pair)

    @staticmethod
    def new_name() -> str:
        return "s" + secrets.token_hex(6)[:11]  # "s": never the start of an endpoint ID (hex)


@dataclasses.dataclass
class PortSurvey:
    """What the bridge and the kernel hold against this host's endpoints."""

    removed: list[str]  # ports no endpoint owns (spares a previous process made among them), removed
    veth_gone: list[SegmentEndpoint]  # endpoints whose veth is gone (their container is gone)
    detached: list[SegmentEndpoint]  # endpoints whose veth survived but whose port is not on the bridge


class EndpointPorts:
    """This driver's endpoint ports on its bridge. `lock` is the agent's: a port is retired only if no
    retried CreateEndpoint attached one of the same name meanwhile."""

    def __init__(self, bridge: Bridge, driver: str, lock: threading.RLock, *, retire_delay: float = RETIRE_DELAY_SECONDS,
                 spares: int = SPARE_PAIRS, port_options: dict | None = None):
        self.bridge = bridge
        self.retire_delay = retire_delay
        self.driver = driver
        self._lock = lock
        self.attached: set[str] = set()  # this bridge's ports as this agent made them; checked by `survey`
        self.spares_kept = spares
        self.port_options = port_options or {}  # OVSDB settings of every port, a spare's and an endpoint's (a tag no traffic has)
        self.spare_mtu: int | None = None  # what the next spares are made with: the last endpoint's MTU
        self._spares: list[SparePair] = []  # ready on the bridge, under the lock
        self._making: set[str] = set()  # spares' ports the retirer is making, under the lock (not the survey's)
        self._taken: dict[str, SparePair] = {}  # endpoint ID -> the spare `take_spare` gave it, until attached
        self._fitted: dict[str, SparePair] = {}  # port -> the spare pair it is, as fitted to its endpoint (`_recycle`)
        self._refill_due: float | None = None  # when the retirer makes spares up to the number kept (its thread's)
        self._fitter = ThreadPoolExecutor(1, thread_name_prefix=f"{driver}-fit")  # see `attach`
        self._unplugged: list[str] = []  # ports of forgotten endpoints, still named by installed flows
        # ports of deleted endpoints, removed by the retirer thread: the kernel takes
        # ~20 ms to delete a veth (an RCU grace period), which DeleteEndpoint need not wait for
        self._retiring: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._retirer = threading.Thread(target=self._retire_forever, name=f"{driver}-retirer", daemon=True)

    def start(self) -> None:
        self._retirer.start()

    def stop(self) -> None:
        self._fitter.shutdown(wait=False)
        if self._retirer.is_alive():  # what DeleteEndpoint left to it goes before the process does
            self._retiring.put(None)
            self._retirer.join(timeout=10)
        with self._lock:  # and the spares: a plugin disabled for good leaves no port behind
            spares, self._spares = self._spares, []
        for spare in spares:
            try:
                self.bridge.remove_port(spare.host_port)
            except Exception:  # the next start's survey removes it
                log.exception("spare port %s not removed", spare.host_port)

    def survey(self, endpoints: dict[str, SegmentEndpoint]) -> PortSurvey:
        """Remove ports no endpoint owns; say which endpoints lost their veth and which lost their port
        (or its owner's labels: a spare given to an endpoint just before a crash)."""
        ports = self.bridge.ports()
        # this process's spares that OVS or the kernel lost (ovs-vswitchd restarted without its database)
        self._spares = [s for s in self._spares if s.host_port in ports and self.bridge.veth_exists(s.host_port)]
        spares = {s.host_port for s in self._spares} | self._making
        self.attached = {name for name in ports if name not in spares}
        owned = {e.host_port for e in endpoints.values()}
        survey = PortSurvey([], [], [])
        for name, external_ids in ports.items():
            owner = external_ids.get(ENDPOINT_ID)
            if external_ids.get(DRIVER_ID) != self.driver or name in spares:
                continue  # another driver's, on a shared bridge (or from before ports named theirs: audit's)
            if (owner and owner not in endpoints) or (external_ids.get(SPARE) and name not in owned):
                log.info("port=%s endpoint=%s removed: no endpoint owns it", name, owner or "(spare)")
                self.bridge.remove_port(name)
                self.attached.discard(name)
                survey.removed.append(name)
        for endpoint in list(endpoints.values()):
            # The veth decides, not OVSDB: after a reboot OVSDB still lists ports whose veths are gone.
            if not self.bridge.veth_exists(endpoint.host_port):
                survey.veth_gone.append(endpoint)
            elif endpoint.host_port not in ports or ports[endpoint.host_port].get(ENDPOINT_ID) != endpoint.endpoint_id:
                survey.detached.append(endpoint)
        return survey

    def take_spare(self, endpoint: SegmentEndpoint) -> SegmentEndpoint:
        """The endpoint named after a spare pair it is to have, if one is ready (`attach` then gives it
        the pair); else the endpoint as it is. Under the lock. No system call: whether the pair's
        offloads still suit the bridge is `_fit`'s to check, beside the claim and the flows."""
        if not self._spares:
            return endpoint
        spare = self._spares.pop(0)
        self._taken[endpoint.endpoint_id] = spare
        return dataclasses.replace(endpoint, pair=spare.pair)

    def refill_spares(self) -> None:
        """Have the retirer make spares up to the number kept, REFILL_DELAY_SECONDS from now (or when a
        refill already asked for is due), unless pairs given back meanwhile are enough."""
        if self.spares_kept:
            self._retiring.put(_REFILL)

    def attach(self, endpoint: SegmentEndpoint, *, mtu: int, create_veth: bool = False) -> Future | None:
        """The endpoint's port on the bridge, with its owner's labels: its spare fitted to it if
        `take_spare` gave it one (the pair's MTU set only if it differs), else its veth made first if
        `create_veth`, or an existing port labelled again. A spare is fitted on a thread of its own and
        the future returned says when: flows may name its port at once (they need only its number,
        which it has), and its labels' OVSDB commit took 5-8 ms of a CreateEndpoint on a lab host."""
        external_ids = {ENDPOINT_ID: endpoint.endpoint_id, DRIVER_ID: self.driver, "acsnet-network": endpoint.network_id,
                        "acsnet-ip": endpoint.ip, "attached-mac": endpoint.mac}
        spare = self._taken.pop(endpoint.endpoint_id, None)
        if spare is None:
            self.bridge.plug(endpoint, mtu=mtu, options=self.port_options, create_veth=create_veth,
                             external_ids=external_ids)
            if endpoint.pair:  # re-attached, or a spare whose labels a crash left behind: its own labels only
                self.bridge.label(endpoint.host_port, options=self.port_options, external_ids=external_ids)
        else:
            self.attached.add(endpoint.host_port)  # in the flows from now; a failure leaves it to be retired
            self.spare_mtu = mtu
            self.refill_spares()
            return self._fitter.submit(self._fit, endpoint, spare, mtu=mtu, external_ids=external_ids)
        self.attached.add(endpoint.host_port)
        return None

    def _fit(self, endpoint: SegmentEndpoint, spare: SparePair, *, mtu: int, external_ids: dict) -> None:
        """On the fitter's thread (not under the lock: the request waits for this holding it). The pair's
        TX offloads are made what the bridge wants now, if they differ: TSO went off or on since the pair
        was made (`host-setup`, then a restart of ovs-vswitchd). One with them kept where the datapath no
        longer completes them would carry no TCP; one without them where it does, TCP at a fraction of
        the speed. Reading the bridge's TSO state is a SIOCETHTOOL ioctl, which the kernel serves under
        its rtnl lock: while dockerd was starting a container it waited 20-40 ms (README,
        "CreateEndpoint's tail"). Here that wait runs beside the claim and the flows' change, not before
        them as it did when the spare was taken. Once fitted, the pair is known as such, so that it can be
        a spare again after its endpoint (`_recycle`); one whose fitting failed is not."""
        offloads = self.bridge.veth_offloads
        self.bridge.fit_spare(endpoint, mtu=None if mtu == spare.mtu else mtu, options=self.port_options, external_ids=external_ids,
                              offloads=None if offloads == spare.offloads else offloads)
        self._fitted[endpoint.host_port] = dataclasses.replace(spare, mtu=mtu, offloads=offloads)

    def unplug(self, endpoint: SegmentEndpoint) -> None:
        """The endpoint is no longer this host's; its port waits for `remove_unplugged`."""
        self._taken.pop(endpoint.endpoint_id, None)
        self.attached.discard(endpoint.host_port)
        self._unplugged.append(endpoint.host_port)

    def remove_unplugged(self, *, now: bool = True) -> None:
        """Ports of forgotten endpoints, which no installed flow names any more, leave OVSDB (without
        waiting for ovs-vswitchd to let go of them) and their veths are deleted; by the retirer thread
        if not `now`: DeleteEndpoint need wait for neither (about 9 and 20 ms), nor for the veth's index
        to be read (a netlink call, 1.2 ms). The retirer waits `retire_delay` first (RETIRE_DELAY_SECONDS
        says why)."""
        while self._unplugged:
            port = self._unplugged.pop()
            if now:
                self._retire(port)
            else:
                self._retiring.put(port)

    def _retire_forever(self) -> None:
        while True:
            wait = None if self._refill_due is None else max(0.0, self._refill_due - time.monotonic())
            try:
                port = self._retiring.get(timeout=wait)
            except queue.Empty:  # the refill is due (REFILL_DELAY_SECONDS)
                self._refill_due = None
                self._make_spares()
                continue
            if port is None:
                return
            batch, stopping = [port], False
            deadline = time.monotonic() + self.retire_delay  # see RETIRE_DELAY_SECONDS
            while not stopping and (left := deadline - time.monotonic()) > 0:
                try:
                    more = self._retiring.get(timeout=left)
                except queue.Empty:
                    break
                stopping = more is None  # `stop`: what is queued goes now, then the thread ends
                if not stopping:
                    batch.append(more)
            for port in batch:
                if port == _REFILL:
                    continue
                try:
                    self._retire(port)
                except Exception:  # the thread must outlive an OVS hiccup; audit finds what is left
                    log.exception("port=%s not removed", port)
            if stopping:
                return
            if _REFILL in batch and self._refill_due is None:
                self._refill_due = time.monotonic() + REFILL_DELAY_SECONDS

    def _make_spares(self) -> None:
        """Spares up to the number kept. A pair is made outside the lock (the kernel, then ovs-vswitchd
        opening its port) and offered under it; one that fails is left for the survey to remove."""
        while True:
            with self._lock:
                if len(self._spares) >= self.spares_kept or self.spare_mtu is None:
                    return  # (no MTU: no endpoint made yet, nothing says what its network has)
                spare = SparePair(SparePair.new_name(), self.spare_mtu, self.bridge.veth_offloads)
                self._making.add(spare.host_port)
            try:
                self.bridge.make_spare(spare.host_port, container_end(spare.pair), mtu=spare.mtu,
                                       options=self.port_options, offloads=spare.offloads,
                                       external_ids=self._spare_labels())
            except Exception:  # as a retirement's: the next endpoint makes its own pair; the survey sweeps
                log.exception("spare port %s not made", spare.host_port)
                with self._lock:
                    self._making.discard(spare.host_port)
                return
            with self._lock:
                self._making.discard(spare.host_port)
                self._spares.append(spare)

    def _retire(self, port: str) -> None:
        """Under the lock, a port a retried CreateEndpoint attached again is left alone (its veth is the
        new one: creating it deleted the old); one that can be a spare again becomes one (`_recycle`);
        otherwise the veth of that name is the forgotten endpoint's, and goes by the index read here,
        after the lock (never one made meanwhile)."""
        with self._lock:
            if port in self.attached:
                return
            if self._recycle(port):
                return
            index = self.bridge.port_index(port)
            self.bridge.detach(port)
        if index is not None:
            self.bridge.delete_veth(index)

    def _spare_labels(self) -> dict[str, str]:
        """A spare's OVSDB labels: this driver's, and no endpoint's."""
        return {DRIVER_ID: self.driver, SPARE: "true"}

    def _recycle(self, port: str) -> bool:
        """A spare pair whose endpoint is gone is a spare again, if fewer are kept than wanted and both its
        ends are back on the host: dockerd moves the container end back out of the container's namespace
        when the container is gone (the kernel drops its addresses and settings as it leaves that
        namespace), and it keeps its name. Its port's labels go back to a spare's (an OVSDB commit,
        nothing for ovs-vswitchd to open or close). Under the lock; True if it did."""
        pair = self._fitted.pop(port, None)
        if (pair is None or len(self._spares) + len(self._making) >= self.spares_kept
                or not (self.bridge.veth_exists(port) and self.bridge.veth_exists(container_end(pair.pair)))):
            return False
        try:
            self.bridge.label(port, options=self.port_options, external_ids=self._spare_labels())
        except Exception:  # retired as any other port instead
            log.exception("port=%s not made a spare again", port)
            return False
        self._spares.append(pair)
        return True


class OrphanSweep:
    """Endpoints no container uses. A joined endpoint's container end lives in the container's
    namespace; one still in the host's namespace long after creation was never joined (or was left and
    never deleted). dockerd makes such orphans when a plugin dies inside CreateEndpoint: its retry
    re-sends a drained, empty body, the create fails on dockerd's side, dockerd releases the address,
    and never sends a DeleteEndpoint — while the segment record would keep that address blocked on
    every host."""

    def __init__(self, grace: float = ORPHAN_GRACE_SECONDS):
        self.grace = grace
        self._idle_since: dict[str, float] = {}  # endpoint → when its container end was first seen on the host

    def find(self, endpoints: Iterable[SegmentEndpoint], host_links: set[str]) -> list[SegmentEndpoint]:
        """Those whose container end has been in the host's namespace for `grace`, and which are older
        than that; each is returned once."""
        now = time.monotonic()
        idle = {e.endpoint_id: e for e in endpoints if e.container_port in host_links}
        for gone in set(self._idle_since) - set(idle):
            del self._idle_since[gone]
        orphans = []
        for endpoint_id, endpoint in idle.items():
            first_seen = self._idle_since.setdefault(endpoint_id, now)
            if now - first_seen >= self.grace and time.time() - endpoint.since >= self.grace:
                orphans.append(endpoint)
                del self._idle_since[endpoint_id]
        return orphans
