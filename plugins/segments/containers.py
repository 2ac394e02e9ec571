"""The container namer: which container each of this host's endpoints belongs to, written into the
endpoint's record for the dashboard's search by container name and id.

dockerd sends a plugin neither (CreateEndpoint and Join carry the endpoint and the sandbox's key), so
the names come from the host's own dockerd: one `GET /containers/json`, whose entries list each
network's EndpointID. It runs on a thread of its own, never in a request handler (dockerd calls the
plugin synchronously and may hold what answering us needs), with a timeout on every call; dockerd down
or unreachable (a managed plugin sees no docker.sock) only leaves the names out until it answers.

How soon: a Join wakes it; while a new endpoint has no name yet it asks every NEW_SECONDS (the
container is listed once it started, a moment after Join), else every SETTLED_SECONDS (renames, a
dockerd that was away). Each pass that changed records bumps the host's `NamesChanged`, which readers
watch (one value watch per host) instead of every endpoint record.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from acsnet.docker_api import DockerAddress, DockerUnreachable
from acsnet.errors import AcsnetError
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import Layout, SegmentEndpoint

log = logging.getLogger(__name__)

NEW_SECONDS = 0.5
SETTLED_SECONDS = 30.0
NEW_FOR_SECONDS = 120.0  # an endpoint older than this without a container (a swarm load balancer's, a
                         # sandbox dockerd does not list) is not hurried for any more
DOCKER_TIMEOUT = 5.0


def endpoint_containers(listed: list) -> dict[str, tuple[str, str]]:
    """`GET /containers/json` -> endpoint id -> (container id, container name)."""
    found = {}
    for container in listed if isinstance(listed, list) else []:
        names = [n for n in container.get("Names") or [] if isinstance(n, str)]
        # A legacy link adds "/other/alias" names; the container's own is the one with one slash.
        name = next((n[1:] for n in names if n.count("/") == 1), names[0].lstrip("/") if names else "")
        networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
        for settings in networks.values():
            endpoint_id = (settings or {}).get("EndpointID")
            if endpoint_id and container.get("Id"):
                found[endpoint_id] = (container["Id"], name)
    return found


class ContainerNamer:
    def __init__(self, store, layout: Layout, host_id: str, docker: DockerAddress,
                 endpoints: Callable[[], list[SegmentEndpoint]]):
        self.store = store
        self.layout = layout
        self.host_id = host_id
        self.docker = docker
        self._endpoints = endpoints  # this host's endpoints as the agent holds them
        self.written: dict[str, tuple[str, str]] = {}  # endpoint id -> what its record says, as far as known
        self._woken = threading.Event()
        self._stopped = threading.Event()
        self._said: str | None = None  # the last problem logged (said once, not every pass)
        self._unannounced: list[str] = []  # records changed whose NamesChanged failed to be written

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"{self.layout.driver}-container-names", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self._woken.set()

    def wake(self) -> None:
        """A container joined: look soon (from any thread; never blocks)."""
        self._woken.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                hurry = self.name_pass()
            except Exception:  # the namer must outlive a bug; the next pass tries again
                log.exception("%s container namer pass failed", self.layout.driver)
                hurry = False
            self._woken.wait(NEW_SECONDS if hurry else SETTLED_SECONDS)
            self._woken.clear()

    def _say(self, problem: str | None) -> None:
        if problem and problem != self._said:
            log.warning("container names not read: %s; retrying", problem)
        self._said = problem

    def name_pass(self) -> bool:
        """Write the container of each endpoint whose record says otherwise; True while a new endpoint
        waits for its container."""
        endpoints = self._endpoints()
        for endpoint in endpoints:
            self.written.setdefault(endpoint.endpoint_id, (endpoint.container_id, endpoint.container_name))
        for gone in set(self.written) - {e.endpoint_id for e in endpoints}:
            del self.written[gone]
        if not endpoints:
            return False
        waiting = any(not self.written[e.endpoint_id][0] and time.time() - e.since < NEW_FOR_SECONDS for e in endpoints)
        try:
            status, listed = self.docker.get_json("/containers/json", timeout=DOCKER_TIMEOUT)
        except DockerUnreachable as e:
            self._say(e.message)
            return waiting
        if status != 200:
            self._say(f"dockerd at {self.docker} answered {status} to GET /containers/json")
            return waiting
        containers = endpoint_containers(listed)
        try:
            changed, self._unannounced = self._unannounced, []
            for endpoint in endpoints:
                found = containers.get(endpoint.endpoint_id)
                # Not listed: not started yet, or stopping (its endpoint goes soon): the record stays.
                if found is None or found == self.written[endpoint.endpoint_id]:
                    continue
                if state.name_host_endpoint(self.store, self.layout, self.host_id, endpoint.endpoint_id, *found):
                    self.written[endpoint.endpoint_id] = found
                    changed.append(endpoint.endpoint_id)
            if changed:
                self._unannounced = changed
                state.announce_names_changed(self.store, self.layout, self.host_id, changed)
                self._unannounced = []
                log.debug("containers named: %s", ", ".join(changed))
        except AcsnetError as e:
            self._say(e.message)
            return waiting
        self._say(None)
        return any(not self.written[e.endpoint_id][0] and time.time() - e.since < NEW_FOR_SECONDS for e in endpoints)
