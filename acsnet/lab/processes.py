"""Processes and cgroups of the lab's nodes, found through /proc (they may outlive the run that started them)."""

from __future__ import annotations

import errno
import os


def cgroup_roots() -> list[str]:
    """Every cgroup hierarchy mounted on this machine (v1 controllers and the v2 tree)."""
    roots = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if right.split()[0] in ("cgroup", "cgroup2"):
                roots.append(left.split()[4])
    return roots


def cgroup_pids(top: str) -> set[int]:
    """The pids in cgroup `top` and every cgroup below it. A cgroup removed while this walks (its
    container exited) has no tasks left, so it is skipped, not an error: its file is gone (ENOENT) or,
    on a cgroup v1 hierarchy, still listed but reads as ENODEV (seen once in CI, powering a host off)."""
    pids = set()
    for directory, _subdirs, files in os.walk(top):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(directory, "cgroup.procs")) as f:
                    pids.update(int(p) for p in f.read().split())
            except OSError as error:
                if error.errno not in (errno.ENOENT, errno.ENODEV):
                    raise
    return pids


def kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def argv_of(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def cmdline_of(pid: int) -> str:
    return " ".join(argv_of(pid))


def command_name(pid: int) -> str:
    words = [os.path.basename(a) for a in argv_of(pid)]
    if words and words[0].startswith("python") and len(words) > 2 and words[1] == "-m":
        if words[2] == "acsnet.lab.holder":
            return "holder"
        return " ".join(["acsnet"] + words[3:5])  # e.g. "acsnet serve ipam"
    if words and words[0] == "java":
        return "zookeeper"
    return words[0] if words else ""
