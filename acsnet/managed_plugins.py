"""acsnet as Docker managed (v2) plugins: `acsnet/ipam`, `acsnet/vlan`, `acsnet/vxlan`, `acsnet/vpc`.

Swarm mode accepts only managed plugins, for the network driver and the IPAM alike, and
`docker plugin install` is how users install network plugins. A managed plugin is a folder holding
`config.json` and `rootfs/`, which `docker plugin create` takes. The four share one root filesystem,
made offline from Debian's packages (acsnet.rootfs: debootstrap, no registry, no image from the
internet) with this checkout and its Python dependencies installed into it; they differ only in their
config.json: which interface they serve, which socket, which capabilities and mounts.

Inside a plugin, dockerd mounts the plugin's own runtime folder on /run/docker/plugins and reads the
socket named in config.json there; the process is `acsnet serve PLUGIN` as on a host, configured by
its ACSNET_* environment (`docker plugin set acsnet/vxlan ACSNET_STORE=zk://...`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

from acsnet import rootfs
from acsnet.config import COMMON_OPTIONS, IPAM_OPTIONS, Option
from acsnet.errors import AcsnetError

SUITE = "bookworm"  # Python 3.11, as this machine's: its wheels (built here) run there unchanged
PACKAGES = (
    "python3",  # the plugins are `python3 -m acsnet.cli serve ...`
    # ovs-vsctl and ovs-ofctl, clients of the host's OVS through the mounted run folder (Debian 12 ships
    # ovs-vsctl in the switch package; its daemons are never started in a plugin)
    "openvswitch-switch",
    "iproute2",  # ip: router namespaces (vxlan), ip netns exec
    "nftables",  # nft: vxlan's SNAT/DNAT tables, vlan's uplink guard
    "ethtool",  # checksum offloads of veths and tunnel ports
    "procps",  # sysctl: forwarding inside vxlan's routers
)
PLUGIN_DIR = "/run/docker/plugins"  # where dockerd mounts a managed plugin's runtime folder
SITE_PACKAGES = "usr/local/lib/python3.11/dist-packages"  # on Debian 12's python3 path
TAG = "latest"

# Docker's defaults for a plugin (moby oci.DefaultSpec) already hold CAP_NET_RAW (the vlan driver's ARP
# probe and gratuitous ARPs, on packet sockets), CAP_DAC_OVERRIDE and the rest of a container's set; a
# plugin's config.json names only what it adds to them.
NET_ADMIN = "CAP_NET_ADMIN"  # veth pairs, their MTU and offloads, addresses, routes: the host's network
SYS_ADMIN = "CAP_SYS_ADMIN"  # network namespaces (create, enter, mount on /run/netns) and remounting /proc/sys


@dataclasses.dataclass(frozen=True)
class Mount:
    name: str  # what `docker plugin set PLUGIN NAME.source=PATH` names
    description: str
    source: str  # on the host
    destination: str  # in the plugin
    propagation: str = ""  # "rshared": mounts made inside reach the host (and back)

    def to_json(self) -> dict:
        return {"Name": self.name, "Description": self.description, "Settable": ["source"],
                "Source": self.source, "Destination": self.destination, "Type": "bind",
                "Options": ["rbind"] + ([self.propagation] if self.propagation else [])}


# The store's embedded file (the default store: single host) must be one for the IPAM and the drivers.
STATE = Mount("state", "acsnet's embedded store (the default --store) and other state, shared by the plugins",
              "/var/lib/acsnet", "/var/lib/acsnet")
OVS_RUN = Mount("ovs-run", "Open vSwitch's run folder: the OVSDB socket and the bridges' OpenFlow sockets",
                "/var/run/openvswitch", "/var/run/openvswitch")
# vxlan's routers are network namespaces mounted on /run/netns: shared with the host both ways, so they
# outlive a plugin restart, `ip netns` on the host shows them and the host's tools reach them.
NETNS = Mount("netns", "where network namespaces are mounted (vxlan's routers)", "/run/netns", "/run/netns", "rshared")


@dataclasses.dataclass(frozen=True)
class ManagedPlugin:
    plugin: str  # what `acsnet serve` runs
    name: str  # the plugin's name in dockerd: `-d acsnet/vxlan`, `--ipam-driver acsnet/ipam`
    interface: str
    socket: str  # `acsnet serve` binds <plugin-dir>/<socket>
    capabilities: tuple[str, ...]
    mounts: tuple[Mount, ...]
    entrypoint: tuple[str, ...]
    description: str

    @property
    def reference(self) -> str:
        return f"{self.name}:{TAG}"

    @property
    def folder(self) -> str:
        return self.name.replace("/", "-")


def _serve(plugin: str) -> tuple[str, ...]:
    return ("/usr/bin/python3", "-m", "acsnet.cli", "serve", plugin)


# vxlan's routers forward between their two links (sysctl net.ipv4.ip_forward inside the router's
# namespace), and Docker mounts /proc/sys read-only in a plugin; with CAP_SYS_ADMIN, which the routers
# need anyway, the plugin remounts it writable in its own mount namespace before serving.
VXLAN_ENTRYPOINT = ("/bin/sh", "-c", "mount -o remount,bind,rw /proc/sys && exec " + " ".join(_serve("vxlan")))

PLUGINS = {
    # The IPAM only answers dockerd on its socket and talks to the store: nothing beyond Docker's defaults.
    "ipam": ManagedPlugin("ipam", "acsnet/ipam", "docker.ipamdriver/1.0", "acsnet.sock", (), (STATE,),
                          _serve("ipam"), "acsnet IPAM: pools and addresses shared across hosts in ZooKeeper"),
    # vlan: veths on the host bridge and its flows, in the host's network namespace.
    "vlan": ManagedPlugin("vlan", "acsnet/vlan", "docker.networkdriver/1.0", "vlan.sock", (NET_ADMIN,),
                          (STATE, OVS_RUN), _serve("vlan"), "acsnet vlan driver: containers on the data center's VLANs"),
    # vxlan: the same, plus its routers (network namespaces: CAP_SYS_ADMIN) with nftables in them.
    "vxlan": ManagedPlugin("vxlan", "acsnet/vxlan", "docker.networkdriver/1.0", "vxlan.sock", (NET_ADMIN, SYS_ADMIN),
                           (STATE, OVS_RUN, NETNS), VXLAN_ENTRYPOINT,
                           "acsnet vxlan driver: private layer-2 networks over any IP underlay"),
    # vpc: veths and kernel routes to the peers' subnets (CAP_NET_ADMIN). It needs forwarding on in the
    # host's namespace, which a plugin cannot turn on (/proc/sys is read-only): the host does
    # (`acsnet plugin install --host-setup`, or sysctl), and the driver says so if it is off.
    "vpc": ManagedPlugin("vpc", "acsnet/vpc", "docker.networkdriver/1.0", "vpc.sock", (NET_ADMIN,),
                         (STATE, OVS_RUN), _serve("vpc"), "acsnet vpc driver: a subnet per host, routed by the VPC"),
}

# Every option of `acsnet serve` is an ACSNET_* variable the user may set, except where the socket goes:
# dockerd reads it from config.json's Socket in the folder it mounts on /run/docker/plugins.
FIXED = {"plugin_dir": PLUGIN_DIR}


def settable_options() -> list[Option]:
    return [o for o in COMMON_OPTIONS + IPAM_OPTIONS if o.name not in FIXED]


def config_json(spec: ManagedPlugin) -> dict:
    env = [{"Name": o.env, "Description": o.help, "Settable": ["value"], "Value": None} for o in settable_options()]
    env += [{"Name": f"ACSNET_{name.upper()}", "Description": "fixed: where dockerd looks for the socket",
             "Settable": [], "Value": value} for name, value in FIXED.items()]
    # Unset variables are left out of the plugin's environment (moby passes only those with a value),
    # so each option has `acsnet serve`'s own default until `docker plugin set` gives it one.
    return {
        "Description": spec.description,
        "Documentation": "https://github.com/acsnet/acsnet#managed-plugins-and-swarm",
        "Entrypoint": list(spec.entrypoint),
        "WorkDir": "/",
        "Interface": {"Types": [spec.interface], "Socket": spec.socket},
        "Network": {"Type": "host"},  # the host's network namespace: its OVS ports, veths and routes
        "Linux": {"Capabilities": list(spec.capabilities), "AllowAllDevices": False, "Devices": None},
        "Mounts": [m.to_json() for m in spec.mounts],
        "Env": env,
        "Args": {"Name": "", "Description": "", "Settable": None, "Value": None},
        "PropagatedMount": "",
        "IpcHost": False,
        "PidHost": False,
    }


def default_out() -> str:
    return os.path.join(os.path.dirname(rootfs.cache_dir()), "plugins")


def _checkout() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def install_acsnet(root: str, source: str, timeout: float = 900) -> None:
    """This checkout (a wheel built from it) and its dependencies into the root's Python path, with this
    machine's pip and its indexes; the root's python3 (Debian 12's 3.11) imports them as they are."""
    target = os.path.join(root, SITE_PACKAGES)
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-script-location",
            "--disable-pip-version-check", "--target", target, source]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AcsnetError(f"pip could not install acsnet into the plugins' root: {result.stderr.strip()[-800:]}")


# What the plugins never use at run time goes: dockerd's plugin create takes time in proportion to the
# root's size (measured here: 19 s for the 225 MB root before this trimming, 15 s for a 177 MB one), on
# every host at every install. Debian's package manager and its state (perl, dpkg's and apt's files),
# glibc's iconv modules and time zones (nothing converts charsets or reads zoneinfo), and OVS's daemons
# (a plugin is only a client of the host's OVS).
TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt",
           "var/lib/apt", "var/cache/debconf", "usr/share/lintian", "var/lib/dpkg", "usr/lib/apt",
           "usr/bin/perl", "usr/bin/perl5.36.0", "usr/lib/x86_64-linux-gnu/perl-base", "usr/share/perl5",
           "usr/lib/x86_64-linux-gnu/gconv", "usr/share/zoneinfo",
           "usr/sbin/ovsdb-server", "usr/lib/openvswitch-switch")


def build(out: str | None = None, *, source: str | None = None, progress=lambda message: None) -> str:
    """`out`/<acsnet-PLUGIN>/{config.json,rootfs/} for each plugin, their roots hard links of one; returns
    `out`. The Debian root is cached (acsnet.rootfs); acsnet is installed into a copy of it each time."""
    out = os.path.abspath(out or default_out())
    progress(f"Debian {SUITE} root filesystem ({', '.join(PACKAGES)}), cached after the first build")
    base = rootfs.build_rootfs(SUITE, PACKAGES)
    os.makedirs(out, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".build-", dir=out)
    try:
        root = os.path.join(staging, "rootfs")
        subprocess.run(["cp", "-a", base, root], check=True, timeout=300)
        os.unlink(os.path.join(root, rootfs.COMPLETE))
        for path in TRIMMED:
            trimmed = os.path.join(root, path)
            if os.path.isdir(trimmed) and not os.path.islink(trimmed):
                shutil.rmtree(trimmed)
            elif os.path.lexists(trimmed):
                os.unlink(trimmed)
        progress("acsnet and its Python dependencies into the root (pip)")
        install_acsnet(root, source or _checkout())
        for spec in PLUGINS.values():
            progress(f"{spec.name}: config.json")
            folder = os.path.join(staging, spec.folder)
            os.makedirs(folder)
            with open(os.path.join(folder, "config.json"), "w") as f:
                json.dump(config_json(spec), f, indent=2)
            subprocess.run(["cp", "-al", root, os.path.join(folder, "rootfs")], check=True, timeout=300)
            # dockerd stores a plugin's root as a blob named by its digest and refuses a second plugin
            # whose root has the digest of one it holds ("content sha256:...: already exists"): one file
            # of each root (a new one, not a hard link of the shared root's) names its plugin.
            with open(os.path.join(folder, "rootfs", "etc", "acsnet-plugin"), "w") as f:
                f.write(spec.name + "\n")
        shutil.rmtree(root)
        for spec in PLUGINS.values():
            final = os.path.join(out, spec.folder)
            if os.path.exists(final):
                shutil.rmtree(final)
            os.rename(os.path.join(staging, spec.folder), final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def source_digest(checkout: str | None = None) -> str:
    """What `build` installs from a checkout, as a digest: pyproject.toml and every file of the folders
    its packages come from (this module, with the trimming and the config.json it writes, among them)."""
    checkout = checkout or _checkout()
    with open(os.path.join(checkout, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    folders = {package.split(".")[0] for package in project["tool"]["setuptools"]["packages"]}
    folders |= set(project["tool"]["setuptools"].get("package-dir", {}).values())
    digest = hashlib.sha256()
    for name in ["pyproject.toml", *sorted(folders)]:
        top = os.path.join(checkout, name)
        files = [top] if os.path.isfile(top) else sorted(
            os.path.join(directory, file) for directory, subdirs, names in os.walk(top)
            for file in names if "__pycache__" not in directory and not file.endswith(".pyc"))
        for path in files:
            digest.update(os.path.relpath(path, checkout).encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:16]


def build_cached(out: str, *, progress=lambda message: None) -> str:
    """`build`'s plugins in `out`: hard links of a build of these exact sources, made once and kept
    (the lab builds them for every lab it brings up from the same checkout, and pip alone takes 20 s).
    Only the newest sources' build is kept; their dependencies are pip's choice at that first build."""
    cache = os.path.join(os.path.dirname(rootfs.cache_dir()), "plugins-built")
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one lab builds; another at the same time waits and takes it
        built = os.path.join(cache, source_digest())
        if is_built(built):
            progress(f"the plugins of these sources, built before: {built}")
        else:
            for older in os.listdir(cache):
                if older != ".lock":
                    shutil.rmtree(os.path.join(cache, older))
            build(built, progress=progress)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        subprocess.run(["cp", "-al", built, out], check=True, timeout=300)
    return out


def is_built(out: str) -> bool:
    return all(os.path.isfile(os.path.join(out, spec.folder, "config.json"))
               and os.path.isdir(os.path.join(out, spec.folder, "rootfs")) for spec in PLUGINS.values())
