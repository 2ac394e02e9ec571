"""The benchmark harnesses run (reduced) and report what they promise: numbers in every row, ratios
computed from the same run."""

from __future__ import annotations

import json

from benchmarks import netperf


def test_netperf_quick_reports_every_path_with_ratios_from_one_run(tmp_path, capsys):
    out = tmp_path / "netperf.json"
    assert netperf.main(["--quick", "--json", str(out), "--workdir", str(tmp_path / "lab")]) == 0
    report = json.loads(out.read_text())
    table = report["table"]
    assert set(table) == {"native", "acsnet vlan", "acsnet vxlan", "acsnet vpc"}
    for name, row in table.items():
        assert row["bw"]["median"] > 0 and row["lat"]["median"] > 0 and row["iperf3"]["median"] > 0, name
        # Each ratio is this run's median over this run's native median.
        assert abs(row["bw_ratio"] - row["bw"]["median"] / table["native"]["bw"]["median"]) < 1e-9
        assert len(report["samples"][name]) == 1
    printed = capsys.readouterr().out
    assert "| native |" in printed and "| acsnet vlan |" in printed and "| acsnet vxlan |" in printed
