"""What a long benchmark says as it goes: each step on stderr as it starts, with the seconds since the
run began and, where the step's length is known beforehand, about how long it takes."""

from __future__ import annotations

import sys
import time


class Steps:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str, estimate: float | None = None) -> None:
        """Also the lab's `progress` (one argument): `lab.up(progress=steps)`."""
        line = f"[{time.monotonic() - self.started:7.1f} s] {message}"
        if estimate is not None:
            line += f" (about {estimate:.0f} s)"
        print(line, file=sys.stderr, flush=True)
