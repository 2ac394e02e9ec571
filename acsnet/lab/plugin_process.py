"""Start `acsnet serve ...` as a real process (gunicorn on a unix socket), the way users run it,
either on this machine or inside a simulated host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from acsnet.lab.host import REPO, SimulatedHost, stop_process_group
from acsnet.plugin_client import PluginClient


class PluginProcess:
    def __init__(self, argv: list[str], socket_path: str, log_path: str, *, host: SimulatedHost | None = None,
                 env: dict | None = None):
        self.argv = argv
        self.socket_path = socket_path  # as seen inside `host` when there is one
        self.log_path = log_path
        self.host = host
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    @classmethod
    def acsnet(cls, plugin: str, plugin_dir: str, *args: str, log_dir: str, host: SimulatedHost | None = None) -> "PluginProcess":
        name = "acsnet" if plugin == "ipam" else plugin
        # Its state (the journals of store writes answered before their commit) beside its log: a lab's or a test's own, not the machine's.
        argv = [sys.executable, "-m", "acsnet.cli", "serve", plugin, "--plugin-dir", plugin_dir, "--state-dir", log_dir, *args]
        log = os.path.join(log_dir, f"{name}-{time.time_ns()}.log")
        return cls(argv, os.path.join(plugin_dir, f"{name}.sock"), log, host=host)

    def start(self, wait: float = 20.0) -> "PluginProcess":
        argv = self.argv if self.host is None else self.host.command(self.argv)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + wait
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"plugin exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"plugin did not answer within {wait:g}s:\n{self.log()}")
            time.sleep(0.05)
        return self

    def answers(self) -> bool:
        """True once Plugin.Activate succeeds on the socket (probed inside the host if there is one)."""
        if self.host is None:
            try:
                return os.path.exists(self.socket_path) and self.client(timeout=2).call("Plugin.Activate")[0] == 200
            except OSError:
                return False
        probe = (f"from acsnet.plugin_client import PluginClient; import sys; "
                 f"sys.exit(PluginClient({self.socket_path!r}, 2).call('Plugin.Activate')[0] != 200)")
        try:
            return self.host.run([sys.executable, "-c", probe], check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:  # a loaded machine: not answering yet, start()'s deadline decides
            return False

    def client(self, timeout: float = 30.0) -> PluginClient:
        if self.host is not None:
            raise RuntimeError("the socket of a plugin inside a simulated host is reachable only from that host")
        return PluginClient(self.socket_path, timeout)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
        stop_process_group(self.process, sig, wait)
