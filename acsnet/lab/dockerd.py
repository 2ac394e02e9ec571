"""Run a real dockerd inside a simulated host, and give it a busybox image.

Two engines: "20.10" is Debian 12's docker.io, installed on the machine; "26" is Debian 13's docker.io
and docker-cli (26.1), which `.ci/install` unpacks under .cache/trixie/ (never into the system) and
which run from there with Debian 12's containerd, runc and tini (docker-init). On a host that runs
from a Debian 13 root filesystem (`--host-os debian13`), dockerd 26 and everything it starts are that
root's own (`OS_ENGINE`), as Debian 13 installs them. Inside a host, /run is private, so dockerd
and the docker CLI use their default socket (/run/docker.sock) and dockerd finds the host's plugins in
its own /run/docker/plugins.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
from dataclasses import dataclass

from acsnet.lab.host import REPO, LabError, SimulatedHost, stop_process_group, wait_until_up

BUSYBOX = "/bin/busybox"
IMAGE = "acsnet/busybox:latest"
CONTAINERD_PID = "/run/docker/containerd/containerd.pid"
# The CLI that comes with Debian's dockerd 20.10 (a newer CLI may stand earlier on PATH and ask for
# API features the daemon lacks).
DOCKER_CLI = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
TRIXIE = os.path.join(REPO, ".cache", "trixie")


@dataclass(frozen=True)
class Engine:
    """A Docker Engine the lab can run: its dockerd, the docker CLI that matches it, its docker-proxy."""

    name: str
    dockerd: str
    docker: str
    proxy: str
    install: str  # what to do when it is missing

    def missing(self, root: str = "") -> list[str]:
        """Its programs that are not there (in the root filesystem `root`, else on this machine)."""
        return [path for path in (self.dockerd, self.docker, self.proxy) if not os.access(root + path, os.X_OK)]

    def check(self, root: str = "") -> "Engine":
        missing = self.missing(root)
        if missing:
            raise LabError(f"Docker {self.name} is missing ({', '.join(missing)}): {self.install}")
        return self


DOCKERD = "/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else shutil.which("dockerd") or "dockerd"
ENGINES = {
    "20.10": Engine("20.10", DOCKERD, DOCKER_CLI, "/usr/sbin/docker-proxy", "apt-get install docker.io (or run .ci/install)"),
    # No cluster store (Docker 23.0 removed --cluster-store): networks are local scope only, or swarm.
    "26": Engine("26", os.path.join(TRIXIE, "docker.io/usr/sbin/dockerd"), os.path.join(TRIXIE, "docker-cli/usr/bin/docker"),
                 os.path.join(TRIXIE, "docker.io/usr/sbin/docker-proxy"),
                 "run .ci/install (it unpacks Debian 13's docker.io and docker-cli under .cache/trixie/)"),
}
DEFAULT_ENGINE = "20.10"
# Docker as Debian installs it, in a host's own root filesystem (Debian 13's docker.io is 26.1).
OS_ENGINE = Engine("26", "/usr/sbin/dockerd", "/usr/bin/docker", "/usr/sbin/docker-proxy",
                   "the host's root filesystem lacks docker.io or docker-cli: delete it under .cache/rootfs to rebuild it")


def engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise LabError(f"unknown Docker engine {name!r}: one of {', '.join(ENGINES)}") from None


def busybox_tar(path: str) -> str:
    """A root filesystem holding only busybox-static and a link per applet."""
    if os.path.exists(path):
        return path
    if not os.path.exists(BUSYBOX):
        raise LabError("busybox-static is not installed: apt-get install busybox-static")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True, timeout=30).stdout.split()
    partial = path + ".partial"
    with tarfile.open(partial, "w") as tar:
        for directory in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, "bin/busybox")
        for applet in applets:
            if applet != "busybox":
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
    os.replace(partial, path)
    return path


class DockerDaemon:
    def __init__(self, host: SimulatedHost, data_root: str, *, extra_args: list[str] | None = None,
                 engine: str = DEFAULT_ENGINE):
        # A host with its own OS runs that OS's Docker (the lab checks that it is `engine`).
        self.engine = OS_ENGINE if host.os_root else ENGINES[engine]
        self.host = host
        self.data_root = data_root
        self.extra_args = extra_args or []
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(host.workdir, "dockerd.log")

    def argv(self) -> list[str]:
        return [
            self.engine.dockerd,
            "--data-root", self.data_root,
            "--exec-root", "/run/docker",
            "--host", "unix:///run/docker.sock",
            "--pidfile", "/run/docker.pid",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver", "overlay2",
            "--userland-proxy-path", self.engine.proxy,
            *self.extra_args,
        ]

    def start(self, wait: float = 60.0) -> "DockerDaemon":
        self.engine.check(self.host.os_root or "")
        # A crashed dockerd leaves containerd's pid file, and the next dockerd then waits for a
        # containerd that is not there.
        self.host.run(["rm", "-f", CONTAINERD_PID])
        self.process = self.host.popen_in_os(self.argv(), self.log_path)
        wait_until_up(lambda: self.docker("version", check=False, timeout=10).returncode == 0,
                      f"dockerd on {self.host.name}", timeout=wait, see=self.log_path, processes=[self.process])
        return self

    def stop(self, sig: int = signal.SIGTERM, wait: float = 60.0) -> None:
        """SIGTERM is a graceful shutdown (dockerd stops its containers); SIGKILL simulates a crash."""
        stop_process_group(self.process, sig, wait)

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.host.run_in_os([self.engine.docker, *args], check=check, timeout=timeout)

    def import_busybox(self, tar_path: str) -> str:
        if self.docker("image", "inspect", IMAGE, check=False).returncode != 0:
            with open(busybox_tar(tar_path), "rb") as tar:  # on stdin: the tar need not be inside the host's root
                self.host.run_in_os([self.engine.docker, "import", "--change", 'CMD ["/bin/sh"]', "-", IMAGE],
                                    stdin=tar, timeout=120)
        return IMAGE
