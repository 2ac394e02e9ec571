"""Run a command inside the sandbox a systemd unit of systemd/ describes, without systemd.

There is no systemd as PID 1 on the test machine, so the settings that decide what a process may
write are reproduced with the kernel's own tools: a mount namespace whose mounts do not propagate back
(systemd turns the unit's root into a slave as soon as it sets any of them), read-only remounts, and a
capability bounding set (`setpriv`). What is reproduced:

    ProtectSystem=strict + ReadWritePaths=   every mount read-only but /dev, /proc, /sys and the listed
                                             paths ("-" ones skipped when they do not exist)
    RuntimeDirectory=, StateDirectory=       made under /run, /var/lib, and writable
    ProtectKernelTunables=yes                /proc/sys and /sys read-only
    ProtectControlGroups=yes                 /sys/fs/cgroup read-only
    ProtectHome=yes | read-only              /home, /root, /run/user inaccessible | read-only
    PrivateTmp=yes                           /tmp and /var/tmp empty
    CapabilityBoundingSet=, AmbientCapabilities=, NoNewPrivileges=   through setpriv

Seccomp filters (RestrictAddressFamilies=, SystemCallArchitectures=, LockPersonality=,
RestrictRealtime=, RestrictSUIDSGID=), ProtectKernelModules= and ProtectClock= are not reproduced:
they forbid system calls the plugins never make, not writes they depend on.

`python -m acsnet.lab.unit_sandbox SPEC -- ARGV...` applies SPEC (JSON of `UnitSandbox`) in the mount
namespace `command()` puts it in (if the unit has one), then executes ARGV.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys

# Settings that give a unit a mount namespace of its own, whose mounts never reach the host's (systemd
# makes its root a slave): a network namespace the process mounts under /run/netns stays its own.
MOUNT_SETTINGS = ("ProtectSystem", "ReadWritePaths", "ProtectKernelTunables", "ProtectControlGroups",
                  "ProtectHome", "PrivateTmp", "ProtectKernelModules")
API_FILESYSTEMS = ("/dev", "/proc", "/sys")


@dataclasses.dataclass(frozen=True)
class UnitSandbox:
    exec_start: tuple[str, ...]
    mount_namespace: bool = False
    protect_system: str = "no"
    read_write_paths: tuple[str, ...] = ()  # "-" prefixed: optional
    runtime_directories: tuple[str, ...] = ()
    state_directories: tuple[str, ...] = ()
    protect_kernel_tunables: bool = False
    protect_control_groups: bool = False
    protect_home: str = "no"
    private_tmp: bool = False
    capability_bounding_set: tuple[str, ...] | None = None  # None: not restricted
    ambient_capabilities: tuple[str, ...] = ()
    no_new_privileges: bool = False

    @classmethod
    def from_unit(cls, text: str) -> "UnitSandbox":
        settings: dict[str, str] = {}
        section = None
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
            elif section == "[Service]" and "=" in line:
                key, value = line.split("=", 1)
                settings[key.strip()] = value.strip()  # the last assignment wins (none here is a list reset)
        protect_system = settings.get("ProtectSystem", "no")
        if protect_system not in ("no", "strict"):
            raise ValueError(f"ProtectSystem={protect_system} is not reproduced (only strict)")
        caps = settings.get("CapabilityBoundingSet")
        return cls(
            exec_start=tuple(shlex.split(settings["ExecStart"])),
            mount_namespace=any(settings.get(k, "no") not in ("no", "false", "") for k in MOUNT_SETTINGS),
            protect_system=protect_system,
            read_write_paths=tuple(settings.get("ReadWritePaths", "").split()),
            runtime_directories=tuple(settings.get("RuntimeDirectory", "").split()),
            state_directories=tuple(settings.get("StateDirectory", "").split()),
            protect_kernel_tunables=_yes(settings.get("ProtectKernelTunables")),
            protect_control_groups=_yes(settings.get("ProtectControlGroups")),
            protect_home=settings.get("ProtectHome", "no"),
            private_tmp=_yes(settings.get("PrivateTmp")),
            capability_bounding_set=None if caps is None else tuple(caps.split()),
            ambient_capabilities=tuple(settings.get("AmbientCapabilities", "").split()),
            no_new_privileges=_yes(settings.get("NoNewPrivileges")),
        )

    def command(self, argv: list[str] | None = None) -> list[str]:
        """ARGV (the unit's ExecStart if None) as the unit would run it."""
        argv = list(argv or self.exec_start)
        privileges = ["setpriv"]
        if self.capability_bounding_set is not None:
            privileges += ["--bounding-set", _caps(self.capability_bounding_set)]
        if self.ambient_capabilities:
            privileges += ["--inh-caps", _caps(self.ambient_capabilities), "--ambient-caps", _caps(self.ambient_capabilities)]
        if self.no_new_privileges:
            privileges.append("--no-new-privs")
        spec = json.dumps(dataclasses.asdict(self))
        argv = [sys.executable, "-m", "acsnet.lab.unit_sandbox", spec, "--", *privileges, "--", *argv]
        return ["unshare", "--mount", "--propagation", "slave", *argv] if self.mount_namespace else argv


def _yes(value: str | None) -> bool:
    return (value or "no").lower() in ("yes", "true", "1", "on")


def _caps(names: tuple[str, ...]) -> str:
    return ",".join(["-all"] + [f"+{n.lower().removeprefix('cap_')}" for n in names])


def _mount(*args: str, pass_fds: tuple[int, ...] = ()) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True, timeout=10, pass_fds=pass_fds)


def _installation() -> list[str]:
    """Where the acsnet under test runs from: its Python environment and, for an editable install, the
    source tree (this file is <tree>/acsnet/lab/unit_sandbox.py)."""
    return [os.path.realpath(sys.prefix),
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))]


def _mount_points() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount of this namespace that is not hidden under one
    mounted later over it or over a directory above it (the host's /run hides the machine's /run/netns)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            found.append((point, fields[fields.index("-") + 1]))
    return [(point, fstype) for i, (point, fstype) in enumerate(found)
            if not any(_under(point, (later,)) for later, _ in found[i + 1:])]


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _read_only(point: str) -> None:
    try:
        _mount("-o", "remount,bind,ro", point)
    except subprocess.CalledProcessError as e:
        if "nsfs" not in e.stderr:  # netns handles cannot be remounted
            raise


def apply(sandbox: UnitSandbox) -> None:
    """Make this mount namespace what the unit's would be."""
    writable = []
    for directory in sandbox.runtime_directories:
        os.makedirs(os.path.join("/run", directory), mode=0o755, exist_ok=True)
        writable.append(os.path.join("/run", directory))
    for directory in sandbox.state_directories:
        os.makedirs(os.path.join("/var/lib", directory), mode=0o755, exist_ok=True)
        writable.append(os.path.join("/var/lib", directory))
    for path in sandbox.read_write_paths:
        optional, path = path.startswith("-"), path.removeprefix("-")
        if not os.path.exists(path):
            if optional:
                continue
            raise FileNotFoundError(f"ReadWritePaths={path} does not exist (systemd would refuse to start the unit)")
        writable.append(os.path.realpath(path))
    if sandbox.private_tmp:
        # A host installs acsnet under /usr, /opt or a home; a test's checkout may live under /tmp (CI
        # clones there), which the empty /tmp would hide from the process under test. The installation
        # is not what the unit governs, so it is mounted back where it was (held open by a descriptor
        # while /tmp is covered).
        hidden = [path for path in _installation() if _under(path, ("/tmp", "/var/tmp"))]
        hidden = [path for path in hidden if not any(path != other and _under(path, (other,)) for other in hidden)]
        handles = [os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in hidden]
        for path in ("/tmp", "/var/tmp"):
            _mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", path)
            writable.append(path)
        for path, handle in zip(hidden, handles):
            os.makedirs(path, exist_ok=True)
            # --no-canonicalize: mount(8) would resolve the descriptor to its path, now the empty /tmp.
            _mount("--no-canonicalize", "--bind", f"/proc/self/fd/{handle}", path, pass_fds=(handle,))
            os.close(handle)
    if sandbox.protect_system == "strict":
        for path in writable:
            _mount("--rbind", path, path)  # its own mount, left writable below
        for point, _fstype in _mount_points():
            if not _under(point, API_FILESYSTEMS) and not _under(point, writable):
                _read_only(point)
    if sandbox.protect_kernel_tunables:
        _mount("--bind", "/proc/sys", "/proc/sys")
        _read_only("/proc/sys")
        for point, _fstype in _mount_points():
            if _under(point, ("/sys",)):
                _read_only(point)
    if sandbox.protect_control_groups:
        for point, _fstype in _mount_points():
            if _under(point, ("/sys/fs/cgroup",)):
                _read_only(point)
    if sandbox.protect_home not in ("no", "read-only", "yes"):
        raise ValueError(f"ProtectHome={sandbox.protect_home} is not reproduced")
    for path in ("/home", "/root", "/run/user"):
        if sandbox.protect_home == "no" or not os.path.isdir(path):
            continue
        if sandbox.protect_home == "yes":
            _mount("-t", "tmpfs", "-o", "ro,mode=000", "tmpfs", path)
        else:
            _mount("--rbind", path, path)
            for point, _fstype in _mount_points():
                if _under(point, (path,)):
                    _read_only(point)


def main(argv: list[str]) -> None:
    spec, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: python -m acsnet.lab.unit_sandbox SPEC -- ARGV...")
    data = json.loads(spec)
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    apply(UnitSandbox(**data))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
