"""Debian root filesystems made with debootstrap, cached on this machine.

Two things are built from one: the lab's Debian 13 hosts (dockerd, containerd and Open vSwitch 3.5 as a
Debian 13 host has them; OVS 3.5 needs glibc 2.38, so it cannot run from this Debian 12 machine's own
root) and the managed plugins' root filesystem (`acsnet plugin build`). Both come from Debian's own
packages through debootstrap and a Debian mirror — no registry, no image from the internet.

A root filesystem is named by its suite and its package list; it is built once into a temporary folder
and renamed into place when complete, so a build cut short is never taken for a finished one. Delete
the folder (or pass `rebuild=True`) to build it again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

from acsnet.errors import AcsnetError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
COMPLETE = ".acsnet-rootfs-complete"  # written last, inside the root: the build finished
SUITES = ("bookworm", "trixie")


class RootfsError(AcsnetError):
    """A root filesystem could not be built; the message says what and what to do."""


def cache_dir() -> str:
    """Where root filesystems are kept: $ACSNET_CACHE, else the checkout's .cache/ (git-ignored), else
    /var/cache/acsnet for an installed package."""
    explicit = os.environ.get("ACSNET_CACHE")
    if explicit:
        return os.path.join(explicit, "rootfs")
    if os.path.isdir(os.path.join(REPO, ".git")) or os.path.isfile(os.path.join(REPO, "pyproject.toml")):
        return os.path.join(REPO, ".cache", "rootfs")
    return "/var/cache/acsnet/rootfs"


def rootfs_name(suite: str, packages: list[str] | tuple[str, ...]) -> str:
    digest = hashlib.sha256(" ".join(sorted(set(packages))).encode()).hexdigest()[:12]
    return f"{suite}-{digest}"


def rootfs_path(suite: str, packages: list[str] | tuple[str, ...]) -> str:
    return os.path.join(cache_dir(), rootfs_name(suite, packages))


def is_built(path: str) -> bool:
    return os.path.isfile(os.path.join(path, COMPLETE))


def build_rootfs(suite: str, packages: list[str] | tuple[str, ...] = (), *, rebuild: bool = False,
                 mirror: str = MIRROR, timeout: float = 1800) -> str:
    """A Debian `suite` root filesystem (debootstrap's minbase) with `packages` installed; returns its
    path. Built once and reused; `rebuild` builds it anew."""
    if suite not in SUITES:
        raise RootfsError(f"unknown Debian suite {suite!r}: one of {', '.join(SUITES)}")
    for package in packages:
        if not package or not all(c.isalnum() or c in ".+-" for c in package) or not package[0].isalnum():
            raise RootfsError(f"not a Debian package name: {package!r}")
    path = rootfs_path(suite, packages)
    if is_built(path) and not rebuild:
        return path
    if shutil.which("debootstrap") is None:
        raise RootfsError("debootstrap is not installed: apt-get install debootstrap (run .ci/install)")
    if not os.path.exists(KEYRING):
        raise RootfsError(f"{KEYRING} is missing: apt-get install debian-archive-keyring")
    os.makedirs(cache_dir(), exist_ok=True)
    building = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", dir=cache_dir())
    try:
        argv = ["debootstrap", "--variant=minbase", f"--keyring={KEYRING}"]
        if packages:
            argv.append("--include=" + ",".join(sorted(set(packages))))
        argv += [suite, building, mirror]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RootfsError(f"debootstrap {suite} took more than {timeout:.0f} s (is {mirror} reachable?)") from None
        if result.returncode != 0:
            log = os.path.join(building, "debootstrap", "debootstrap.log")
            detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise RootfsError(f"debootstrap {suite} failed ({result.returncode}): {' / '.join(detail)}"
                              + (f"; see {log}" if os.path.exists(log) else ""))
        with open(os.path.join(building, COMPLETE), "w") as marker:
            marker.write(" ".join(argv) + "\n")
        if os.path.exists(path):
            shutil.rmtree(path)
        os.rename(building, path)
        building = ""
        return path
    finally:
        if building:
            shutil.rmtree(building, ignore_errors=True)
