"""A simulated host: a named network namespace plus a holder process for its mount and UTS namespaces
(see `acsnet.lab.holder`). Commands run inside with nsenter; everything is found again, and removed,
by the names and pids it was made with."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from acsnet.errors import AcsnetError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,14}$")  # fits a hostname and an interface-name prefix
NETNS_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class LabError(AcsnetError):
    """A lab step failed; the message says what and what to do."""


def run(argv: list[str], *, timeout: float = 60, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({result.returncode}): {(result.stderr or result.stdout).strip()}")
    return result


def stop_process_group(process: subprocess.Popen | None, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
    """Signal a child started with start_new_session=True and everything in its group; KILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def netns_exists(netns: str) -> bool:
    return os.path.exists(f"/run/netns/{netns}")


def processes_in_netns(netns: str) -> list[int]:
    """Pids whose network namespace is `netns` (what must die before the host is gone)."""
    try:
        target = os.stat(f"/run/netns/{netns}")
    except FileNotFoundError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            pids.append(int(entry))
    return pids


class SimulatedHost:
    def __init__(self, name: str, netns: str, workdir: str):
        if not NAME_PATTERN.match(name):
            raise LabError(f"bad host name {name!r}: lower-case letters, digits and '-', at most 15")
        if not NETNS_PATTERN.match(netns):
            raise LabError(f"bad network namespace name {netns!r}")
        self.name = name
        self.netns = netns
        self.workdir = workdir
        self.holder_pid: int | None = None

    @property
    def _ready_file(self) -> str:
        return os.path.join(self.workdir, "holder.pid")

    def start(self, wait: float = 30.0) -> "SimulatedHost":
        if netns_exists(self.netns):
            raise LabError(f"network namespace {self.netns} exists already: run 'acsnet lab down' or remove it")
        os.makedirs(self.workdir, exist_ok=True)
        if os.path.exists(self._ready_file):
            os.unlink(self._ready_file)
        run(["ip", "netns", "add", self.netns])
        log = open(os.path.join(self.workdir, "holder.log"), "ab")
        subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--mount", "--uts", "--propagation", "private",
             sys.executable, "-m", "acsnet.lab.holder", self.name, self._ready_file],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + wait
        while not os.path.exists(self._ready_file) or not open(self._ready_file).read().strip():
            if time.monotonic() > deadline:
                raise LabError(f"host {self.name} did not come up; see {self.workdir}/holder.log")
            time.sleep(0.05)
        self.holder_pid = int(open(self._ready_file).read())
        return self

    @classmethod
    def attach(cls, name: str, netns: str, workdir: str) -> "SimulatedHost":
        """The host as a previous process left it (for `lab exec` and `lab down`)."""
        host = cls(name, netns, workdir)
        try:
            pid = int(open(host._ready_file).read())
            os.kill(pid, 0)
            host.holder_pid = pid
        except (OSError, ValueError):
            host.holder_pid = None
        return host

    @property
    def running(self) -> bool:
        return self.holder_pid is not None and netns_exists(self.netns)

    def command(self, argv: list[str]) -> list[str]:
        if self.holder_pid is None:
            raise LabError(f"host {self.name} is not running")
        return ["nsenter", "-t", str(self.holder_pid), "-m", "-u", "-n", "--", *argv]

    def run(self, argv: list[str], *, timeout: float = 60, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return run(self.command(argv), timeout=timeout, check=check, **kwargs)

    def popen(self, argv: list[str], log_path: str, env: dict | None = None) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            return subprocess.Popen(self.command(argv), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env)

    def stop(self, grace: float = 10.0) -> None:
        """Kill every process in the host (TERM, then KILL), then remove its namespace."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = processes_in_netns(self.netns)
            if self.holder_pid:
                pids.append(self.holder_pid)
            for pid in set(pids):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while any(_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
        if netns_exists(self.netns):
            run(["ip", "netns", "del", self.netns], check=False)
        self.holder_pid = None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
