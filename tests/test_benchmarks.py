"""The benchmark harnesses run (reduced) and report what they promise: numbers in every row, ratios
computed from the same run."""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
import sys

import pytest

from acsnet.benchmarks import agent_memory, controlplane, host_stall
from acsnet.benchmarks.scale_hosts import LAYOUT, Layout, watch_kind
from acsnet.lab.host import REPO
from acsnet.store.liveness import LIVE

# the kinds of path the scale report counts a simulated host's watches by: a segment's, the live list
SEGMENT_WATCH, LIVE_WATCH = watch_kind(LAYOUT.segment(5000)), watch_kind(LIVE)


def test_netperf_quick_reports_every_path_with_ratios_from_one_run(tmp_path):
    """`acsnet bench --quick --link-rate 1gbit --underlay-mtu 9000 --out DIR`: the table, its JSON and
    the chart, and the control-plane figures, from one run, on links that really are shaped; Docker's
    macvlan and overlay (the peers) measured on the same lab, each beside its acsnet driver, and IPv6 rows
    (native, vlan, vxlan and vpc dual-stack, and macvlan's); each row with the MTU its packets were cut
    to, here on jumbo frames (a lab of 1500 and one of 9000 in one run, `--underlay-mtu 1500,9000`, would
    cost this test ~90 s more). The peers' and IPv6 rows cost this test about 35 s more."""
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "acsnet.cli", "bench", "--quick", "--link-rate", "1gbit", "--out", str(out),
                             "--underlay-mtu", "9000", "--workdir", str(tmp_path / "lab")],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "netperf.json").read_text())
    table = report["table"]
    assert report["underlay_mtu"] == [9000]
    assert set(table) == {"native", "plain OVS", "linux bridge", "kernel vxlan", "acsnet vlan", "acsnet vxlan", "acsnet vpc",
                          "docker macvlan", "docker overlay", "native IPv6", "acsnet vlan IPv6", "acsnet vxlan IPv6", "acsnet vpc IPv6",
                          "docker macvlan IPv6"}
    for name, row in table.items():
        assert row["bw"]["median"] > 0 and row["lat"]["median"] > 0 and row["iperf3"]["median"] > 0, name
        # Each ratio is this run's median over this run's native median (of its IP version).
        native = table["native IPv6" if name.endswith("IPv6") else "native"]
        assert abs(row["bw_ratio"] - row["bw"]["median"] / native["bw"]["median"]) < 1e-9
        assert abs(row["lat_ratio"] - row["lat"]["median"] / native["lat"]["median"]) < 1e-9
        assert len(report["samples"][name]) == 1
    # Every path takes what the underlay allows; VXLAN's (acsnet's, the kernel's, Docker's) 50 bytes less.
    mtus = {name: row["mtu"] for name, row in table.items()}
    assert mtus == {name: 8950 if "vxlan" in name or "overlay" in name else 9000 for name in table}, mtus
    # 1 Gbit/s is 125 MB/s: a host path faster than that would mean the links went unshaped (OVS
    # removes a qdisc it did not make from its ports, as it once did here).
    assert table["native"]["bw"]["median"] < 125 * 1.05, table["native"]
    printed = (out / "netperf.md").read_text()
    assert all(f"| {name} | {row['mtu']} |" in printed for name, row in table.items()) and printed in result.stdout
    assert (out / "netperf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Each acsnet driver beside its peer, from the same run's medians, and the report says which is ahead.
    assert [(row["acsnet"], row["peer"]) for row in report["peers"]] == [
        ("acsnet vlan", "docker macvlan"), ("acsnet vxlan", "docker overlay"),
        ("acsnet vlan IPv6", "docker macvlan IPv6")]
    for row in report["peers"]:
        assert abs(row["bw_over_peer"] - table[row["acsnet"]]["bw"]["median"] / table[row["peer"]]["bw"]["median"]) < 1e-9
        assert f"| {row['acsnet']} | {row['peer']} | {row['bw_over_peer']:.2f} | {row['bw_ahead']}" in printed
    # The control-plane figures are in the same report, from the same lab.
    control = report["control_plane"]
    runs = control["docker_run"]
    assert set(runs) == {"bridge", "vlan", "vxlan", "vpc", "macvlan", "overlay"}
    for driver, row in runs.items():
        assert row["median_s"] > 0 and abs(row["ratio_to_bridge"] - row["median_s"] / runs["bridge"]["median_s"]) < 1e-9
        extra = row["extra_over_bridge_ms"]
        assert extra["q1"] <= extra["median"] <= extra["q3"] and extra["median_low"] <= extra["median"] <= extra["median_high"], row
        assert driver != "bridge" or {extra[k] for k in ("median", "q1", "q3", "median_low", "median_high")} == {0}, extra
        assert len(row["runs_s"]) == 2 and statistics.median(row["runs_s"]) == row["median_s"]
        assert driver == "bridge" or f"| {driver} | {row['median_s']:.3f} ({row['min_s']:.3f}-{row['max_s']:.3f}) | " \
            f"{row['ratio_to_bridge']:.2f} | {extra['median']:+.0f} ({extra['q1']:+.0f} to {extra['q3']:+.0f}) | " \
            f"{extra['median_low']:+.0f} to {extra['median_high']:+.0f}: {controlplane.told_apart(extra)} |" in printed
    for driver, peer in (("vlan", "macvlan"), ("vxlan", "overlay")):
        assert abs(runs[driver]["ratio_to_peer"] - runs[driver]["median_s"] / runs[peer]["median_s"]) < 1e-9
        over_peer = runs[driver]["extra_over_peer_ms"]
        # 2 runs each: the median of the differences is the difference of the medians
        assert over_peer["median"] == pytest.approx((runs[driver]["median_s"] - runs[peer]["median_s"]) * 1000), over_peer
        assert f"{driver} / {peer} {runs[driver]['ratio_to_peer']:.2f}, run by run {over_peer['median']:+.0f} ms" in printed
    for plugin, method in (("vlan", "NetworkDriver.CreateEndpoint"), ("vxlan", "NetworkDriver.DeleteEndpoint"),
                           ("vpc", "NetworkDriver.CreateEndpoint"), ("acsnet", "IpamDriver.RequestAddress")):
        assert control["handlers"][plugin][method]["p50_ms"] > 0, (plugin, method)
    assert control["ipam"]["hosts"] == 3 and all(n > 0 for n in control["ipam"]["per_host"])
    trip = control["call_round_trip"]
    assert trip["calls"] == 360 and 0 < trip["p50_ms"] <= trip["p90_ms"], trip
    assert f"p50 {trip['p50_ms']:.2f} ms, p90 {trip['p90_ms']:.2f} ms" in printed
    assert all(row["p50"] > 0 for row in control["vxlan"]["propagation"].values())
    assert control["vxlan"]["scale"] == [{"endpoints": 100, "seconds": control["vxlan"]["scale"][0]["seconds"], "flows": 200}]
    assert "## Control plane" in printed and "| vlan |" in printed and "allocations/s" in printed
    # CreateEndpoint of each driver during those runs, exact, from the plugins' request logs
    for driver in ("vlan", "vxlan", "vpc"):
        assert runs[driver]["create_endpoint"]["calls"] >= 2 and runs[driver]["create_endpoint"]["p50_ms"] > 0, runs[driver]
    assert "create_endpoint" not in runs["bridge"]
    for driver in ("vlan", "vxlan", "vpc"):  # each call told by the run before it (bridge runs first of all)
        by_before = runs[driver]["create_endpoint_by_run_before"]
        assert sum(row["calls"] for row in by_before.values()) == 2 and driver not in by_before, by_before
        assert f"- {driver}: after " in printed
    # the plugins' own time per container, for the acsnet drivers only: at least its CreateEndpoint
    for driver in ("vlan", "vxlan", "vpc"):
        row = runs[driver]
        assert row["plugins_ms_per_container"] > row["create_endpoint"]["p50_ms"] / 2, row
        assert abs(row["plugins_ms_per_container"] - sum(row["plugins_ms_by_method"].values())) < 1e-9
        assert {"NetworkDriver.CreateEndpoint", "IpamDriver.RequestAddress"} <= set(row["plugins_ms_by_method"]), row
        assert f"- {driver}, {row['plugins_ms_per_container']:.1f} ms: " in printed
    assert all("plugins_ms_per_container" not in runs[d] for d in ("bridge", "macvlan", "overlay"))
    assert "plugins per container (ms)" in printed
    # add-port against ports on a host, both ways, in the same report
    assert [row["ports"] for row in control["ovsdb_ports"]] == [0, 50]
    assert all(row["ovs_vsctl_ms"] > 0 and row["idl_ms"] > 0 for row in control["ovsdb_ports"])
    assert "add-port time vs ports on a host" in printed and "| 50 |" in printed
    # one endpoint's flow change, forked, by an ovs-ofctl started ahead and over the kept connection, in the same report
    assert all(control["flow_change"][way]["changes"] == 8 and control["flow_change"][way]["p50_ms"] > 0 for way in ("forked", "spare", "connection"))
    assert "the kept OpenFlow connection, by port number" in printed
    assert all(control["flow_change"][way]["cpu_ms_mean"] >= 0 for way in ("forked", "spare", "connection"))
    # the host's store round trips alone and beside a port made or removed, in the same report
    assert control["host_stall"]["samples"] == 3
    assert all(control["host_stall"]["p50_ms"][way][kind] > 0 for way in host_stall.BESIDE for kind in ("read", "write"))
    assert "| beside port removal |" in printed


def test_netperf_names_a_lab_by_its_host_os_and_by_its_mtu_when_several_are_measured():
    from acsnet.benchmarks.netperf import lab_name

    assert lab_name(("debian13", 1500), [1500]) == "debian13"
    assert [lab_name(("machine", mtu), [1500, 9000]) for mtu in (1500, 9000)] == ["machine-mtu1500", "machine-mtu9000"]


def test_peer_comparison_pairs_each_acsnet_row_with_its_peer_of_the_same_lab():
    """Pure arithmetic, no lab: the comparison pairs vlan with macvlan and vxlan with overlay within
    each lab (rows labelled by their switch), and says who is ahead and whether the ranges overlap."""
    from acsnet.benchmarks.netperf import peer_comparison

    def row(bw: tuple[float, float, float], lat: tuple[float, float, float]) -> dict:
        return {"bw": dict(zip(("min", "median", "max"), bw)), "lat": dict(zip(("min", "median", "max"), lat))}

    table = {"acsnet vlan": row((100, 110, 119), (200, 250, 300)), "docker macvlan": row((90, 100, 105), (150, 200, 210)),
             "acsnet vxlan [OVS 3.5, debian13]": row((50, 60, 70), (300, 300, 300)),
             "docker overlay [OVS 3.5, debian13]": row((20, 30, 40), (400, 600, 700)),
             "acsnet vxlan": row((1, 1, 1), (1, 1, 1)),  # its peer's row is missing: no comparison
             "acsnet vlan IPv6": row((80, 80, 80), (100, 100, 100)), "docker macvlan IPv6": row((40, 40, 40), (100, 100, 100))}
    vlan, vxlan, vlan6 = peer_comparison(table)
    assert (vlan6["peer"], vlan6["bw_over_peer"], vlan6["peer_lat_over_acsnet"]) == ("docker macvlan IPv6", 2.0, 1.0)
    assert (vlan["peer"], vlan["bw_ahead"], vlan["lat_ahead"]) == ("docker macvlan", "acsnet", "peer")
    assert vlan["bw_over_peer"] == 1.1 and vlan["peer_lat_over_acsnet"] == 0.8 and vlan["bw_ranges_overlap"]
    assert vxlan["peer"] == "docker overlay [OVS 3.5, debian13]" and vxlan["bw_over_peer"] == 2.0
    assert vxlan["peer_lat_over_acsnet"] == 2.0 and not vxlan["bw_ranges_overlap"] and not vxlan["lat_ranges_overlap"]


def test_plugins_time_per_container_sums_each_drivers_calls_and_an_equal_share_of_the_ipams_on_written_logs(tmp_path):
    """Pure arithmetic on request logs written here (no lab, no plugin): only what was logged after each
    file's mark counts, every method counts (a failed call apart, and not in CreateEndpoint's times), and
    the IPAM's calls are shared alike."""
    from acsnet.benchmarks.controlplane import create_endpoint_times, handler_ms_per_container, plugin_calls

    def line(plugin: str, method: str, ms: float, status: int = 200) -> str:
        return (f"ts=2026-12-01 17:00:00,000 level=INFO logger=acsnet.server plugin={plugin} method={method} "
                f"status={status} duration_ms={ms:.1f}\n")

    vlan, ipam = tmp_path / "vlan-1.log", tmp_path / "acsnet-1.log"
    vlan.write_text(line("vlan", "NetworkDriver.CreateEndpoint", 99.0))  # before the mark: not counted
    ipam.write_text("")
    marks = {str(vlan): vlan.stat().st_size, str(ipam): 0}
    with open(vlan, "a") as f:
        f.write(line("vlan", "NetworkDriver.CreateEndpoint", 30.0) + line("vlan", "NetworkDriver.Join", 2.0)
                + line("vlan", "NetworkDriver.CreateEndpoint", 20.0) + line("vlan", "NetworkDriver.DeleteEndpoint", 8.0, 500)
                + line("vlan", "NetworkDriver.CreateEndpoint", 90.0, 409))
    ipam.write_text(line("acsnet", "IpamDriver.RequestAddress", 9.0) + line("acsnet", "IpamDriver.ReleaseAddress", 3.0)
                    + "a line that is no request\n")
    calls = plugin_calls(marks, {str(vlan): vlan.stat().st_size, str(ipam): ipam.stat().st_size})
    assert calls["vlan"] == [("NetworkDriver.CreateEndpoint", 30.0), ("NetworkDriver.Join", 2.0),
                             ("NetworkDriver.CreateEndpoint", 20.0), ("NetworkDriver.DeleteEndpoint!500", 8.0),
                             ("NetworkDriver.CreateEndpoint!409", 90.0)]
    assert create_endpoint_times(calls) == {"vlan": {"calls": 2, "p50_ms": 25.0, "max_ms": 30.0}}
    # 2 runs; the IPAM's 12 ms shared by 3 drivers: 4 each, 2 per run
    per_container = handler_ms_per_container(calls, 2, ["vlan", "vxlan", "vpc"])
    assert per_container["vlan"] == {"NetworkDriver.CreateEndpoint!409": 45.0, "NetworkDriver.CreateEndpoint": 25.0,
                                     "NetworkDriver.DeleteEndpoint!500": 4.0,
                                     "IpamDriver.RequestAddress": 1.5, "NetworkDriver.Join": 1.0,
                                     "IpamDriver.ReleaseAddress": 0.5}
    assert list(per_container["vlan"]) == sorted(per_container["vlan"], key=lambda m: -per_container["vlan"][m])
    assert per_container["vxlan"] == per_container["vpc"] == {"IpamDriver.RequestAddress": 1.5, "IpamDriver.ReleaseAddress": 0.5}


def test_create_endpoint_times_are_told_by_the_run_before_each_matched_to_runs_in_order():
    """Pure arithmetic on calls as the request logs give them (no lab): the k-th successful CreateEndpoint
    of a driver is its k-th run's, filed under the driver that ran just before; the first run of all has
    none before it; a driver whose calls do not number its runs gets nothing rather than a wrong match."""
    from acsnet.benchmarks.controlplane import create_endpoint_by_run_before

    sequence = ["vlan", "bridge", "vlan", "overlay", "vlan", "vxlan", "overlay", "vlan"]
    calls = {"vlan": [("NetworkDriver.CreateEndpoint", 5.0), ("NetworkDriver.Join", 1.0),
                      ("NetworkDriver.CreateEndpoint", 7.0), ("NetworkDriver.CreateEndpoint", 40.0),
                      ("NetworkDriver.CreateEndpoint", 30.0)],
             "vxlan": [("NetworkDriver.CreateEndpoint", 6.0), ("NetworkDriver.CreateEndpoint!409", 1.0)],
             "vpc": [("NetworkDriver.CreateEndpoint", 6.0)]}  # vpc never ran: its call matches no run
    assert create_endpoint_by_run_before(calls, sequence) == {
        "vlan": {"bridge": {"calls": 1, "mean_ms": 7.0, "p50_ms": 7.0},
                 "overlay": {"calls": 2, "mean_ms": 35.0, "p50_ms": 35.0}},
        "vxlan": {"vlan": {"calls": 1, "mean_ms": 6.0, "p50_ms": 6.0}}}


@pytest.mark.parametrize("count", [2, 3, 5, 6])
def test_the_docker_run_rounds_have_each_driver_follow_each_other_equally_often_across_rounds_too(count):
    """The runs as the benchmark makes them, the rounds one after another and over again: every round has
    each driver once, and each driver runs after each other equally often, at the rounds' seams too
    (a Williams design, balanced within rounds only, had vpc after overlay twice as often as after the rest)."""
    names = [f"d{i}" for i in range(count)]
    orders = controlplane.balanced_orders(names)
    assert all(sorted(order) == names for order in orders)
    sequence = [name for _ in range(3) for order in orders for name in order]
    follows = {}
    for before, after in zip(sequence, sequence[1:]):
        follows[(before, after)] = follows.get((before, after), 0) + 1
    assert set(follows) == {(a, b) for a in names for b in names if a != b}
    assert max(follows.values()) - min(follows.values()) <= 1, follows  # the first run has none before it
    assert controlplane.balanced_orders(list(controlplane.NETWORKS))[0][0] == "bridge"


@pytest.mark.parametrize("drivers, said", [("vlan,macvlan", "bridge among them"), ("bridge,vlan,foo", "(foo unknown)"),
                                             ("bridge,vlan,vlan", "at most once")])
def test_the_drivers_timed_are_refused_without_bridge_unknown_or_twice_before_any_lab_is_made(drivers, said, capsys):
    with pytest.raises(SystemExit) as exited:
        controlplane.main(["--drivers", drivers, "--workdir", "/nonexistent/never-made"])
    assert exited.value.code == 2 and said in capsys.readouterr().err


def test_over_bridge_run_by_run_pairs_each_run_with_bridges_run_of_the_same_round():
    # bridge's runs drift slower over the rounds; the driver is 10 ms slower in each round
    bridge = [0.300, 0.350, 0.400, 0.450, 0.500]
    driver = [b + 0.010 for b in bridge]
    extra = controlplane.paired_extra_ms(driver, bridge)
    assert all(abs(extra[k] - 10) < 1e-6 for k in ("median", "q1", "q3")), extra
    # the medians' ratio of the same runs says 2.5%, whatever the driver's own cost
    assert abs(statistics.median(driver) / statistics.median(bridge) - 1.025) < 1e-9
    spread = controlplane.paired_extra_ms([0.31, 0.32, 0.36, 0.30], [0.30, 0.30, 0.30, 0.30])
    assert (spread["q1"], spread["median"], spread["q3"]) == pytest.approx((7.5, 15, 30))


def test_the_median_interval_holds_the_median_as_often_as_it_says_and_tells_a_driver_from_another():
    # 30 values 1..30: the 10th and 21st (P(Binomial(30, 1/2) <= 9) = 0.0214 per side)
    assert controlplane.median_interval([float(v) for v in range(30, 0, -1)]) == pytest.approx((10, 21, 0.9572), abs=1e-4)
    assert controlplane.median_interval([1.0, 2.0, 3.0]) == (1.0, 3.0, 0.75)  # too few for 95%: the range, and what it covers
    rng = random.Random(7)
    for n in (30, 200):  # a skewed distribution whose median is ln 2
        held = sum(low <= math.log(2) <= high for low, high, _ in
                   (controlplane.median_interval([rng.expovariate(1) for _ in range(n)]) for _ in range(2000)))
        assert 0.93 <= held / 2000 <= 0.99, (n, held)
    slower = controlplane.paired_extra_ms([b + 0.010 + rng.uniform(-0.004, 0.004) for b in [0.3] * 40], [0.3] * 40)
    assert controlplane.told_apart(slower) == "slower" and 6 < slower["median_low"] <= slower["median_high"] < 14
    even = controlplane.paired_extra_ms([0.3 + rng.uniform(-0.02, 0.02) for _ in range(40)], [0.3] * 40)
    assert controlplane.told_apart(even) == "not told apart"
    faster = controlplane.paired_extra_ms([0.29] * 40, [0.3] * 40)
    assert controlplane.told_apart(faster) == "faster"


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


def test_scale_quick_converges_every_simulated_table_and_hands_out_no_address_twice(tmp_path):
    """`python -m acsnet.benchmarks.scale --quick`: simulated hosts (the real vxlan agent and store, one
    ZooKeeper session each, RecordingDatapath standing in for OVS) on a real ensemble of three, churned;
    every figure of every size from one run, every table converged, the IPAM's contention run clean."""
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "acsnet.benchmarks.scale", "--quick", "--out", str(out),
                             "--workdir", str(tmp_path / "zk")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((out / "scale.json").read_text())
    assert [row["hosts"] for row in report["rows"]] == [3, 6] and report["checks_failed"] == []
    for row in report["rows"]:
        assert row["loaded_check"] == row["check"] == {"missing": 0, "stale": 0, "unconverged_hosts": 0}  # no samples either
        assert row["events"] == 10 and row["propagated"] == row["events"] and row["unpropagated"] == 0
        assert 0 < row["propagation_p50_s"] <= row["propagation_p99_s"]
        assert row["zk_requests_per_s"] > 0 and row["zk_watches"] > 0 and row["zk_znodes"] > row["endpoints"] * 2
        # each host follows its 2 segments and the live list itself, with leaves watches, which mntr counts twice
        kinds = row["hosts_watches_by_kind"]
        assert kinds[SEGMENT_WATCH] == 2 * row["hosts"] and kinds[LIVE_WATCH] == row["hosts"], kinds
        assert row["zk_watches"] >= 2 * (kinds[SEGMENT_WATCH] + kinds[LIVE_WATCH])
        assert 0 < row["zk_load_fraction"] and row["memory_per_host_mb"] > 0 and row["cpu_per_host_ms_per_s"] > 0
        # the segments' records are followed with persistent watches: their events are told apart
        assert 0 < row["zk_leaf_notifications_per_s"] <= row["zk_notifications_per_s"]
        # Work in proportion to what changed: a container replaced computes its own and its record's
        # flows (a removal computes none), not a host's whole table (~70x the flows changed, before).
        assert 0 < row["flows_computed_per_event"] <= row["flows_changed_per_event"]
    sustained = report["sustained"]
    assert sustained["reads_per_s"] > 0 and sustained["writes_per_s"] > 0 and sustained["notifications_per_s"] > 0
    assert sustained["leaf_notifications_per_s"] > 0
    ipam = report["ipam"]["contention"]
    assert ipam["allocations"] == ipam["hosts"] * ipam["per_host"] == ipam["stored"] and ipam["stored_matches"]
    assert ipam["duplicates"] == [] and report["ipam"]["by_fullness"]["0.99"]["allocations"] == 20
    assert report["limit"]["figure"] in ("propagation_p99_s", "memory_per_host_mb", "recomputed_over_changed", "zk_load_fraction")
    printed = (out / "scale.md").read_text()
    assert printed in result.stdout and "Limits growth" in printed and "RecordingDatapath" in printed
    for figure in ("propagation-p99-s", "zk-load-fraction", "memory-per-host-mb", "recomputed-over-changed", "zk-watches"):
        assert (out / f"scale-{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "scale.csv").read_text().splitlines()[0].startswith("hosts,agents,endpoints,")


def test_scale_quick_through_a_store_relay_converges_with_the_hosts_following_no_segment_themselves(tmp_path):
    """`python -m acsnet.benchmarks.scale --quick --relays 1`: the simulated hosts' leaves watches (their
    segments, the live hosts) come through a real relay process (`acsnet.store.relay`) on the same
    ensemble: every table converges, every record reaches every interested host, and ZooKeeper holds
    the relay's watches, not one per host and segment (a host following its 2 segments and the live
    list itself is 3 such watches a host)."""
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "acsnet.benchmarks.scale", "--quick", "--sizes", "6", "--relays", "1",
                             "--out", str(out), "--workdir", str(tmp_path / "zk")], cwd=REPO, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((out / "scale.json").read_text())
    (row,) = report["rows"]
    assert row["loaded_check"] == row["check"] == {"missing": 0, "stale": 0, "unconverged_hosts": 0}
    assert row["events"] == 10 and row["propagated"] == row["events"] and row["unpropagated"] == 0
    assert row["relays"] == 1 and row["relay_cpu_ms_per_s"] > 0 and row["relay_memory_mb"] > 0
    assert row["zk_watches"] < 2 * row["hosts"], row["zk_watches"]
    assert SEGMENT_WATCH not in row["hosts_watches_by_kind"] and LIVE_WATCH not in row["hosts_watches_by_kind"]
    assert "store relays" in (out / "scale.md").read_text() and "the hosts' sessions: " in (out / "scale.md").read_text()


def test_scale_quick_with_fewer_agents_than_hosts_holds_the_others_state_and_sessions(tmp_path):
    """`python -m acsnet.benchmarks.scale --quick --sizes 8 --agents 3`: 3 of 8 hosts run an agent; the
    other 5 are their records in the store and their live sessions. Every running agent's table must
    hold the 5 agent-less hosts' endpoints too (the vxlan agent leaves out the records of a host with no
    live session, so the check fails if their sessions are missing), and only the agents' endpoints are
    replaced. Memory and CPU per host are per agent that runs."""
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "acsnet.benchmarks.scale", "--quick", "--sizes", "8", "--agents", "3",
                             "--out", str(out), "--workdir", str(tmp_path / "zk")], cwd=REPO, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((out / "scale.json").read_text())
    (row,) = report["rows"]
    assert row["hosts"] == 8 and row["agents"] == 3 and row["endpoints"] == 8 * 6
    assert row["loaded_check"] == row["check"] == {"missing": 0, "stale": 0, "unconverged_hosts": 0}
    assert row["events"] == 10 and row["propagated"] == row["events"] and row["unpropagated"] == 0
    assert row["memory_per_host_mb"] > 0 and report["layout"]["agents"] == 3
    assert "hosts run an agent" in (out / "scale.md").read_text()
    refused = subprocess.run([sys.executable, "-m", "acsnet.benchmarks.scale", "--agents", "0"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--agents takes a number of hosts" in refused.stderr


def test_scale_ipam_only_runs_the_ipam_part_before_and_after_into_its_own_report(tmp_path):
    """`python -m acsnet.benchmarks.scale --quick --ipam-only --before HEAD`: only the IPAM's contention
    runs (the code of HEAD and this tree, on one real ensemble), into scale-ipam.md and .json; no hosts
    are simulated and no scale.md is written, so the hosts' report of an earlier run stays as it was."""
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "acsnet.benchmarks.scale", "--quick", "--ipam-only", "--before", "HEAD",
                             "--out", str(out), "--workdir", str(tmp_path / "zk")],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((out / "scale-ipam.json").read_text())
    assert report["rows"] == report["before_rows"] == [] and report["checks_failed"] == []
    for run in (report["ipam"]["contention"], report["ipam"]["contention_before"]):
        assert run["allocations"] == run["hosts"] * run["per_host"] and run["duplicates"] == []
    printed = (out / "scale-ipam.md").read_text()
    assert printed in result.stdout and "empty pool, before (`HEAD`)" in printed and "Checks: all passed" in printed
    assert not (out / "scale.md").exists() and not (out / "scale.json").exists()


def test_scale_checks_fail_on_a_missing_or_stale_flow_and_on_an_address_handed_out_twice():
    """The scale run's checks can fail: a host's table (the vxlan driver's real flows) missing an
    endpoint, or holding one that is gone; an address handed out twice; and the report says so."""
    import netaddr

    from acsnet.benchmarks import scale_report
    from acsnet.benchmarks.scale_hosts import Layout, table_mismatches
    from acsnet.benchmarks.scale_ipam import duplicates
    from acsnet.plugins.segments.datapath import HostView
    from acsnet.plugins.segments.model import SegmentRecord
    from acsnet.plugins.vxlan.agent import vxlan_table

    layout = Layout(hosts=3, endpoints_per_host=2, networks=1, networks_per_host=1)
    network = layout.network(0)
    remote = [layout.endpoint(1, 0), layout.endpoint(2, 0)]
    records = tuple(SegmentRecord(layout.host_name(i + 1), layout.host_mac(i + 1), layout.vtep(i + 1), e.ip, e.mac, e.endpoint_id)
                    for i, e in enumerate(remote))
    flows = vxlan_table(HostView("sim0000", (network,), (layout.endpoint(0, 0),), ((network.segment, records),)))
    both = {(network.segment, e.mac) for e in remote}
    assert table_mismatches(flows, both, {network.segment}) == (0, 0)
    assert table_mismatches(flows, both | {(network.segment, "02:99:00:00:00:01")}, {network.segment}) == (1, 0)
    assert table_mismatches(flows, {(network.segment, remote[0].mac)}, {network.segment}) == (0, 1)
    assert netaddr.IPAddress(remote[0].ip) in network.subnet

    assert duplicates(["10.0.0.2", "10.0.0.3", "10.0.0.2"]) == ["10.0.0.2"] and duplicates(["10.0.0.2"]) == []
    clean = {"missing": 0, "stale": 0, "unconverged_hosts": 0}
    ipam_run = {"duplicates": [], "error_count": 0, "errors": []}
    report = {"rows": [{"hosts": 3, "loaded_check": clean, "check": clean, "unpropagated": 0, "error_count": 0, "errors": []}],
              "ipam": {"contention": {**ipam_run, "stored_matches": True}, "by_fullness": {0.0: ipam_run, 0.99: ipam_run}}}
    assert scale_report.failed_checks(report) == []
    report["rows"][0]["check"] = {"missing": 1, "stale": 0, "unconverged_hosts": 1}
    report["ipam"]["by_fullness"][0.99] = {**ipam_run, "duplicates": ["100.64.255.9"]}
    failed = scale_report.failed_checks(report)
    assert len(failed) == 2 and "not converged" in failed[0] and "100.64.255.9" in failed[1]
    # a size whose run failed (the simulated sessions lost, say) fails the run too; one not run does not
    report["skipped"] = [{"hosts": 6, "design": "after", "outcome": "did not hold", "why": "start_agents: ConnectionLoss"},
                         {"hosts": 9, "design": "after", "why": "first load projected 900s > budget 300s"}]
    failed = scale_report.failed_checks(report)
    assert len(failed) == 3 and failed[0] == "6 hosts: did not hold: start_agents: ConnectionLoss"


def test_a_scale_report_is_written_again_from_its_json_with_what_its_before_differs_in(tmp_path):
    """`python -m acsnet.benchmarks.scale_report scale.json --before-says ... --shared-with ...`: the
    recorded run's report again, saying what its before and after differ in and what else ran; its
    numbers are the JSON's."""
    import shutil

    shutil.copy(f"{REPO}/benchmarks/results/scale.json", tmp_path / "scale.json")
    subprocess.run([sys.executable, "-m", "acsnet.benchmarks.scale_report", str(tmp_path / "scale.json"),
                    "--before-says", "before SAYS THIS", "--shared-with", "SOMETHING ELSE"], check=True, capture_output=True)
    printed = (tmp_path / "scale.md").read_text()
    report = json.loads((tmp_path / "scale.json").read_text())
    assert "): before SAYS THIS. Both ran in this run" in printed and "cores shared with SOMETHING ELSE" in printed
    assert report["before"]["says"] == "before SAYS THIS" and report["shared_with"] == "SOMETHING ELSE"
    hosts = report['rows'][0]['hosts']  # every host ran an agent in that run (before `--agents`)
    assert f"| {hosts} | {hosts} | {report['rows'][0]['endpoints']} |" in printed


def test_a_scale_report_of_one_size_names_its_limit_at_that_size_and_projects_no_growth(tmp_path):
    """With one size run (the recorded 1,000-host run) there are no two points to grow between: the
    report says so, where it printed an exponent of '-'."""
    import shutil

    shutil.copy(f"{REPO}/benchmarks/results/scale-1000x10/scale.json", tmp_path / "scale.json")
    subprocess.run([sys.executable, "-m", "acsnet.benchmarks.scale_report", str(tmp_path / "scale.json")],
                   check=True, capture_output=True)
    printed = (tmp_path / "scale.md").read_text()
    assert "at 1000 hosts, the only size run, so no growth is measured (goal: under 1 s;" in printed, printed
    assert "hosts^" not in printed


def test_the_scale_ensemble_grants_the_simulated_hosts_the_30_s_sessions_they_ask_for(tmp_path):
    """The lab's ZooKeeper ticks every 0.5 s, which caps a session at 10 s (20 ticks): the 1,000-host
    simulation's hosts, starved of CPU by the others, asked for 30 s, got 10 and expired by the hundred.
    On a real server with the scale ensemble's settings, the session negotiated is the one asked for."""
    import logging

    from kazoo.client import KazooClient
    from kazoo.loggingsupport import BLATHER

    from acsnet.benchmarks.scale_ensemble import SETTINGS
    from acsnet.lab.zookeeper import ZooKeeperServer

    negotiated = []

    class Negotiated(logging.Handler):
        def emit(self, record):
            text = record.getMessage()
            if "negotiated session timeout:" in text:
                negotiated.append(int(text.split("negotiated session timeout:")[1].split()[0]))

    logger = logging.getLogger("kazoo.client")
    handler, level = Negotiated(level=BLATHER), logger.level
    logger.addHandler(handler)
    logger.setLevel(BLATHER)
    servers = [ZooKeeperServer(str(tmp_path / "scale"), settings=SETTINGS), ZooKeeperServer(str(tmp_path / "lab"))]
    try:
        for server in servers:  # the scale ensemble's settings, then the lab's own
            server.start()
            client = KazooClient(hosts=server.address, timeout=30.0)
            client.start(timeout=20)
            client.stop()
            client.close()
        assert negotiated == [30000, 10000], negotiated
    finally:
        for server in servers:
            server.stop()
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_the_agent_memory_benchmark_programs_every_record_and_splits_the_recordings_share_out(tmp_path):
    """A small cluster (40 hosts x 10 endpoints): every other host's record on the agent's 2 segments is
    in its table, the report adds up, and the recording's copy of the identities is counted apart."""
    report = agent_memory.measure(40, 10, str(tmp_path))
    layout = Layout(40, 10, agent_memory.NETWORKS, agent_memory.NETWORKS_PER_HOST)
    segments = {layout.network(k).segment for k in layout.host_networks(0)}
    expected = sum(layout.endpoint(i, slot).segment in segments for i in range(1, 40) for slot in range(10))
    assert report["complete"] and report["records"] == expected > 0
    assert report["flows"] >= 2 * report["records"]
    assert report["agent_mb"] > 0 and report["recording_mb"] > 0
    assert abs(report["agent_mb"] + report["recording_mb"] - report["traced_mb"]) < 1e-9
    assert "| MB | blocks | allocated at | code |" in agent_memory.markdown(report)
