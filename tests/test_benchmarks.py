"""The benchmark harnesses run (reduced) and report what they promise: numbers in every row, ratios
computed from the same run."""

from __future__ import annotations

import json
import subprocess
import sys

from acsnet.lab.host import REPO


def test_netperf_quick_reports_every_path_with_ratios_from_one_run(tmp_path):
    """`acsnet bench --quick --link-rate 1gbit --out DIR`: the table, its JSON and the chart, and the
    control-plane figures, from one run, on links that really are shaped."""
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "acsnet.cli", "bench", "--quick", "--link-rate", "1gbit", "--out", str(out),
                             "--workdir", str(tmp_path / "lab")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "netperf.json").read_text())
    table = report["table"]
    assert set(table) == {"native", "plain OVS", "linux bridge", "kernel vxlan", "acsnet vlan", "acsnet vxlan", "acsnet vpc"}
    for name, row in table.items():
        assert row["bw"]["median"] > 0 and row["lat"]["median"] > 0 and row["iperf3"]["median"] > 0, name
        # Each ratio is this run's median over this run's native median.
        assert abs(row["bw_ratio"] - row["bw"]["median"] / table["native"]["bw"]["median"]) < 1e-9
        assert len(report["samples"][name]) == 1
    # 1 Gbit/s is 125 MB/s: a host path faster than that would mean the links went unshaped (OVS
    # removes a qdisc it did not make from its ports, as it once did here).
    assert table["native"]["bw"]["median"] < 125 * 1.05, table["native"]
    printed = (out / "netperf.md").read_text()
    assert all(f"| {name} |" in printed for name in table) and printed in result.stdout
    assert (out / "netperf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The control-plane figures are in the same report, from the same lab.
    control = report["control_plane"]
    runs = control["docker_run"]
    assert set(runs) == {"bridge", "vlan", "vxlan", "vpc"}
    for driver, row in runs.items():
        assert row["median_s"] > 0 and abs(row["ratio_to_bridge"] - row["median_s"] / runs["bridge"]["median_s"]) < 1e-9
    for plugin, method in (("vlan", "NetworkDriver.CreateEndpoint"), ("vxlan", "NetworkDriver.DeleteEndpoint"),
                           ("vpc", "NetworkDriver.CreateEndpoint"), ("acsnet", "IpamDriver.RequestAddress")):
        assert control["handlers"][plugin][method]["p50_ms"] > 0, (plugin, method)
    assert control["ipam"]["hosts"] == 3 and all(n > 0 for n in control["ipam"]["per_host"])
    assert all(row["p50"] > 0 for row in control["vxlan"]["propagation"].values())
    assert control["vxlan"]["scale"] == [{"endpoints": 100, "seconds": control["vxlan"]["scale"][0]["seconds"], "flows": 200}]
    assert "## Control plane" in printed and "| vlan |" in printed and "allocations/s" in printed
    # CreateEndpoint of each driver during those runs, exact, from the plugins' request logs
    for driver in ("vlan", "vxlan", "vpc"):
        assert runs[driver]["create_endpoint"]["calls"] >= 2 and runs[driver]["create_endpoint"]["p50_ms"] > 0, runs[driver]
    assert "create_endpoint" not in runs["bridge"]
    # add-port against ports on a host, both ways, in the same report
    assert [row["ports"] for row in control["ovsdb_ports"]] == [0, 50]
    assert all(row["ovs_vsctl_ms"] > 0 and row["idl_ms"] > 0 for row in control["ovsdb_ports"])
    assert "add-port time vs ports on a host" in printed and "| 50 |" in printed


def test_ovsdb_ports_measures_add_port_both_ways_at_each_size(tmp_path):
    """`python -m acsnet.benchmarks.ovsdb_ports` on its own private ovsdb-server: a row per size, both
    ways, and nothing left behind (no ovsdb-server of its own running after it)."""
    out = tmp_path / "ports.json"
    result = subprocess.run([sys.executable, "-m", "acsnet.benchmarks.ovsdb_ports", "--sizes", "0,100", "--samples", "3",
                             "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [row["ports"] for row in rows] == [0, 100] and all(row["samples"] == 3 for row in rows)
    assert all(row["ovs_vsctl_ms"] > 0 and row["idl_ms"] > 0 for row in rows)
    assert "| 100 |" in result.stdout and "persistent IDL" in result.stdout
    leftover = subprocess.run(["pgrep", "-f", "acsnet-ovsdb-bench-"], capture_output=True, text=True).stdout
    assert leftover == "", leftover


def test_dashboard_bench_reduced_times_every_request_beside_a_whole_store_read(tmp_path):
    result = subprocess.run([sys.executable, "-m", "acsnet.benchmarks.dashboard_bench", "--hosts", "5", "--addresses", "300",
                             "--repeat", "3", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "dashboard.json").read_text())
    assert (report["hosts"], report["addresses"], report["records_read"]) == (5, 300, 300)
    assert report["whole_store_read_ms"] > 0 and report["dashboard_ready_seconds"] >= 0
    for name, row in report["requests"].items():
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["bytes"] > 0, name
        assert abs(row["of_whole_read"] - row["p50_ms"] / report["whole_store_read_ms"]) < 1e-3, name
    printed = (tmp_path / "dashboard.md").read_text()
    assert all(f"| {name} |" in printed for name in report["requests"]) and printed in result.stdout
