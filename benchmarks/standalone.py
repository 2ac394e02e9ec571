"""What a benchmark run on its own shares: a lab of its own, the measurement, the Markdown printed, the
JSON written, and the lab removed whatever happened."""

from __future__ import annotations

import json
import uuid
from typing import Callable

from acsnet.benchmarks.progress import Steps
from acsnet.lab.topology import Lab


def run_on_a_lab(workdir: str, prefix: str, hosts: int, measure: Callable[[Lab, Steps], dict],
                 markdown: Callable[[dict], str], json_path: str | None) -> int:
    lab = Lab(workdir, f"{prefix}{uuid.uuid4().hex[:4]}")
    steps = Steps()
    try:
        steps(f"building a {hosts}-host lab in {workdir}")
        lab.up(hosts=hosts, progress=steps)
        report = measure(lab, steps)
    finally:
        steps("removing the lab")
        lab.down()
    print(markdown(report))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=2)
    return 0
