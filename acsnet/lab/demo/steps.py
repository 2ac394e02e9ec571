"""What every demo scenario is made of: steps printed as they pass or fail, and the few docker calls
they share."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from acsnet.lab.topology import Lab


class StepFailed(AssertionError):
    pass


class DemoRun:
    def __init__(self, out: Callable[[str], None] = print):
        self.out = out
        self.results: list[tuple[str, str, bool, str]] = []
        self.scenario = ""

    def begin(self, scenario: str) -> None:
        self.scenario = scenario
        self.out(f"\n== {scenario}")

    def step(self, description: str, action: Callable[[], str | None]) -> bool:
        started = time.monotonic()
        try:
            detail = action() or ""
            ok = True
        except Exception as e:  # a failed step is reported, and the demo goes on to the next one
            detail, ok = f"{type(e).__name__}: {e}", False
        self.record(description, ok, detail, time.monotonic() - started)
        return ok

    def record(self, description: str, ok: bool, detail: str, took: float = 0.0) -> None:
        self.out(f"  [{'PASS' if ok else 'FAIL'}] {description} ({took:.1f}s){': ' + detail if detail else ''}")
        self.results.append((self.scenario, description, ok, detail))

    def prepare(self, clean: Callable[[], None]) -> None:
        """Remove what an earlier run may have left (one killed halfway); print nothing unless that fails."""
        started = time.monotonic()
        try:
            clean()
        except Exception as e:
            self.record("remove what an earlier run left", False, f"{type(e).__name__}: {e}", time.monotonic() - started)

    def summary(self) -> bool:
        passed = sum(1 for r in self.results if r[2])
        failed = [r for r in self.results if not r[2]]
        self.out("")
        for scenario, description, _, detail in failed:
            self.out(f"FAILED: {scenario}: {description}: {detail}")
        verdict = "PASS" if not failed else "FAIL"
        self.out(f"{verdict}: {passed} passed, {len(failed)} failed")
        return not failed


def check(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def docker(lab: Lab, host: str, *args: str, check_ok: bool = True):
    result = lab.docker(host, *args, check=False)
    if check_ok and result.returncode != 0:
        raise StepFailed(f"on {host}: docker {' '.join(args)}: {result.stderr.strip()}")
    return result


def container_ip(lab: Lab, host: str, name: str, network: str) -> str:
    info = json.loads(docker(lab, host, "inspect", name).stdout)[0]
    return info["NetworkSettings"]["Networks"][network]["IPAddress"]


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Return once `condition()` holds; fail the step naming `what` if it has not within `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise StepFailed(f"{what} (waited {timeout:g}s)")
        time.sleep(interval)


def ping_from(lab: Lab, host: str, container: str, address: str, wait: float = 10.0) -> bool:
    deadline = time.monotonic() + wait
    while lab.docker(host, "exec", container, "ping", "-c", "1", "-W", "1", address, check=False).returncode != 0:
        if time.monotonic() > deadline:
            return False
    return True


def remove_scenario(lab: Lab, containers: dict[str, list[str]], networks: list[str]) -> None:
    """What a scenario made (containers by host, networks on each of those hosts), if it is there; the
    hosts at once (each has its own dockerd), which takes a few seconds off every scenario."""
    def remove_from(host: str) -> None:
        docker(lab, host, "rm", "-f", *containers[host], check_ok=False)
        if networks:
            docker(lab, host, "network", "rm", *networks, check_ok=False)

    with ThreadPoolExecutor(max_workers=len(containers) or 1) as pool:
        list(pool.map(remove_from, containers))
