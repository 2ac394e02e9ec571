"""What a benchmark run on its own shares: a lab of its own, the measurement, the Markdown printed, the
JSON written, and the lab removed whatever happened."""

from __future__ import annotations

import json
import uuid
from typing import Callable

from plugins.lab.topology import Lab


def run_on_a_lab(workdir: str, prefix: str, hosts: int, measure: Callable[[Lab], dict],
                 markdown: Callable[[dict], str], json_path: str | None) -> int:
    lab = Lab(workdir, f"{prefix}{uuid.uuid4().hex[:4]}")
    try:
        lab.up(hosts=hosts)
        report = measure(lab)
    finally:
        lab.down()
    print(markdown(report))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=2)
    return 0
