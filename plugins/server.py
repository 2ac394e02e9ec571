"""The protocol server: a WSGI app that translates libnetwork's JSON protocol to driver calls.

It holds no network logic. It parses each body (dockerd sends no Content-Type, so the body is read
raw), runs the request's schema, calls the driver and serialises its typed reply. Every failure, from
malformed JSON to a bug, becomes a non-200 `{"Err": "..."}` here and only here: dockerd treats a 200
`{"Err"}` from an IPAM call as success, and a traceback or an HTML page would reach the user as noise.

Plain WSGI, not Flask (which the dashboard uses): every container costs dockerd about ten calls here,
one after the other, and Flask's request and response objects and routing took 0.1-0.2 ms of each
call's round trip, for three fixed routes that need none of them (a trivial call under the same
gunicorn worker on this machine, the two alternated four times, p50: 0.57-0.64 ms with Flask,
0.43-0.51 ms without).
"""

from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus
from typing import Any, Callable, Iterable

from acsnet.errors import AcsnetError, InvalidRequest
from acsnet.metrics import PluginMetrics
from acsnet.plugins import protocol
from acsnet.plugins.driver import IpamDriver, NetworkDriver
from acsnet.plugins.error_status import http_status

log = logging.getLogger("acsnet.server")

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Handler = Callable[[dict], dict]
Reply = tuple[int, str, bytes]  # status, content type, body


def _reply(status: int, payload: dict) -> Reply:
    return status, PLUGIN_CONTENT_TYPE, json.dumps(payload).encode()


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


def _request_body(environ: dict) -> bytes:
    """The whole body: by its Content-Length, or to its end when it has none (chunked: the server
    decodes it, as gunicorn does)."""
    length = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    return stream.read(int(length)) if length.isdigit() else stream.read()


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
               metrics: PluginMetrics | None = None, health: Callable[[], dict] | None = None) -> Callable[[dict, Callable], Iterable[bytes]]:
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

    def plugin_call(method: str, environ: dict) -> Reply:
        started = time.monotonic()
        status, error = 200, ""
        try:
            handler = routes.get(method)
            if handler is None:
                status, error = 404, f"plugin {name} does not implement {method}"
                return _reply(status, {"Err": error})
            raw = _request_body(environ)
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

    def metrics_page() -> Reply:
        if metrics is None:
            return _reply(404, {"Err": "no metrics in this process"})
        return 200, METRICS_CONTENT_TYPE, metrics.render()

    def healthz() -> Reply:
        try:
            report = health() if health is not None else {"ok": True}
        except Exception as e:  # a health check must answer, whatever broke
            report = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        return _reply(200 if report.get("ok") else 503, {"plugin": name, **report})

    pages = {"/metrics": metrics_page, "/healthz": healthz}

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        verb, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
        # A page, or a protocol method (one name under /); anything else is not here.
        allowed = ("GET", "HEAD") if path in pages else ("POST",) if len(path) > 1 and "/" not in path[1:] else ()
        headers = []
        if not allowed:
            status, content_type, body = _reply(404, {"Err": f"Not Found: {verb} {path}"})
        elif verb not in allowed:
            status, content_type, body = _reply(405, {"Err": f"Method Not Allowed: {verb} {path}"})
            headers.append(("Allow", ", ".join(allowed)))
        else:
            status, content_type, body = pages[path]() if path in pages else plugin_call(path[1:], environ)
        headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [b"" if verb == "HEAD" else body]

    return app
