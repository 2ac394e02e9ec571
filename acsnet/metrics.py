"""Prometheus metrics of one plugin process, served on its own socket (GET /metrics) and, when asked,
on a TCP address. One registry per process: one plugin runs per process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PluginMetrics:
    def __init__(self, plugin: str):
        self.plugin = plugin
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("acsnet_requests", "Protocol requests, by method and HTTP status",
                                ["plugin", "method", "status"], registry=r)
        self.errors = Counter("acsnet_request_errors", "Protocol requests answered with an error", ["plugin", "method"], registry=r)
        self.latency = Histogram("acsnet_request_seconds", "Time to answer a protocol request", ["plugin", "method"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.store_latency = Histogram("acsnet_store_seconds", "Time of one store call", ["operation"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.store_connected = Gauge("acsnet_store_connected", "1 while the store session is up", registry=r)
        self.relay_connected = Gauge("acsnet_store_relay_connected", "1 while a store relay feeds the watches (0: "
                                     "they go to the store directly, or no relay is set)", registry=r)
        self.releases_pending = Gauge("acsnet_ipam_releases_pending", "Address releases answered and not yet in the store "
                                      "(the IPAM)", registry=r)
        self.endpoint_clears_pending = Gauge("acsnet_endpoint_clears_pending", "Endpoint removals answered and not "
                                             "yet in the store (a driver)", registry=r)
        self.endpoints = Gauge("acsnet_endpoints", "Endpoints on this host, by network", ["network"], registry=r)
        self.flows = Gauge("acsnet_flows", "OpenFlow flows this plugin installed, by network (\"shared\": the pipeline's own)",
                           ["network"], registry=r)
        self.reconcile_runs = Counter("acsnet_reconcile_runs", "Times the datapath was reconciled with the store", registry=r)
        self.reconcile_repairs = Counter("acsnet_reconcile_repairs",
                                         "Ports removed, re-attached or forgotten by a reconcile", registry=r)

    def observe_request(self, method: str, status: int, seconds: float) -> None:
        self.requests.labels(self.plugin, method, str(status)).inc()
        self.latency.labels(self.plugin, method).observe(seconds)
        if status != 200:
            self.errors.labels(self.plugin, method).inc()

    def observe_store(self, operation: str, seconds: float) -> None:
        self.store_latency.labels(operation).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def serve_tcp(self, address: str, *, cert: str | None, key: str | None, ca: str | None) -> None:
        """Serve metrics on TCP: with TLS and required client certificates when `ca` is given (see
        `check_tcp_settings`), else plain HTTP (only when explicitly allowed)."""
        host, _, port = address.rpartition(":")
        tls = {"certfile": cert, "keyfile": key, "client_cafile": ca, "client_auth_required": True} if ca else {}
        start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry, **tls)


def check_tcp_settings(settings: dict) -> None:
    """Anything on TCP needs TLS with client certificates, unless started explicitly insecure."""
    if not settings.get("metrics_address"):
        return
    host, _, port = settings["metrics_address"].rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"metrics address {settings['metrics_address']!r} is not HOST:PORT")
    tls = [settings.get(k) for k in ("metrics_tls_cert", "metrics_tls_key", "metrics_tls_ca")]
    if all(tls):
        return
    if any(tls):
        raise ValueError("metrics TLS needs all of --metrics-tls-cert, --metrics-tls-key and --metrics-tls-ca")
    if not settings.get("metrics_insecure"):
        raise ValueError("refusing plain HTTP metrics on TCP: give --metrics-tls-cert, --metrics-tls-key and "
                         "--metrics-tls-ca (clients must present a certificate), or --metrics-insecure")
