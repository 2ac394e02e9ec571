"""Host liveness, the only module that knows its keys.

    hosts/<host>                        HostRecord: what the host's plugins registered (JSON)
    hosts/<host>/sessions/<name>-<pid>  HostSessions: one ephemeral node per live process of the host

A host is alive while it has at least one session. The store backends write these records from
`register_host`; everyone else reads and watches them here.
"""

from __future__ import annotations

import time
from typing import Callable

from acsnet.store.base import ROOT, Store, encode, join

HOSTS = join(ROOT, "hosts")


class HostRecord:
    """`hosts/<host>`: the info a host registered with its first session."""

    @staticmethod
    def key(host_id: str) -> str:
        return join(HOSTS, host_id)

    @staticmethod
    def read(store: Store, host_id: str) -> dict | None:
        """The registered info, or None if the host never registered."""
        node = store.get(HostRecord.key(host_id))
        return None if node is None else (node.json() or {})

    @staticmethod
    def read_all(store: Store) -> list[str]:
        """Every host that ever registered, alive or not."""
        return store.children(HOSTS)

    @staticmethod
    def watch_all(store: Store, callback: Callable[[list[str]], None]) -> None:
        store.watch_children(HOSTS, callback)

    @staticmethod
    def write(store: Store, host_id: str, info: dict) -> None:
        store.put(HostRecord.key(host_id), encode(info))

    @staticmethod
    def clear(store: Store, host_id: str) -> bool:
        return store.delete(HostRecord.key(host_id), recursive=True)


class HostSessions:
    """`hosts/<host>/sessions/<name>-<pid>`: the live processes of a host (ephemeral nodes)."""

    @staticmethod
    def key(host_id: str, session: str | None = None) -> str:
        sessions = join(HostRecord.key(host_id), "sessions")
        return sessions if session is None else join(sessions, session)

    @staticmethod
    def name(session_name: str, pid: int) -> str:
        return f"{session_name}-{pid}"

    @staticmethod
    def read_all(store: Store, host_id: str) -> list[str]:
        return store.children(HostSessions.key(host_id))

    @staticmethod
    def watch_all(store: Store, host_id: str, callback: Callable[[list[str]], None]) -> None:
        """Call `callback` with the host's session names now and after every change."""
        store.watch_children(HostSessions.key(host_id), callback)

    @staticmethod
    def write(store: Store, host_id: str, session: str) -> bool:
        """Make the session's ephemeral node, holding when it began; True if this call made it."""
        return store.create(HostSessions.key(host_id, session), encode({"since": time.time()}), ephemeral=True)

    @staticmethod
    def alive_since(store: Store, host_id: str, sessions: list[str]) -> float | None:
        """When the oldest of these live sessions began (None: none says, as those of older versions)."""
        began = []
        for session in sessions:
            node = store.get(HostSessions.key(host_id, session))
            data = node.json() if node is not None and node.value else None
            if isinstance(data, dict) and isinstance(data.get("since"), (int, float)):
                began.append(float(data["since"]))
        return min(began) if began else None

    @staticmethod
    def clear(store: Store, host_id: str, session: str) -> bool:
        return store.delete(HostSessions.key(host_id, session))


def live_hosts(store: Store) -> set[str]:
    """Registered hosts with at least one session (backends purge dead sessions before asking)."""
    return {h for h in HostRecord.read_all(store) if HostSessions.read_all(store, h)}


def host_alive(store: Store, host_id: str) -> bool:
    return bool(HostSessions.read_all(store, host_id))
