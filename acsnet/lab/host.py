"""A simulated host: a named network namespace plus a holder process for its mount and UTS namespaces
(see `acsnet.lab.holder`). Commands run inside with nsenter; everything is found again, and removed,
by the names and pids it was made with.

A host runs one of two operating systems (`HOST_OSES`): this machine's own programs, or a Debian 13
root filesystem (acsnet.rootfs), so its dockerd, containerd, runc and Open vSwitch are Debian 13's,
as on a real Debian 13 host (OVS 3.5 needs glibc 2.38, so it cannot run from this Debian 12 machine's
root). Such a host's mount namespace has an overlay over the cached root filesystem as its root (see
holder.py); `run_in_os` runs a command there. Everything else —
the acsnet plugins, host-setup, the tests' probes — keeps running from this machine and reaches the
host's programs through what both see: the host's network namespace and its /run (OVS's run dir,
dockerd's socket and plugin folder)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from acsnet.errors import AcsnetError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,14}$")  # fits a hostname and an interface-name prefix
NETNS_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class LabError(AcsnetError):
    """A lab step failed; the message says what and what to do."""


def wait_until_up(ready: Callable[[], bool], what: str, *, timeout: float, see: str,
                  processes: Iterable[subprocess.Popen] = (), interval: float = 0.2) -> None:
    """Return once `ready()` holds: a service the lab started answers. A LabError naming `what` and
    where to look (`see`) if one of `processes` (the service's) exits first, or at `timeout`: a
    service that died would otherwise be waited on to the end."""
    deadline = time.monotonic() + timeout
    while not ready():
        for process in processes:
            if process.poll() is not None:
                raise LabError(f"{what} exited with {process.returncode}; see {see}")
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not come up within {timeout:g}s; see {see}")
        time.sleep(interval)


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


@dataclass(frozen=True)
class HostOS:
    """What a lab host runs its dockerd, containerd, runc and OVS from."""

    name: str
    description: str
    suite: str | None = None  # a Debian suite debootstrapped for it; None: this machine's own programs
    packages: tuple[str, ...] = ()
    engines: tuple[str, ...] = ("20.10", "26")  # the Docker Engines it can run

    def root(self) -> str | None:
        """The cached root filesystem (built on first use, ~30 s), or None for this machine's own."""
        if self.suite is None:
            return None
        from acsnet.rootfs import RootfsError, build_rootfs
        try:
            return build_rootfs(self.suite, self.packages)
        except RootfsError as e:
            raise LabError(f"the {self.name} root filesystem could not be built: {e}") from None


HOST_OSES = {
    "machine": HostOS("machine", "this machine's own programs (Debian 12: OVS 3.1; dockerd 20.10, or 26 from .cache/trixie)"),
    # Debian 13 as installed on a host: docker.io 26.1.5 with its docker-cli, containerd, runc and tini
    # (docker-init), and Open vSwitch 3.5. Its docker.io is dockerd 26, so no cluster store.
    "debian13": HostOS("debian13", "a Debian 13 root filesystem (dockerd 26.1.5, containerd 1.7, runc 1.1, OVS 3.5)",
                       "trixie", ("docker.io", "docker-cli", "containerd", "runc", "tini", "openvswitch-switch",
                                  "iproute2", "iptables", "procps"), engines=("26",)),
}
DEFAULT_HOST_OS = "machine"
OS_ROOT_FILE = "os-root"  # in a host's workdir: the root filesystem it runs from, for `attach`


def host_os(name: str) -> HostOS:
    try:
        return HOST_OSES[name]
    except KeyError:
        raise LabError(f"unknown host OS {name!r}: one of {', '.join(HOST_OSES)}") from None


class SimulatedHost:
    def __init__(self, name: str, netns: str, workdir: str, os_root: str | None = None):
        if not NAME_PATTERN.match(name):
            raise LabError(f"bad host name {name!r}: lower-case letters, digits and '-', at most 15")
        if not NETNS_PATTERN.match(netns):
            raise LabError(f"bad network namespace name {netns!r}")
        self.name = name
        self.netns = netns
        self.workdir = workdir
        self.os_root = os_root  # a root filesystem its OS runs from; None: this machine's own
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
        os_root_file = os.path.join(self.workdir, OS_ROOT_FILE)
        if self.os_root:
            with open(os_root_file, "w") as f:
                f.write(self.os_root)
        elif os.path.exists(os_root_file):
            os.unlink(os_root_file)
        run(["ip", "netns", "add", self.netns])
        log = open(os.path.join(self.workdir, "holder.log"), "ab")
        subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--mount", "--uts", "--propagation", "private",
             sys.executable, "-m", "acsnet.lab.holder", self.name, self._ready_file,
             *([self.os_root, os.path.abspath(self.workdir)] if self.os_root else [])],
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
        try:
            with open(os.path.join(workdir, OS_ROOT_FILE)) as f:
                os_root = f.read().strip() or None
        except OSError:
            os_root = None
        host = cls(name, netns, workdir, os_root)
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
        # -r, -w: the holder's root and folder, which are this machine's even on a host with its own OS (see holder.py)
        return ["nsenter", "-t", str(self.holder_pid), "-m", "-u", "-n", *(["-r", "-w"] if self.os_root else []), "--", *argv]

    def run(self, argv: list[str], *, timeout: float = 60, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return run(self.command(argv), timeout=timeout, check=check, **kwargs)

    def popen(self, argv: list[str], log_path: str, env: dict | None = None) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            return subprocess.Popen(self.command(argv), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env)

    def command_in_os(self, argv: list[str]) -> list[str]:
        """`argv` run from the host's own OS (its root filesystem), as `command` is from this machine's."""
        if self.holder_pid is None:
            raise LabError(f"host {self.name} is not running")
        return ["nsenter", "-t", str(self.holder_pid), "-m", "-u", "-n", "--", *argv]

    def run_in_os(self, argv: list[str], *, timeout: float = 60, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return run(self.command_in_os(argv), timeout=timeout, check=check, **kwargs)

    def popen_in_os(self, argv: list[str], log_path: str, env: dict | None = None) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            return subprocess.Popen(self.command_in_os(argv), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env)

    def has_in_os(self, path: str) -> bool:
        """Whether the host's OS has `path` (an absolute path inside it)."""
        return os.path.exists(self.os_root + path if self.os_root else path)

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
