"""A recording fake NetworkDriver served by the real server under real gunicorn, to test the protocol
layer's NetworkDriver side before (and independently of) the real drivers. Run as
`python -m tests.fake_network_plugin PLUGIN_DIR`. Calls are appended, one JSON line each, to
PLUGIN_DIR/calls.jsonl so the test can see what the driver received as typed values."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import netaddr

from acsnet.errors import Conflict
from acsnet.plugins.driver import NetworkCapabilities, NetworkDriver
from acsnet.plugins.protocol import EndpointInterface, JoinResult, StaticRoute
from acsnet.plugin_socket import listen
from acsnet.service import configure_logging, serve


class RecordingFakeNetworkDriver(NetworkDriver):
    name = "fake"

    def __init__(self, calls_path: str):
        self.calls_path = calls_path

    def _record(self, method: str, **values) -> None:
        with open(self.calls_path, "a") as f:
            f.write(json.dumps({"method": method, **values}, default=str) + "\n")

    def capabilities(self):
        return NetworkCapabilities("local", "local")

    def create_network(self, request):
        if request.network_id == "conflict":
            raise Conflict("network conflict already exists")
        if request.network_id == "crash":
            raise RuntimeError("simulated bug")
        self._record("create_network", network_id=request.network_id, generic=request.generic,
                     mtu=request.mtu, internal=request.internal, ipv4=[(str(d.pool), str(d.gateway), {k: str(v) for k, v in d.aux_addresses.items()}) for d in request.ipv4])

    def delete_network(self, network_id):
        self._record("delete_network", network_id=network_id)

    def create_endpoint(self, request):
        self._record("create_endpoint", endpoint_id=request.endpoint_id, address=str(request.interface.address),
                     mac=str(request.interface.mac), options=request.options)
        if request.interface.mac is None:
            return EndpointInterface(None, None, netaddr.EUI("02:aa:bb:cc:dd:ee"))
        return None

    def delete_endpoint(self, ref):
        self._record("delete_endpoint", endpoint_id=ref.endpoint_id)

    def endpoint_info(self, ref):
        return {"id": ref.endpoint_id}

    def join(self, request):
        self._record("join", endpoint_id=request.endpoint_id, sandbox_key=request.sandbox_key,
                     port_bindings=[str(b) for b in request.port_bindings])
        return JoinResult(
            "veth-c1234", "eth", netaddr.IPAddress("10.0.5.254"),
            static_routes=(StaticRoute(netaddr.IPNetwork("192.0.2.0/24"), netaddr.IPAddress("10.0.5.1")),
                           StaticRoute(netaddr.IPNetwork("198.51.100.0/24"), None)),
        )

    def leave(self, ref):
        self._record("leave", endpoint_id=ref.endpoint_id)

    def program_external_connectivity(self, request):
        self._record("program_external_connectivity", endpoint_id=request.endpoint_id,
                     port_bindings=[dataclasses.astuple(b) for b in request.port_bindings],
                     exposed_ports=[dataclasses.astuple(p) for p in request.exposed_ports])

    def revoke_external_connectivity(self, ref):
        self._record("revoke_external_connectivity", endpoint_id=ref.endpoint_id)


def main() -> None:
    from acsnet.plugins.server import create_app

    plugin_dir = sys.argv[1]
    configure_logging("info")
    driver = RecordingFakeNetworkDriver(os.path.join(plugin_dir, "calls.jsonl"))
    serve("fake", lambda: create_app(name="fake", network_driver=driver), listener=listen(plugin_dir, "fake"),
          threads=4, log_level="info", on_exit=lambda: None)


if __name__ == "__main__":
    main()
