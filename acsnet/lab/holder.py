"""The long-lived process that holds a simulated host's mount and UTS namespaces.

Started as `nsenter --net=/run/netns/NS unshare --mount --uts --propagation private python -m
acsnet.lab.holder HOSTNAME READY_FILE [OS_ROOT WORKDIR]`. It gives the host what dockerd and OVS expect of a machine:
- a sysfs of its own network namespace (so /sys/class/net lists the host's own devices),
- the same cgroup hierarchies as the real machine (dockerd needs them; a plain `ip netns exec`
  leaves /sys/fs/cgroup empty),
- a private tmpfs on /run, so /run/docker/plugins, /run/docker.sock and /run/openvswitch are the
  host's own at their default paths: plugins, dockerd, the docker CLI and OVS need no special flags.
With OS_ROOT (a root filesystem: the host's own OS, `--host-os debian13`), the host's mount namespace
gets that OS as its root: a writable overlay over OS_ROOT (written to under WORKDIR), pivoted to, with
this machine's root kept below /.machine and the host's /proc, /sys, /dev and /run bound in (/run shared
both ways, so a mount dockerd makes there is seen from either side), WORKDIR at its own path. A process
entering the namespace starts in that OS, as on a real host; the holder itself moves into /.machine, so
`nsenter -r` (the holder's root) runs this machine's programs with the host's /run, /proc and /sys.
The container runtime needs the namespace's own root to be the OS (runc's pivot_root inside a mere
chroot leaves a container's processes on the wrong root).
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


MACHINE = "/.machine"  # where a host with its own OS keeps this machine's root


def enter_os_root(os_root: str, workdir: str) -> None:
    """Make the overlay over `os_root` this mount namespace's root (see the module's docstring)."""
    os_dir = os.path.join(workdir, "os")
    root = os.path.join(os_dir, "root")
    for directory in ("root", "upper", "work"):
        os.makedirs(os.path.join(os_dir, directory), exist_ok=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={os_root},upperdir={os_dir}/upper,workdir={os_dir}/work", root], check=True, timeout=30)
    os.makedirs(root + MACHINE, exist_ok=True)
    subprocess.run(["pivot_root", root, root + MACHINE], check=True, timeout=30)
    os.chdir("/")
    subprocess.run(["mount", "--make-rshared", MACHINE + "/run"], check=True, timeout=30)
    for directory in ("/proc", "/sys", "/dev", "/run"):
        subprocess.run(["mount", "--rbind", MACHINE + directory, directory], check=True, timeout=30)
    os.makedirs(workdir, exist_ok=True)
    subprocess.run(["mount", "--bind", MACHINE + workdir, workdir], check=True, timeout=30)
    os.chroot(MACHINE)
    os.chdir("/")


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
    if len(sys.argv) > 4:
        enter_os_root(sys.argv[3], sys.argv[4])
    with open(ready_file, "w") as f:
        f.write(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
