"""Host liveness, the only module that knows its keys.

    hosts/<host>                        HostRecord: what the host's plugins registered (JSON)
    hosts/<host>/sessions/<name>-<pid>  HostSessions: one ephemeral node per live process of the host
    live/<host>@<name>-<pid>            LiveSessions: the same sessions, every host's under one parent

A host is alive while it has at least one session. A live process holds both of its session's nodes
(`SESSION_LAYOUTS`): `live/` lets a watcher follow every host with one children watch (one per peer
host made N^2 watches over a cluster of N agents: 2,900 of the 3,096 at 100 simulated hosts); the
per-host node is what plugins of earlier versions write and watch, so hosts of both versions see each
other alive during a rolling upgrade. The store backends write these records from `register_host`;
everyone else reads and watches them here.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from acsnet.store.base import ROOT, LeavesChange, Store, encode, join

HOSTS = join(ROOT, "hosts")
LIVE = join(ROOT, "live")
# Between the host and the session in a `live/` name: a session name (`<plugin>-<pid>`) never holds it,
# so the name splits at its last one even if a host id does.
SEPARATOR = "@"


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
    def read_many(store: Store, host_ids: list[str]) -> dict[str, list[str]]:
        """Each host's session names, read in one batch."""
        return dict(zip(host_ids, store.children_many([HostSessions.key(h) for h in host_ids])))

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


class LiveSessions:
    """`live/<host>@<session>`: every host's live sessions under one parent (ephemeral nodes), so that
    one children watch tells which hosts are alive, however many there are."""

    @staticmethod
    def key(host_id: str, session: str) -> str:
        return join(LIVE, f"{host_id}{SEPARATOR}{session}")

    @staticmethod
    def split(name: str) -> tuple[str, str] | None:
        """(host, session) of a name under `live/`; None for a name without the separator (no session)."""
        host, separator, session = name.rpartition(SEPARATOR)
        return (host, session) if separator and host and session else None

    @staticmethod
    def hosts(names: Iterable[str]) -> dict[str, list[str]]:
        """Host -> its sessions, from the names under `live/`."""
        sessions: dict[str, list[str]] = {}
        for host, session in filter(None, map(LiveSessions.split, names)):
            sessions.setdefault(host, []).append(session)
        return sessions

    @staticmethod
    def read_all(store: Store) -> dict[str, list[str]]:
        """Every host with a session in the list, and its sessions."""
        return LiveSessions.hosts(store.children(LIVE))

    @staticmethod
    def listed_many(store: Store, sessions: dict[str, list[str]]) -> set[str]:
        """The hosts any of whose sessions (host -> its session names, as `HostSessions` has them) is in
        the list in the store now, in one batch of reads."""
        keys = [(host, LiveSessions.key(host, session)) for host, names in sessions.items() for session in names]
        found = store.get_many([key for _host, key in keys]) if keys else []
        return {host for (host, _key), node in zip(keys, found) if node is not None}

    @staticmethod
    def watch_all(store: Store, callback: Callable[[LeavesChange], None]) -> None:
        """Call `callback` with the list's names now, then with each change: one watch for every host.
        A store that can hands over the one name made or deleted (`Store.watch_leaves`): a host starting
        was the whole list read again by every host following it, N^3/6 names over a cluster of N hosts
        starting one after another (163,876 at 100 simulated hosts). `ListedHosts` keeps the hosts."""
        store.watch_leaves(LIVE, callback)

    @staticmethod
    def write(store: Store, host_id: str, session: str) -> bool:
        """Make the session's ephemeral node, holding when it began; True if this call made it."""
        return store.create(LiveSessions.key(host_id, session), encode({"since": time.time()}), ephemeral=True)

    @staticmethod
    def clear(store: Store, host_id: str, session: str) -> bool:
        return store.delete(LiveSessions.key(host_id, session))


class ListedHosts:
    """The hosts in the sessions list, kept from its watch's changes (`LiveSessions.watch_all`): a change
    costs what it names, and says which hosts came into the list or left it. Changed on the store's
    thread while a worker asks `in`: one dict, replaced whole or changed one key at a time."""

    def __init__(self) -> None:
        self._sessions: dict[str, set[str]] = {}

    def __contains__(self, host: str) -> bool:
        return host in self._sessions

    def take(self, change: LeavesChange) -> set[str]:
        """Take a change in: the hosts that came into the list or left it."""
        if change.names is not None:
            before = self._sessions.keys()
            listed = {host: set(sessions) for host, sessions in LiveSessions.hosts(change.names).items()}
            moved = before ^ listed.keys()
            self._sessions = listed
            return moved
        moved = set()
        for host, session in filter(None, map(LiveSessions.split, change.deleted)):
            sessions = self._sessions.get(host)
            if sessions is not None and session in sessions:
                sessions.discard(session)
                if not sessions:
                    del self._sessions[host]
                    moved ^= {host}
        for host, session in filter(None, map(LiveSessions.split, change.made)):
            if host not in self._sessions:
                self._sessions[host] = set()
                moved ^= {host}
            self._sessions[host].add(session)
        return moved


# The nodes a live session holds, each written the same way (`write`, `key`, `clear`): the list first,
# so a watcher of the list hears of a session no later than one of the per-host node.
SESSION_LAYOUTS = (LiveSessions, HostSessions)


def live_hosts(store: Store) -> set[str]:
    """Hosts with at least one session: those in the list (one read), and any other registered host
    whose per-host sessions say so (a plugin of an earlier version writes only those); backends purge
    dead sessions before asking."""
    listed = set(LiveSessions.read_all(store))
    return listed | {h for h in HostRecord.read_all(store) if h not in listed and HostSessions.read_all(store, h)}


def host_alive(store: Store, host_id: str) -> bool:
    """One read: every version writes the per-host sessions (this one the list as well)."""
    return bool(HostSessions.read_all(store, host_id))
