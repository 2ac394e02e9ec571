"""docs/grafana/acsnet.json queries only metrics the plugins export, and shows every one of them: the
names are read from a real exporter (acsnet/metrics.py's registry, rendered as /metrics renders it)."""

from __future__ import annotations

import json
import pathlib
import re

from prometheus_client.parser import text_string_to_metric_families

from acsnet.metrics import PluginMetrics

DASHBOARD = pathlib.Path(__file__).resolve().parents[1] / "docs" / "grafana" / "acsnet.json"
METRIC = re.compile(r"\bacsnet_[a-z_]+")


def exported() -> tuple[set[str], dict[str, set[str]]]:
    """Every sample name /metrics shows once each metric has a value, and each family's labels."""
    metrics = PluginMetrics("vlan")
    metrics.observe_request("NetworkDriver.Join", 200, 0.01)
    metrics.observe_request("NetworkDriver.Join", 500, 0.01)
    metrics.observe_store("get", 0.001)
    metrics.endpoints.labels("n1").set(2)
    metrics.flows.labels("shared").set(10)
    metrics.reconcile_runs.inc()
    metrics.reconcile_repairs.inc()
    metrics.store_connected.set(1)
    names, labels = set(), {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            names.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
    return names, labels


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    found += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return found


def test_every_metric_the_dashboard_queries_is_exported():
    names, _ = exported()
    queried = {m for q in queries() for m in METRIC.findall(q)}
    assert queried, "no acsnet metric found in the dashboard's queries"
    assert queried - names == set(), f"queried but not exported: {sorted(queried - names)}"


def test_every_exported_metric_has_a_panel():
    names, _ = exported()
    queried = {m for q in queries() for m in METRIC.findall(q)}
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n in names if n.startswith("acsnet_")}
    shown = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n in queried}
    assert families - shown == set(), f"exported but on no panel: {sorted(families - shown)}"


def test_labels_the_dashboard_groups_by_are_the_metrics_own():
    names, labels = exported()
    for query in queries():
        for grouped in re.findall(r"by \(([^)]*)\)", query):
            metrics = [m for m in METRIC.findall(query) if m in names]
            wanted = {label.strip() for label in grouped.split(",")} - {"le", "instance"}  # Prometheus adds instance
            assert any(wanted <= labels[m] | ({"le"} if m.endswith("_bucket") else set()) for m in metrics), (query, wanted)
