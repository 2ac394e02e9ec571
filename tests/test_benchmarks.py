"""The benchmark harnesses run (reduced) and report what they promise: numbers in every row, ratios
computed from the same run."""

from __future__ import annotations

import json
import subprocess
import sys

from plugins.lab.host import REPO


def test_netperf_quick_reports_every_path_with_ratios_from_one_run(tmp_path):
    """`acsnet bench --quick --out DIR`: the table, its JSON and the chart from one run."""
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "plugins.cli", "bench", "--quick", "--out", str(out),
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
    printed = (out / "netperf.md").read_text()
    assert all(f"| {name} |" in printed for name in table) and printed in result.stdout
    assert (out / "netperf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
