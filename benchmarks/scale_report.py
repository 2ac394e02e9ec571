"""The scale benchmark's report: its table (markdown, CSV), a chart per figure against hosts, the
checks that fail the run, and the figure that limits growth."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys

# figure key: (label, unit, goal at 1,000 hosts or None, what the goal says)
FIGURES = {
    "propagation_p99_s": ("propagation p99", "s", 1.0, "under 1 s"),
    "propagation_p50_s": ("propagation p50", "s", None, ""),
    "memory_per_host_mb": ("agent memory per host", "MB", 100.0, "under 100 MB"),
    "cpu_per_host_ms_per_s": ("agent CPU per host", "ms/s", None, ""),
    "recomputed_over_changed": ("flows computed / flows changed, per event", "x", 2.0,
                                "work proportional to what changed (at most 2x)"),
    "zk_load_fraction": ("ZooKeeper load / what it sustains", "", 0.5, "below half"),
    "zk_requests_per_s": ("ZooKeeper requests", "/s", None, ""),
    "zk_watches": ("ZooKeeper watches", "", None, ""),
    "zk_znodes": ("ZooKeeper znodes", "", None, ""),
}
GOAL_HOSTS = 1000
DEFAULT_START_AT_ONCE = 64  # the scale run's `--start-at-once` unless given; the report names any other value
# What "before" and "after" differ in, unless the run says (`--before-says`): the comparison the report
# was first written for.
BEFORE_SAYS = ("every host watches every segment and recomputes its whole flow table on each event, reading "
               "records one by one (and the IPAM's hosts all retry on the lowest chunk); after is this tree: a host "
               "watches the segments it has endpoints in, reads a burst of records in one batch and changes only "
               "the flows of what changed")

COLUMNS = ["hosts", "agents", "endpoints", "load_s", "propagation_p50_s", "propagation_p99_s", "zk_requests_per_s", "zk_writes_per_s",
           "zk_notifications_per_s", "zk_load_fraction", "zk_watches", "zk_znodes", "memory_per_host_mb",
           "cpu_per_host_ms_per_s", "flows_computed_per_event", "flows_changed_per_event", "recomputed_over_changed",
           "events_per_s", "relays", "relay_cpu_ms_per_s", "machine_busy", "load_average_1m"]
HEADERS = ["hosts", "agents", "endpoints", "first load (s)", "prop. p50 (s)", "prop. p99 (s)", "ZK req/s", "ZK writes/s",
           "ZK notif./s", "ZK load", "ZK watches", "ZK znodes", "mem/host (MB)", "CPU/host (ms/s)",
           "flows computed/event", "flows changed/event", "computed/changed", "events/s", "relays", "relays' CPU (ms/s)",
           "machine busy", "load avg (1 min)"]
# before/after side by side: the figures the designs differ in
COMPARED = ["load_s", "propagation_p50_s", "propagation_p99_s", "zk_requests_per_s", "zk_watches", "memory_per_host_mb",
            "cpu_per_host_ms_per_s", "flows_computed_per_event", "recomputed_over_changed", "relay_cpu_ms_per_s",
            "machine_busy", "events_per_s"]


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def cell(row: dict, column: str):
    """A row's value in a column; a run from before `--agents` ran an agent for every host."""
    return row.get("agents", row["hosts"]) if column == "agents" else row.get(column)


def one_line(row: dict) -> str:
    return (f"propagation p50/p99 {fmt(row['propagation_p50_s'])}/{fmt(row['propagation_p99_s'])} s, "
            f"ZK {fmt(row['zk_requests_per_s'])} req/s ({fmt(row['zk_load_fraction'])} of capacity), "
            f"{row['zk_watches']} watches, {row['zk_znodes']} znodes, {fmt(row['memory_per_host_mb'])} MB and "
            f"{fmt(row['cpu_per_host_ms_per_s'])} ms/s CPU per host, {fmt(row['flows_computed_per_event'])} flows "
            f"computed per event for {fmt(row['flows_changed_per_event'])} changed; {row['unpropagated']} records "
            f"never reached an interested host; tables {row['check']}")


def growth(rows: list[dict], key: str) -> tuple[float | None, float | None]:
    """(exponent of the figure's growth with hosts between the last two sizes, its value projected at
    1,000 hosts by that exponent)."""
    points = [(r["hosts"], r[key]) for r in rows if r.get(key)]
    if not points:
        return None, None
    if len(points) == 1:
        return None, points[-1][1]
    (h1, v1), (h2, v2) = points[-2], points[-1]
    slope = math.log(v2 / v1) / math.log(h2 / h1) if v1 > 0 and v2 > 0 and h2 != h1 else 0.0
    return slope, v2 * (GOAL_HOSTS / h2) ** slope


def limiting_figure(rows: list[dict]) -> dict | None:
    """The goal figure furthest past (or closest to) its goal at 1,000 hosts, as the sizes run project it."""
    worst = None
    for key, (label, unit, goal, says) in FIGURES.items():
        if goal is None:
            continue
        slope, at_goal = growth(rows, key)
        if at_goal is None:
            continue
        candidate = {"figure": key, "label": label, "goal": says, "largest_run": rows[-1]["hosts"],
                     "at_largest": rows[-1][key], "growth_exponent": slope, "projected_at_1000": at_goal,
                     "over_goal": at_goal / goal}
        if worst is None or candidate["over_goal"] > worst["over_goal"]:
            worst = candidate
    return worst


def failed_checks(report: dict) -> list[str]:
    """Everything that makes the run fail: a table not converged, a record that never reached a host
    with endpoints on its network, an error, an address handed out twice, a size that did not hold."""
    held = [f"{skip['hosts']} hosts: did not hold: {skip['why']}" for skip in report.get("skipped", [])
            if skip.get("outcome") == "did not hold" and skip.get("design", "after") == "after"]
    return held + _failures(report["rows"], report["ipam"]["contention"], report["ipam"]["by_fullness"])


def before_failures(report: dict) -> list[str]:
    """What went wrong with the 'before' code: a finding of the comparison, not a failed check."""
    ipam = report["ipam"]
    return _failures(report.get("before_rows") or [], ipam.get("contention_before"), {})


def _failures(rows: list[dict], contention: dict | None, by_fullness: dict) -> list[str]:
    failed = []
    for row in rows:
        for phase in ("loaded_check", "check"):
            if any(row[phase][k] for k in ("missing", "stale", "unconverged_hosts")):
                failed.append(f"{row['hosts']} hosts ({row.get('design', 'after')}): tables not converged ({phase}: {row[phase]})")
        if row["unpropagated"]:
            failed.append(f"{row['hosts']} hosts: {row['unpropagated']} records never reached every interested host")
        if row["error_count"]:
            failed.append(f"{row['hosts']} hosts: {row['error_count']} replacements failed: {row['errors'][:2]}")
    runs = [("contention", contention)] if contention else []
    for name, result in runs + [(f"{float(f):.0%} full", r) for f, r in by_fullness.items()]:
        if result["duplicates"]:
            failed.append(f"IPAM {name}: addresses handed out twice: {result['duplicates'][:5]}")
        if result["error_count"]:
            failed.append(f"IPAM {name}: {result['error_count']} allocations failed: {result['errors'][:2]}")
    if contention and contention.get("stored_matches") is False:
        failed.append("IPAM contention: the store's address records differ from the addresses handed out")
    return failed


def chart(rows: list[dict], key: str, path: str, before: list[dict] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label, unit, goal, says = FIGURES[key]
    points = [(r["hosts"], r[key]) for r in rows if r.get(key) is not None]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label="after (measured)" if before else "measured")
    earlier = [(r["hosts"], r[key]) for r in before if r.get(key) is not None]
    if earlier:
        ax.plot([p[0] for p in earlier], [p[1] for p in earlier], "s--", color="gray", label="before (measured)")
    if goal is not None:
        ax.axhline(goal, color="red", linestyle="--", label=f"goal at {GOAL_HOSTS:,} hosts: {says}")
    ax.set_xscale("log")
    ax.set_xlabel("simulated hosts")
    ax.set_ylabel(f"{label} ({unit})" if unit else label)
    ax.set_title(label)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def machine_line(report: dict, rows: list[dict]) -> str:
    loads = [r["load_average_1m"] for r in rows if r.get("load_average_1m") is not None]
    busiest = f"{max(loads):.1f}" if loads else "-"
    return (f"The machine was loaded: {report.get('cpus', '?')} cores shared with "
            f"{report.get('shared_with') or 'other work'} (load average up to "
            f"{busiest} during the sizes' churn; the 'machine busy' column is this benchmark's own share). Times "
            f"here are upper bounds for a quiet machine.")


def write(report: dict, out: str) -> str:
    """Write scale.md, scale.csv and the charts to `out`; answer the markdown."""
    rows = report["rows"]
    with open(os.path.join(out, "scale.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([cell(row, c) for c in COLUMNS])
    before_rows = report.get("before_rows") or []
    for key in FIGURES:
        chart(rows, key, os.path.join(out, f"scale-{key.replace('_', '-')}.png"), before_rows)
    s = report["sustained"]
    layout = report["layout"]
    lines = [f"# Scale, by simulation ({report['when']})", "",
             f"Simulated hosts: the real vxlan agent and ZooKeeper store, one session per host, with "
             f"`RecordingDatapath` standing in for OVS (each host's flow table in memory), in "
             f"{layout['processes']} processes on this machine; a ZooKeeper ensemble of three on loopback. "
             f"{layout['endpoints_per_host']} endpoints per host in {layout['networks_per_host']} of {layout['networks']} "
             f"networks (every network on every host); {layout['rate']:g} container replacements/s for {layout['seconds']:g} s."
             + (f" This tree's hosts follow their segments and the live hosts through {layout['relays']} store relays "
                f"(`acsnet relay`, a process each, their CPU in 'machine busy'), each host its own session for the rest."
                if layout.get("relays") else "")
             + (f" At most {layout['start_at_once']} hosts' agents started at once (this tree's)."
                if layout.get("start_at_once") not in (None, DEFAULT_START_AT_ONCE) else "")
             + (f" At each size at most {layout['agents']} hosts run an agent ('agents', drawn at random); the others "
                f"are their records and endpoints in the store and their live sessions (one session per host process "
                f"holds them), so each agent that runs sees the cluster of that size, while ZooKeeper's figures are "
                f"those of the agents that run, not of every host's." if layout.get("agents") else ""),
             "", f"The ensemble sustains here: {s['reads_per_s']:.0f} reads/s, {s['writes_per_s']:.0f} writes/s, "
             f"{s['notifications_per_s']:.0f} one-shot watch notifications/s (each followed by the read that arms it again)"
             + (f", {s['leaf_notifications_per_s']:.0f} persistent recursive watch notifications/s (a child made or deleted)"
                if s.get("leaf_notifications_per_s") else "")
             + f" (each kind alone, {s['processes']} client processes).", "",
             machine_line(report, rows + before_rows), ""]
    before = report.get("before")
    if before_rows:
        lines += [f"Before is git ref `{before['ref']}` (commit {before['commit'][:12]}): {before.get('says') or BEFORE_SAYS}. "
                  f"Both ran in this run, on the same ensemble.", "",
                  "| hosts | figure | before | after | after/before |", "|---|---|---|---|---|"]
        after_by_hosts = {r["hosts"]: r for r in rows}
        for old in before_rows:
            new = after_by_hosts.get(old["hosts"])
            if new is None:
                continue
            for key in COMPARED:
                a, b = old.get(key), new.get(key)
                ratio = fmt(b / a) if a and b is not None else "-"
                lines.append(f"| {old['hosts']} | {HEADERS[COLUMNS.index(key)]} | {fmt(a)} | {fmt(b)} | {ratio} |")
        lines += [""]
    lines += [("After (this tree):" if before_rows else "Every size:"), "",
              "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(cell(row, c)) for c in COLUMNS) + " |")
    for skip in report["skipped"]:
        if skip.get("design", "after") == "after":
            lines.append(f"| {skip['hosts']} | {skip.get('outcome', 'not run')}: {skip['why']} |" + " |" * (len(HEADERS) - 2))
    if before_rows:
        lines += ["", f"Before (`{before['ref']}`):", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        for row in before_rows:
            lines.append("| " + " | ".join(fmt(cell(row, c)) for c in COLUMNS) + " |")
        for skip in report["skipped"]:
            if skip.get("design") == "before":
                lines.append(f"| {skip['hosts']} | {skip.get('outcome', 'not run')}: {skip['why']} |" + " |" * (len(HEADERS) - 2))
    lines += watch_lines(rows)
    limit = report["limit"]
    if limit:
        lines += ["", limit_line(limit)]
    lines += ipam_lines(report)
    return _with_checks(lines, report, "every table converged, every record reached every host with endpoints on "
                        "its network, no address twice", os.path.join(out, "scale.md"))


def watch_lines(rows: list[dict]) -> list[str]:
    """Where the 'ZK watches' column's count comes from, by the kinds of path the hosts' sessions watch.
    ZooKeeper's `mntr` counts a one-shot watch once and a persistent recursive watch (a leaves watch:
    a relay's, or a host's own without one) twice, as a data and a child watch; `wchs` and `wchp`
    list its data watches only, so a host's one-shot child watches show in neither."""
    shown = [row for row in rows if row.get("hosts_watches_by_kind") is not None]
    if not shown:
        return []
    lines = ["", "ZooKeeper's watches (the 'ZK watches' column is `mntr`'s, which counts a leaves watch twice, as "
             "a data and a child watch); those the hosts' own sessions keep, by kind of path (a relay's are "
             "the segments and the live list it follows):", ""]
    for row in shown:
        kinds = row["hosts_watches_by_kind"]
        said = ", ".join(f"{count} {kind}" for kind, count in kinds.items()) or "none"
        lines.append(f"- {row['hosts']} hosts ({cell(row, 'agents')} agents, {row.get('relays') or 0} relays): "
                     f"{row['zk_watches']} in `mntr`; the hosts' sessions: {said}")
    return lines


def limit_line(limit: dict) -> str:
    """The figure that limits growth; with one size run there is no growth to project, only that size."""
    said = f"**Limits growth: {limit['label']}** — {fmt(limit['at_largest'])} at {limit['largest_run']} hosts"
    if limit["growth_exponent"] is None:
        return (f"{said}, the only size run, so no growth is measured (goal: {limit['goal']}; "
                f"{fmt(limit['over_goal'])}x the goal at that size).")
    return (f"{said}, growing as hosts^{fmt(limit['growth_exponent'])}; projected at {GOAL_HOSTS:,} hosts: "
            f"{fmt(limit['projected_at_1000'])} (goal: {limit['goal']}; {fmt(limit['over_goal'])}x the goal).")


def ipam_lines(report: dict) -> list[str]:
    """The IPAM section: one /16, hosts allocating at once, before and after; empty against 99% full."""
    before = report.get("before")
    ipam = report["ipam"]
    c = ipam["contention"]
    fullness = {float(f): r for f, r in ipam["by_fullness"].items()}  # (keys are strings once read from JSON)
    empty, full = fullness[0.0], fullness[0.99]
    return ["", "IPAM, one /16 pool, hosts allocating at once (each the real IPAM driver with its own session):", "",
            "| run | hosts | allocations | allocations/s | p50 (ms) | p99 (ms) | duplicates |", "|---|---|---|---|---|---|---|",
            f"| empty pool | {c['hosts']} | {c['allocations']} | {c['per_s']:.0f} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f} | {len(c['duplicates'])} |",
            *([f"| empty pool, before (`{before['ref']}`) | {b['hosts']} | "
               f"{b['allocations']} | {b['per_s']:.0f} | {b['p50_ms']:.1f} | {b['p99_ms']:.1f} | {len(b['duplicates'])} |"]
              if (b := ipam.get("contention_before")) else []),
            f"| empty /16 | {empty['hosts']} | {empty['allocations']} | {empty['per_s']:.0f} | {empty['p50_ms']:.1f} | {empty['p99_ms']:.1f} | {len(empty['duplicates'])} |",
            f"| 99% full /16 | {full['hosts']} | {full['allocations']} | {full['per_s']:.0f} | {full['p50_ms']:.1f} | {full['p99_ms']:.1f} | {len(full['duplicates'])} |",
            "", f"99% full over empty, p50: {ipam['full_over_empty_p50']:.2f}x."]


def write_ipam(report: dict, out: str) -> str:
    """Write scale-ipam.md for a run of the IPAM part alone (`scale --ipam-only`); answer the markdown.
    scale.md, the hosts' report, is left as it is: its IPAM section is then the older of the two."""
    s = report["sustained"]
    lines = [f"# The IPAM under contention, by simulation ({report['when']})", "",
             "Each host is the real IPAM driver (`AcsnetIpam`) with its own ZooKeeper session, the hosts spread over "
             f"{report['layout']['processes']} processes on this machine; a ZooKeeper ensemble of three on loopback "
             f"(it sustains {s['reads_per_s']:.0f} reads/s, {s['writes_per_s']:.0f} writes/s here). Load average at "
             f"the end: {report['load_average'][0]:.1f} on {report.get('cpus', '?')} cores"
             + (f", shared with {report['shared_with']}" if report.get("shared_with") else "") + "."]
    before = report.get("before")
    if before:
        lines += ["", f"Before is git ref `{before['ref']}` (commit {before['commit'][:12]}): "
                      f"{before.get('says') or 'the IPAM of that commit'}. Both ran in this run, on the same ensemble."]
    lines += ipam_lines(report)
    return _with_checks(lines, report, "every allocation granted, no address twice, the store's records are the "
                        "addresses handed out", os.path.join(out, "scale-ipam.md"))


def _with_checks(lines: list[str], report: dict, passed_says: str, path: str) -> str:
    """The report's last lines, its checks and before's own failures, written to `path`; answers the text."""
    failed = report["checks_failed"]
    lines = lines + ["", "Checks: " + (f"all passed ({passed_says})" if not failed else "FAILED: " + "; ".join(failed))]
    if report.get("before_failures"):
        lines += ["", "Before's own failures (findings of the comparison, not failed checks): " + "; ".join(report["before_failures"])]
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Write a run's report again from its scale.json (charts, table, words), with what it differs in said."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("json", help="a run's scale.json; the report goes beside it")
    parser.add_argument("--before-says", help="what before and after differ in (one sentence)")
    parser.add_argument("--shared-with", help="what else ran on the machine, e.g. four other helpers' labs and tests")
    args = parser.parse_args(argv)
    with open(args.json) as f:
        report = json.load(f)
    if args.before_says and report.get("before"):
        report["before"]["says"] = args.before_says
    if args.shared_with:
        report["shared_with"] = args.shared_with
    print(write(report, os.path.dirname(os.path.abspath(args.json))))
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
