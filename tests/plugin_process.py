"""Start `acsnet serve ...` as a real process (gunicorn on a unix socket), the way users run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from plugins.plugin_client import PluginClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PluginProcess:
    def __init__(self, argv: list[str], socket_path: str, log_path: str, env: dict | None = None):
        self.argv = argv
        self.socket_path = socket_path
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    @classmethod
    def acsnet(cls, plugin: str, plugin_dir: str, *args: str, log_dir: str, name: str | None = None) -> "PluginProcess":
        name = name or ("acsnet" if plugin == "ipam" else plugin)
        argv = [sys.executable, "-m", "plugins.cli", "serve", plugin, "--plugin-dir", plugin_dir, *args]
        return cls(argv, os.path.join(plugin_dir, f"{name}.sock"), os.path.join(log_dir, f"{name}-{os.getpid()}-{time.time_ns()}.log"))

    def start(self, wait: float = 20.0) -> "PluginProcess":
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + wait
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"plugin exited with {self.process.returncode}:\n{self.log()}")
            if os.path.exists(self.socket_path):
                try:
                    status, _ = self.client().call("Plugin.Activate")
                    if status == 200:
                        return self
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"plugin did not answer within {wait:g}s:\n{self.log()}")
            time.sleep(0.05)

    def client(self, timeout: float = 30.0) -> PluginClient:
        return PluginClient(self.socket_path, timeout)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(wait)
