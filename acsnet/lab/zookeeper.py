"""Run a real ZooKeeper server (Debian's `zookeeper` package) as a child process on a given address.

Started the way Debian's own service does (QuorumPeerMain with log4j from /etc/zookeeper/conf), but
with its own data dir and config, so it touches nothing of a system ZooKeeper.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

JAVA_CLASSPATH = ":".join(
    [
        "/etc/zookeeper/conf",
        "/usr/share/java/zookeeper.jar",
        "/usr/share/java/slf4j-log4j12.jar",
        "/usr/share/java/log4j-1.2.jar",
    ]
)
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


class ZooKeeperMissing(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


SRVR = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
    s.sendall(b"srvr")
    print(s.recv(4096).decode(errors="replace"))
"""


def serving_mode(host: str, port: int, command_prefix: list[str] | None = None) -> str | None:
    """"leader", "follower" or "standalone" once the server serves requests, else None."""
    argv = [*(command_prefix or []), sys.executable, "-c", SRVR, host, str(port)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    for line in result.stdout.splitlines():
        if line.startswith("Mode: "):
            return line.split(": ", 1)[1].strip()
    return None


class ZooKeeperServer:
    """One standalone server (or one member of an ensemble, given `peers` and `my_id`)."""

    def __init__(self, workdir: str, host: str = "127.0.0.1", port: int | None = None, *, tick_ms: int = 500,
                 peers: list[tuple[str, int, int]] | None = None, my_id: int | None = None,
                 command_prefix: list[str] | None = None, sasl_users: dict[str, str] | None = None,
                 heap_mb: int = 256, settings: dict[str, str] | None = None):
        if not os.path.exists("/usr/share/java/zookeeper.jar"):
            raise ZooKeeperMissing("ZooKeeper is not installed: apt-get install zookeeper")
        self.workdir = workdir
        self.host = host
        self.port = port or free_port(host)
        self.tick_ms = tick_ms
        self.peers = peers or []
        self.my_id = my_id
        self.command_prefix = command_prefix or []
        self.sasl_users = sasl_users or {}
        self.heap_mb = heap_mb
        self.settings = settings or {}  # more zoo.cfg lines (the scale benchmark's maxClientCnxns)
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _write_config(self) -> str:
        data = os.path.join(self.workdir, "data")
        os.makedirs(data, exist_ok=True)
        lines = [
            f"tickTime={self.tick_ms}",
            "initLimit=10",
            "syncLimit=5",
            f"dataDir={data}",
            f"clientPort={self.port}",
            f"clientPortAddress={self.host}",
            "admin.enableServer=false",
            # mntr and wchs: the scale benchmark reads requests, znodes and watches from them.
            "4lw.commands.whitelist=ruok,srvr,mntr,wchs",
            # Sessions as short as 1 s let tests see a dead host's session expire quickly.
            f"minSessionTimeout={2 * self.tick_ms}",
            *(f"{key}={value}" for key, value in self.settings.items()),
        ]
        if self.sasl_users:
            lines.append("authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider")
            users = "\n".join(f'  user_{name}="{password}"' for name, password in self.sasl_users.items())
            with open(os.path.join(self.workdir, "jaas.conf"), "w") as f:
                f.write(f"Server {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n{users};\n}};\n")
        for peer_id, peer_host, quorum_port in self.peers:
            lines.append(f"server.{peer_id}={peer_host}:{quorum_port}:{quorum_port + 1}")
        if self.my_id is not None:
            with open(os.path.join(data, "myid"), "w") as f:
                f.write(str(self.my_id))
        with open(os.path.join(self.workdir, "log4j.properties"), "w") as f:
            f.write("log4j.rootLogger=INFO, OUT\n"
                    "log4j.appender.OUT=org.apache.log4j.ConsoleAppender\n"
                    "log4j.appender.OUT.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.OUT.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1} - %m%n\n")
        path = os.path.join(self.workdir, "zoo.cfg")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self, wait: float = 30.0) -> "ZooKeeperServer":
        config = self._write_config()
        log = open(os.path.join(self.workdir, "zookeeper.log"), "ab")
        self.process = subprocess.Popen(
            [*self.command_prefix, "java", f"-Xmx{self.heap_mb}m", "-cp", JAVA_CLASSPATH,
             *([f"-Djava.security.auth.login.config={self.workdir}/jaas.conf"] if self.sasl_users else []),
             f"-Dlog4j.configuration=file:{self.workdir}/log4j.properties", MAIN_CLASS, config],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        if not self.peers:
            self.wait_ready(wait)
        return self

    def wait_ready(self, wait: float = 30.0) -> None:
        """Until the server serves requests (for an ensemble member: until it has a quorum)."""
        deadline = time.monotonic() + wait
        while serving_mode(self.host, self.port, self.command_prefix) is None:
            if self.process.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.process.returncode}; see {self.workdir}/zookeeper.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ZooKeeper did not answer on {self.address} within {wait:g}s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
