"""`acsnet plugin install`: the managed plugins onto a dockerd through its Engine API, as `docker plugin
create`, `docker plugin set` and `docker plugin enable` do, and what the host must give them first.

A plugin already installed is replaced (disabled, removed, created again): dockerd refuses while a
network uses it, and that refusal is the answer. Settings (`--set KEY=VALUE`) go to every plugin that
has KEY: an ACSNET_* variable (all four have every option) or a mount's source (`ovs-run.source=...`).
"""

from __future__ import annotations

import os
import subprocess
import urllib.parse

from acsnet.docker_api import DockerAddress
from acsnet.errors import AcsnetError
from acsnet.managed_plugins import PLUGINS, ManagedPlugin, config_json


class PluginInstallError(AcsnetError):
    """dockerd refused a step of the install; the message names the plugin, the step and dockerd's words."""


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _message(body) -> str:
    return body.get("message", str(body)) if isinstance(body, dict) else str(body)


def parse_settings(pairs: list[str]) -> list[tuple[str, str]]:
    """KEY=VALUE pairs, each KEY known to at least one plugin (refused before anything is changed)."""
    known = set()
    for spec in PLUGINS.values():
        known |= _settable_keys(spec)
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise AcsnetError(f"--set {pair!r}: give KEY=VALUE")
        if key not in known:
            raise AcsnetError(f"--set {key}: no acsnet plugin has that setting; settable: {', '.join(sorted(known))}")
        parsed.append((key, value))
    return parsed


def _settable_keys(spec: ManagedPlugin) -> set[str]:
    config = config_json(spec)
    return ({e["Name"] for e in config["Env"] if e["Settable"]}
            | {f"{m['Name']}.source" for m in config["Mounts"]} | {m["Name"] for m in config["Mounts"]})


def prepare_host(specs: list[ManagedPlugin], settings: list[tuple[str, str]]) -> list[str]:
    """What the plugins' mounts need on the host: their sources exist, and /run/netns (vxlan's routers)
    is a shared mount point, as `ip netns add` makes it, so that namespaces the plugin mounts there
    reach the host (a private one would keep them inside the plugin). Returns what was done."""
    done = []
    overrides = {key.split(".")[0]: value for key, value in settings if key.endswith(".source")}
    for spec in specs:
        for mount in spec.mounts:
            source = overrides.get(mount.name, mount.source)
            if not os.path.isdir(source):
                os.makedirs(source, exist_ok=True)
                done.append(f"made {source}")
            if mount.propagation == "rshared" and not _is_shared_mount_point(source):
                if not _is_mount_point(source):
                    _mount("--bind", source, source)
                _mount("--make-shared", source)
                done.append(f"made {source} a shared mount point")
    return done


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise PluginInstallError(f"mount {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}")


def _top_mount(path: str) -> list[str] | None:
    """The mountinfo fields of the mount that `path` is on: the last one listed at `path` or above it
    (a mount listed at `path` but before a mount over a folder above it is covered, not seen)."""
    real = os.path.realpath(path)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            if real == point or real.startswith(point.rstrip("/") + "/"):
                found = fields
    return found


def _is_mount_point(path: str) -> bool:
    top = _top_mount(path)
    return top is not None and top[4] == os.path.realpath(path)


def _is_shared_mount_point(path: str) -> bool:
    top = _top_mount(path)
    return _is_mount_point(path) and any(f.startswith("shared:") for f in top[6:top.index("-")])


class PluginInstaller:
    def __init__(self, docker: DockerAddress, build_dir: str, *, enable_timeout: int = 180):
        self.docker = docker
        self.build_dir = build_dir
        self.enable_timeout = enable_timeout

    def _call(self, spec: ManagedPlugin, step: str, method: str, path: str, ok=(200, 204), **kwargs):
        status, body = self.docker.request(method, path, **kwargs)
        if status not in ok:
            raise PluginInstallError(f"{spec.reference}: {step} failed ({status}): {_message(body)}")
        return body

    def installed(self) -> dict[str, dict]:
        status, body = self.docker.get_json("/plugins")
        if status != 200 or not isinstance(body, list):
            raise PluginInstallError(f"dockerd at {self.docker} did not list its plugins ({status}): {_message(body)}")
        return {p["Name"]: p for p in body}

    def remove(self, spec: ManagedPlugin, present: dict) -> None:
        if present.get("Enabled"):
            self._call(spec, "disable", "POST", f"/plugins/{_quoted(spec.reference)}/disable")
        self._call(spec, "remove", "DELETE", f"/plugins/{_quoted(spec.reference)}")

    def create(self, spec: ManagedPlugin) -> None:
        folder = os.path.join(self.build_dir, spec.folder)
        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise PluginInstallError(f"{folder} holds no built plugin: run 'acsnet plugin build --out {self.build_dir}'")
        # The folder as a tar stream, as `docker plugin create` sends it: the root is never held in memory.
        tar = subprocess.Popen(["tar", "-C", folder, "--numeric-owner", "-cf", "-", "config.json", "rootfs"],
                               stdout=subprocess.PIPE)
        try:
            self._call(spec, "create", "POST", f"/plugins/create?name={_quoted(spec.reference)}", body=tar.stdout,
                       content_type="application/x-tar", timeout=600)
        finally:
            tar.stdout.close()
            tar.wait(60)

    def configure(self, spec: ManagedPlugin, settings: list[tuple[str, str]]) -> None:
        mine = [f"{key}={value}" for key, value in settings if key in _settable_keys(spec)]
        if mine:
            self._call(spec, "set", "POST", f"/plugins/{_quoted(spec.reference)}/set", body=mine)

    def enable(self, spec: ManagedPlugin) -> None:
        self._call(spec, "enable", "POST", f"/plugins/{_quoted(spec.reference)}/enable?timeout={self.enable_timeout}",
                   timeout=self.enable_timeout + 30)

    def install(self, names: list[str], settings: list[tuple[str, str]], progress=lambda message: None) -> list[str]:
        specs = [PLUGINS[n] for n in names]
        for done in prepare_host(specs, settings):
            progress(done)
        present = self.installed()
        for spec in specs:
            if spec.reference in present:
                progress(f"{spec.reference}: replacing the one installed")
                self.remove(spec, present[spec.reference])
            progress(f"{spec.reference}: create")
            self.create(spec)
            self.configure(spec, settings)
            progress(f"{spec.reference}: enable")
            self.enable(spec)
        return [spec.reference for spec in specs]
