"""The protocol server: a Flask app that translates libnetwork's JSON protocol to driver calls.

It holds no network logic. It parses each body (dockerd sends no Content-Type, so the body is read
raw), runs the request's schema, calls the driver and serialises its typed reply. Every failure, from
malformed JSON to a bug, becomes a non-200 `{"Err": "..."}` here and only here: dockerd treats a 200
`{"Err"}` from an IPAM call as success, and a traceback or an HTML page would reach the user as noise.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from acsnet.errors import AcsnetError, InvalidRequest
from acsnet.metrics import PluginMetrics
from acsnet.plugins import protocol
from acsnet.plugins.driver import IpamDriver, NetworkDriver
from acsnet.plugins.error_status import http_status

log = logging.getLogger("acsnet.server")

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"

Handler = Callable[[dict], dict]


def _reply(status: int, payload: dict) -> Response:
    return Response(json.dumps(payload), status=status, mimetype=PLUGIN_CONTENT_TYPE)


def _parse_body(raw: bytes) -> dict:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequest(f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, not {type(body).__name__}")
    return body


def network_driver_routes(driver: NetworkDriver) -> dict[str, Handler]:
    P = protocol

    def create_endpoint(body):
        interface = driver.create_endpoint(P.EndpointCreate.from_json(body))
        return {"Interface": interface.to_json()} if interface else {}

    def discover(method):
        def handler(body):
            kind = body.get("DiscoveryType", 0)
            if not isinstance(kind, int):
                raise InvalidRequest("field 'DiscoveryType' must be an integer")
            method(kind, body.get("DiscoveryData"))
            return {}

        return handler

    def allocate_network(body):
        return {"Options": driver.allocate_network(P.NetworkAllocate.from_json(body))}

    def done(_result: Any) -> dict:
        return {}

    return {
        "NetworkDriver.GetCapabilities": lambda body: driver.capabilities().to_json(),
        "NetworkDriver.CreateNetwork": lambda body: done(driver.create_network(P.NetworkCreate.from_json(body))),
        "NetworkDriver.DeleteNetwork": lambda body: done(driver.delete_network(P.parse_network_id(body))),
        "NetworkDriver.CreateEndpoint": create_endpoint,
        "NetworkDriver.DeleteEndpoint": lambda body: done(driver.delete_endpoint(P.EndpointRef.from_json(body))),
        "NetworkDriver.EndpointOperInfo": lambda body: {"Value": driver.endpoint_info(P.EndpointRef.from_json(body))},
        "NetworkDriver.Join": lambda body: driver.join(P.JoinRequest.from_json(body)).to_json(),
        "NetworkDriver.Leave": lambda body: done(driver.leave(P.EndpointRef.from_json(body))),
        "NetworkDriver.DiscoverNew": discover(driver.discover_new),
        "NetworkDriver.DiscoverDelete": discover(driver.discover_delete),
        "NetworkDriver.ProgramExternalConnectivity": lambda body: done(
            driver.program_external_connectivity(P.ExternalConnectivity.from_json(body))
        ),
        "NetworkDriver.RevokeExternalConnectivity": lambda body: done(
            driver.revoke_external_connectivity(P.EndpointRef.from_json(body))
        ),
        "NetworkDriver.AllocateNetwork": allocate_network,
        "NetworkDriver.FreeNetwork": lambda body: done(driver.free_network(P.parse_network_id(body))),
    }


def ipam_driver_routes(driver: IpamDriver) -> dict[str, Handler]:
    P = protocol

    def default_spaces(_body):
        local, global_ = driver.default_address_spaces()
        return {"LocalDefaultAddressSpace": local, "GlobalDefaultAddressSpace": global_}

    return {
        "IpamDriver.GetCapabilities": lambda body: driver.capabilities(),
        "IpamDriver.GetDefaultAddressSpaces": default_spaces,
        "IpamDriver.RequestPool": lambda body: driver.request_pool(P.PoolRequest.from_json(body)).to_json(),
        "IpamDriver.ReleasePool": lambda body: driver.release_pool(P.parse_pool_id(body)) or {},
        "IpamDriver.RequestAddress": lambda body: driver.request_address(P.AddressRequest.from_json(body)).to_json(),
        "IpamDriver.ReleaseAddress": lambda body: driver.release_address(P.AddressRelease.from_json(body)) or {},
    }


def create_app(*, name: str, network_driver: NetworkDriver | None = None, ipam_driver: IpamDriver | None = None,
               metrics: PluginMetrics | None = None, health: Callable[[], dict] | None = None) -> Flask:
    """The app for one plugin process; `name` is the plugin name dockerd knows it by (for logs).
    `health` reports the plugin's dependencies for GET /healthz ({"ok": bool, ...})."""
    routes: dict[str, Handler] = {}
    implements = []
    if network_driver is not None:
        routes.update(network_driver_routes(network_driver))
        implements.append("NetworkDriver")
    if ipam_driver is not None:
        routes.update(ipam_driver_routes(ipam_driver))
        implements.append("IpamDriver")
    routes["Plugin.Activate"] = lambda body: {"Implements": implements}

    app = Flask(f"acsnet-{name}")

    @app.post("/<method>")
    def plugin_call(method: str) -> Response:
        started = time.monotonic()
        status, error = 200, ""
        try:
            handler = routes.get(method)
            if handler is None:
                status, error = 404, f"plugin {name} does not implement {method}"
                return _reply(status, {"Err": error})
            raw = request.get_data(cache=False)
            if log.isEnabledFor(logging.DEBUG):  # what dockerd really sends (the README's protocol notes)
                log.debug("plugin=%s method=%s body=%s", name, method, raw.decode(errors="replace"))
            reply = handler(_parse_body(raw))
            if log.isEnabledFor(logging.DEBUG):
                log.debug("plugin=%s method=%s reply=%s", name, method, json.dumps(reply))
            return _reply(200, reply)
        except AcsnetError as e:
            status, error = http_status(e), e.message
            return _reply(status, {"Err": error})
        except Exception as e:  # a bug must still answer JSON and leave the server serving
            log.exception("plugin=%s method=%s unexpected error", name, method)
            status, error = 500, f"internal error in {method}: {type(e).__name__}: {e}"
            return _reply(status, {"Err": error})
        finally:
            elapsed = time.monotonic() - started
            if metrics is not None and (method in routes or status != 404):
                metrics.observe_request(method, status, elapsed)
            log.info(
                "plugin=%s method=%s status=%d duration_ms=%.1f%s",
                name,
                method,
                status,
                elapsed * 1000,
                f" err={json.dumps(error)}" if error else "",
            )

    @app.get("/metrics")
    def metrics_page() -> Response:
        if metrics is None:
            return _reply(404, {"Err": "no metrics in this process"})
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            report = health() if health is not None else {"ok": True}
        except Exception as e:  # a health check must answer, whatever broke
            report = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        return _reply(200 if report.get("ok") else 503, {"plugin": name, **report})

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response:
        return _reply(e.code or 500, {"Err": f"{e.name}: {request.method} {request.path}"})

    return app
