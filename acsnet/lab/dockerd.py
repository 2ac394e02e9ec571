"""Run a real dockerd (Debian's docker.io, 20.10) inside a simulated host, and give it a busybox image.

Inside a host, /run is private, so dockerd and the docker CLI use their default socket
(/run/docker.sock) and dockerd finds the host's plugins in its own /run/docker/plugins.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import time

from acsnet.lab.host import LabError, SimulatedHost, stop_process_group

BUSYBOX = "/bin/busybox"
IMAGE = "acsnet/busybox:latest"
CONTAINERD_PID = "/run/docker/containerd/containerd.pid"
# The CLI that comes with Debian's dockerd 20.10 (a newer CLI may stand earlier on PATH and ask for
# API features the daemon lacks).
DOCKER_CLI = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"


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
    def __init__(self, host: SimulatedHost, data_root: str, *, extra_args: list[str] | None = None):
        self.host = host
        self.data_root = data_root
        self.extra_args = extra_args or []
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(host.workdir, "dockerd.log")

    def argv(self) -> list[str]:
        return [
            "dockerd",
            "--data-root", self.data_root,
            "--exec-root", "/run/docker",
            "--host", "unix:///run/docker.sock",
            "--pidfile", "/run/docker.pid",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver", "overlay2",
            *self.extra_args,
        ]

    def start(self, wait: float = 60.0) -> "DockerDaemon":
        if shutil.which("dockerd") is None:
            raise LabError("dockerd is not installed: apt-get install docker.io")
        # A crashed dockerd leaves containerd's pid file, and the next dockerd then waits for a
        # containerd that is not there.
        self.host.run(["rm", "-f", CONTAINERD_PID])
        self.process = self.host.popen(self.argv(), self.log_path)
        deadline = time.monotonic() + wait
        while self.docker("version", check=False, timeout=10).returncode != 0:
            if self.process.poll() is not None:
                raise LabError(f"dockerd on {self.host.name} exited ({self.process.returncode}); see {self.log_path}")
            if time.monotonic() > deadline:
                raise LabError(f"dockerd on {self.host.name} did not answer within {wait:g}s; see {self.log_path}")
            time.sleep(0.2)
        return self

    def stop(self, sig: int = signal.SIGTERM, wait: float = 60.0) -> None:
        """SIGTERM is a graceful shutdown (dockerd stops its containers); SIGKILL simulates a crash."""
        stop_process_group(self.process, sig, wait)

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.host.run([DOCKER_CLI, *args], check=check, timeout=timeout)

    def import_busybox(self, tar_path: str) -> str:
        if self.docker("image", "inspect", IMAGE, check=False).returncode != 0:
            self.docker("import", "--change", 'CMD ["/bin/sh"]', busybox_tar(tar_path), IMAGE)
        return IMAGE
