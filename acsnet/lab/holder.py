"""The long-lived process that holds a simulated host's mount and UTS namespaces.

Started as `nsenter --net=/run/netns/NS unshare --mount --uts --propagation private python -m
acsnet.lab.holder HOSTNAME READY_FILE`. It gives the host what dockerd and OVS expect of a machine:
- a sysfs of its own network namespace (so /sys/class/net lists the host's own devices),
- the same cgroup hierarchies as the real machine (dockerd needs them; a plain `ip netns exec`
  leaves /sys/fs/cgroup empty),
- a private tmpfs on /run, so /run/docker/plugins, /run/docker.sock and /run/openvswitch are the
  host's own at their default paths: plugins, dockerd, the docker CLI and OVS need no special flags.
Then it writes READY_FILE and sleeps until killed; commands enter the host with `nsenter -t PID -m -u -n`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys


def cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point, filesystem type, options) of the machine's cgroup hierarchies, read before
    sysfs is replaced (they live below /sys)."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fstype, _source, super_options = right.split()[:3]
            point = left.split()[4]
            if fstype in ("cgroup", "cgroup2") and point.startswith("/sys/fs/cgroup"):
                options = [o for o in super_options.split(",") if o not in ("rw", "ro")]
                mounts.append((point, fstype, ",".join(options)))
    return mounts


def mount(fstype: str, target: str, options: str = "") -> None:
    argv = ["mount", "-t", fstype]
    if options:
        argv += ["-o", options]
    subprocess.run(argv + [fstype, target], check=True, timeout=30)


def main() -> None:
    hostname, ready_file = sys.argv[1], sys.argv[2]
    cgroups = cgroup_mounts()
    mount("sysfs", "/sys")
    if cgroups and cgroups[0][0] != "/sys/fs/cgroup":
        mount("tmpfs", "/sys/fs/cgroup", "mode=755")  # a v1 or hybrid layout: a tmpfs holds the hierarchies
    for point, fstype, options in cgroups:
        os.makedirs(point, exist_ok=True)
        if fstype == "cgroup" and options.startswith("name="):
            options = "none," + options
        mount(fstype, point, options if fstype == "cgroup" else "")
    mount("tmpfs", "/run", "mode=755")
    os.makedirs("/run/docker/plugins", exist_ok=True)
    socket.sethostname(hostname)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    with open(ready_file, "w") as f:
        f.write(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
