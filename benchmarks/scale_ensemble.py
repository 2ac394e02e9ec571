"""A ZooKeeper ensemble of three on this machine's loopback, what it reports of its load (`mntr`), and
what it sustains (a load generator of reads, writes and watch notifications in a few processes).

The scale benchmark runs its simulated hosts against this ensemble and states its load at each size as
a fraction of what this measures on the same machine, in the same run.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time

from acsnet.lab.zookeeper import ZooKeeperServer, free_port

# Sessions of every simulated host come from 127.0.0.1: ZooKeeper's default of 60 per address is lifted.
# The sessions the hosts ask for (30 s, `scale_hosts.py`) are granted: the lab's tick of 0.5 s caps them
# at 20 ticks, 10 s, which a host starved of CPU by hundreds of others misses (a production ensemble's
# 2 s tick allows 40 s). The heap holds 1,000 sessions' watches and ~100,000 znodes.
SETTINGS = {"maxClientCnxns": "0", "maxSessionTimeout": "60000"}
HEAP_MB = 1024
LOAD_ROOT = "/capacity"  # the load generator's own nodes, outside acsnet's chroot


def four_letter(address: str, word: str, timeout: float = 5.0) -> str:
    """A four-letter word's answer (`mntr`, `wchs`, `srvr`)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def mntr(address: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in four_letter(address, "mntr").splitlines() if "\t" in line)


class Ensemble:
    """Three members on 127.0.0.1, each with its own client, quorum and election ports."""

    def __init__(self, workdir: str, size: int = 3):
        self.members: list[ZooKeeperServer] = []
        quorum_ports = []
        while len(quorum_ports) < size:  # a port and the one above it, both free
            port = free_port()
            if port + 1 < 65536 and port not in quorum_ports and port + 1 not in quorum_ports:
                quorum_ports.append(port)
        peers = [(i + 1, "127.0.0.1", quorum_ports[i]) for i in range(size)]
        for i in range(size):
            self.members.append(ZooKeeperServer(os.path.join(workdir, f"zk{i + 1}"), "127.0.0.1", peers=peers, my_id=i + 1,
                                                heap_mb=HEAP_MB, settings=SETTINGS))

    @property
    def hosts(self) -> str:
        return ",".join(m.address for m in self.members)

    def url(self, chroot: str = "/acsnet-scale") -> str:
        return f"zk://{self.hosts}{chroot}"

    def start(self) -> "Ensemble":
        for member in self.members:
            member.start()
        for member in self.members:
            member.wait_ready(60)
        return self

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def stats(self) -> dict:
        """Counters so far: requests received (all members), writes (the leader's proposals: a multi is
        one), watch notifications sent, znodes (the leader's count: every member holds all), watches and
        client connections (each member counts those of the sessions connected to it)."""
        totals = {"requests": 0, "writes": 0, "notifications": 0, "leaf_notifications": 0, "watches": 0,
                  "connections": 0, "znodes": 0, "outstanding": 0}
        for member in self.members:
            m = mntr(member.address)
            totals["requests"] += int(m.get("zk_packets_received", 0))
            if m.get("zk_server_state") in ("leader", "standalone"):
                totals["writes"] += int(m.get("zk_proposal_count", 0))
            totals["notifications"] += sum(int(m.get(f"zk_sum_node_{kind}_watch_count", 0))
                                           for kind in ("created", "deleted", "changed", "children"))
            # A child made or deleted under a persistent recursive watch (a segment's records) is a
            # created or deleted event; a one-shot watch's are children or changed (an exists watch's
            # created, a value watch's deleted: rare here).
            totals["leaf_notifications"] += sum(int(m.get(f"zk_sum_node_{kind}_watch_count", 0))
                                                for kind in ("created", "deleted"))
            totals["watches"] += int(m.get("zk_watch_count", 0))
            totals["connections"] += int(m.get("zk_num_alive_connections", 0))
            totals["outstanding"] += int(m.get("zk_outstanding_requests", 0))
            totals["znodes"] = max(totals["znodes"], int(m.get("zk_znode_count", 0)))
        return totals


# -- what the ensemble sustains ------------------------------------------------------------------

def _load_client(hosts: str, kind: str, index: int, seconds: float, batch: int, counts) -> None:
    """One process's share of the load: `kind` is "reads" or "warm-up" (pipelined gets), "writes" (pipelined sets of
    its own nodes), "watches" (every client watches the same nodes with one-shot watches, each armed
    again when it fires; client 0 of each process sets them, so each set is one notification per watching
    session) or "leaf-watches" (every client follows one parent with a persistent recursive watch, as an
    agent follows a segment; client 0 of each process makes and deletes children there, each one
    notification per session, taken in as the store's leaves watch takes them). Adds what it completed to
    `counts[index]`."""
    from kazoo.client import KazooClient
    from kazoo.protocol.serialization import Watch

    from acsnet.store.zookeeper_leaves import PERSISTENT_RECURSIVE_MODE, AddWatch

    clients = [KazooClient(hosts=hosts, timeout=10) for _ in range(4)]
    for client in clients:
        client.start(timeout=30)
    # Each session reads and writes nodes it made itself: another member may not have applied another
    # session's create yet (ZooKeeper orders one session's operations, not several sessions').
    nodes = {}
    for c, client in enumerate(clients):
        own = f"{LOAD_ROOT}/{kind}-{index}-{c}"
        client.ensure_path(own)
        nodes[client] = [f"{own}/n{i}" for i in range(batch)]
        for node in nodes[client]:
            if not client.exists(node):
                client.create(node, b"x" * 100)
    hot = [f"{LOAD_ROOT}/hot/n{i}" for i in range(16)]
    done = 0
    notified = [0]
    deadline = time.monotonic() + seconds
    if kind == "watches":
        def arm(client, path):
            def fired(event):
                notified[0] += 1
                if time.monotonic() < deadline:
                    client.exists(path, watch=fired)
            client.exists(path, watch=fired)

        for client in clients:
            for path in hot:
                arm(client, path)
        while time.monotonic() < deadline:
            for result in [clients[0].set_async(path, b"y") for path in hot]:
                result.get(timeout=10)
            time.sleep(0.005)
        done = notified[0]
    elif kind == "leaf-watches":
        leaves = f"{LOAD_ROOT}/leaves"

        def count(buffer, offset) -> None:  # on the connection thread, as `LeafEvents` reads an event
            Watch.deserialize(buffer, offset)
            notified[0] += 1

        for client in clients:
            client._connection._read_watch_event = count
            added = client.handler.async_result()
            client._call(AddWatch(leaves, PERSISTENT_RECURSIVE_MODE), added)
            added.get(timeout=10)
        children = [f"{leaves}/p{index}-{i}" for i in range(batch)]
        while time.monotonic() < deadline:  # no pause: a persistent watch needs no arming again
            for made in (True, False):
                for result in [clients[0].create_async(path) if made else clients[0].delete_async(path) for path in children]:
                    result.get(timeout=10)
        done = notified[0]
    else:
        while time.monotonic() < deadline:
            pending = []
            for client in clients:
                for node in nodes[client]:
                    pending.append(client.set_async(node, b"z" * 100) if kind == "writes" else client.get_async(node))
            for result in pending:
                result.get(timeout=30)
            done += len(pending)
    for client in clients:
        client.stop()
        client.close()
    counts[index] = done


def capacity(ensemble: Ensemble, *, processes: int = 4, seconds: float = 8.0, batch: int = 50) -> dict:
    """Operations per second the ensemble completes at saturation, per kind, from `processes` client
    processes of four sessions each on this machine (the clients' CPU is part of it, as the simulated
    hosts' is in the scale run)."""
    from kazoo.client import KazooClient

    setup = KazooClient(hosts=ensemble.hosts, timeout=10)
    setup.start(timeout=30)
    for i in range(16):
        setup.ensure_path(f"{LOAD_ROOT}/hot/n{i}")
    setup.ensure_path(f"{LOAD_ROOT}/leaves")
    setup.stop()
    setup.close()
    context = multiprocessing.get_context("spawn")
    rates = {}
    # The first phase warms the servers' JIT, unmeasured: a cold JVM read half as fast as a warm one here.
    for kind in ("warm-up", "reads", "writes", "watches", "leaf-watches"):
        counts = context.Array("q", processes)
        workers = [context.Process(target=_load_client, args=(ensemble.hosts, kind, i, seconds, batch, counts))
                   for i in range(processes)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(seconds + 120)
        rates[kind] = sum(counts) / seconds
    rates.pop("warm-up")
    return {"reads_per_s": rates["reads"], "writes_per_s": rates["writes"], "notifications_per_s": rates["watches"],
            "leaf_notifications_per_s": rates["leaf-watches"], "processes": processes, "seconds": seconds}


def load_fraction(reads_per_s: float, writes_per_s: float, notifications_per_s: float,
                  leaf_notifications_per_s: float, sustained: dict) -> float:
    """The share of the ensemble's capacity a load uses: each kind's rate over what the ensemble
    sustains of that kind alone, added up (1.0 is saturation). `notifications_per_s` counts every
    notification; those of them a persistent recursive watch sent (`leaf_notifications_per_s`) are
    reckoned against what it sustains of those, which no re-arming read follows."""
    one_shot = max(notifications_per_s - leaf_notifications_per_s, 0.0)
    return (reads_per_s / sustained["reads_per_s"] + writes_per_s / sustained["writes_per_s"]
            + one_shot / max(sustained["notifications_per_s"], 1.0)
            + leaf_notifications_per_s / max(sustained["leaf_notifications_per_s"], 1.0))
