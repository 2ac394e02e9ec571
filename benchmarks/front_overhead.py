"""acsnet front's overhead: median `docker ps` and `docker run --rm` through the front against straight to
dockerd, interleaved in one run on a lab host (target: under 1.05x).

    python -m acsnet.benchmarks.front_overhead [--runs 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from acsnet.benchmarks.standalone import run_on_a_lab
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.topology import DOCKER_CLI, Lab

FRONT = "unix:///run/acsnet/docker.sock"


def timed(lab: Lab, host: str, via_front: bool, *args: str) -> float:
    env = {**os.environ, "DOCKER_HOST": FRONT if via_front else "unix:///run/docker.sock"}
    started = time.monotonic()
    lab.node(host).run([DOCKER_CLI, *args], env=env)
    return time.monotonic() - started


def measure(lab: Lab, runs: int) -> dict:
    """Median seconds of each command straight to dockerd and through the front, and their ratio."""
    results: dict[str, dict[str, list[float]]] = {"docker ps": {"dockerd": [], "front": []},
                                                  "docker run --rm": {"dockerd": [], "front": []}}
    node = lab.node("h1")
    front = node.popen([sys.executable, "-m", "acsnet.cli", "front", "--listen", FRONT, "--docker", "unix:///run/docker.sock"],
                       os.path.join(node.workdir, "front.log"))
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(f"/proc/{front.pid}") or node.run([DOCKER_CLI, "-H", FRONT, "version"], check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("the front did not answer")
            time.sleep(0.2)
        for n in range(runs):
            for via in ((False, True) if n % 2 == 0 else (True, False)):  # alternate who goes first
                key = "front" if via else "dockerd"
                results["docker ps"][key].append(timed(lab, "h1", via, "ps"))
                results["docker run --rm"][key].append(timed(lab, "h1", via, "run", "--rm", "--net", "none", IMAGE, "true"))
    finally:
        front.terminate()
    report: dict = {"runs": runs}
    for command, by in results.items():
        direct, fronted = statistics.median(by["dockerd"]), statistics.median(by["front"])
        report[command] = {"dockerd": direct, "front": fronted, "ratio": fronted / direct}
    return report


def markdown(report: dict) -> str:
    lines = [f"acsnet front overhead, {report['runs']} interleaved runs each (median seconds):",
             "| command | dockerd | front | front / dockerd |", "|---|---|---|---|"]
    for command in ("docker ps", "docker run --rm"):
        row = report[command]
        lines.append(f"| {command} | {row['dockerd']:.3f} | {row['front']:.3f} | {row['ratio']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--workdir", default="/var/lib/acsnet/front-lab")
    args = parser.parse_args(argv)
    return run_on_a_lab(args.workdir, "acsnet-f", 1, lambda lab, _steps: measure(lab, args.runs), markdown, args.json)


if __name__ == "__main__":
    sys.exit(main())
