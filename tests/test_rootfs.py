"""acsnet.rootfs on the real debootstrap and Debian mirror: a root filesystem is built from nothing,
reused, and refused clearly for bad input."""

from __future__ import annotations

import os
import subprocess

import pytest

from acsnet import rootfs


def test_builds_a_root_filesystem_once_and_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ACSNET_CACHE", str(tmp_path))
    path = rootfs.build_rootfs("trixie", ["busybox"])
    assert path.startswith(str(tmp_path)) and rootfs.is_built(path)
    # Debian 13's own glibc, and the package asked for, inside the root
    libc = subprocess.run(["chroot", path, "/usr/bin/ldd", "--version"], capture_output=True, text=True)
    assert libc.stdout.splitlines()[0].endswith(" 2.41"), libc.stdout  # Debian 12 has 2.36
    assert os.path.exists(os.path.join(path, "bin", "busybox"))
    stamp = os.stat(os.path.join(path, rootfs.COMPLETE)).st_mtime
    assert rootfs.build_rootfs("trixie", ["busybox"]) == path
    assert os.stat(os.path.join(path, rootfs.COMPLETE)).st_mtime == stamp
    # nothing half-built left beside it
    assert sorted(os.listdir(os.path.join(str(tmp_path), "rootfs"))) == [os.path.basename(path)]


@pytest.mark.parametrize("suite,packages,message", [
    ("sid", [], "unknown Debian suite 'sid'"),
    ("trixie", ["busybox; rm -rf /"], "not a Debian package name"),
    ("trixie", ["-x"], "not a Debian package name"),
])
def test_bad_input_is_refused_before_anything_runs(tmp_path, monkeypatch, suite, packages, message):
    monkeypatch.setenv("ACSNET_CACHE", str(tmp_path))
    with pytest.raises(rootfs.RootfsError, match=message):
        rootfs.build_rootfs(suite, packages)
    assert not os.path.exists(os.path.join(str(tmp_path), "rootfs"))


def test_a_failed_build_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ACSNET_CACHE", str(tmp_path))
    with pytest.raises(rootfs.RootfsError, match="debootstrap trixie failed"):
        rootfs.build_rootfs("trixie", ["no-such-package-acsnet"])
    assert os.listdir(os.path.join(str(tmp_path), "rootfs")) == []
