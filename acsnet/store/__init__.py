"""Open a store from its URL: `zk://h1:2181,h2:2181/chroot` for ZooKeeper, `file:///path/db` (or a plain
path) for the embedded single-host store."""

from acsnet.store.base import ROOT, Check, Create, Delete, LeavesChange, SetValue, Store, Versioned, encode, join, read_each

DEFAULT_EMBEDDED_PATH = "/var/lib/acsnet/store.db"


def check_store_url(url: str | None) -> tuple[str, str]:
    """(kind, location) of a store URL, or ValueError saying what a valid one looks like."""
    if not url:
        return "file", DEFAULT_EMBEDDED_PATH
    if url.startswith("zk://"):
        from acsnet.store.zookeeper import parse_zk_url

        parse_zk_url(url)
        return "zk", url
    path = url[len("file://"):] if url.startswith("file://") else url
    if "://" in path or not path.startswith("/"):
        raise ValueError(f"unknown store URL {url!r}: use zk://host:port[,host:port]/chroot or file:///absolute/path")
    return "file", path


def check_relays(url: str | None, relays: str | None) -> list[tuple[str, int]]:
    """The relay addresses of `relays` (HOST:PORT[,HOST:PORT]) for the store of `url`, or ValueError
    naming what is wrong."""
    from acsnet.store.relayed import parse_relays

    addresses = parse_relays(relays)
    if addresses and check_store_url(url)[0] != "zk":
        raise ValueError(f"relay {relays!r}: a relay serves a ZooKeeper store (zk://...), and the store is {url or 'the embedded one'}")
    return addresses


def open_store(url: str | None, *, timeout: float = 5.0, relays: str | None = None) -> Store:
    """`relays`: HOST:PORT[,HOST:PORT] of store relays its leaves watches come through (`acsnet.store.relayed`)."""
    kind, location = check_store_url(url)
    if kind == "zk":
        from acsnet.store.zookeeper import ZooKeeperStore

        store = ZooKeeperStore(location, timeout=timeout)
        addresses = check_relays(url, relays)
        if not addresses:
            return store
        from acsnet.store.relayed import RelayedStore

        return RelayedStore(store, addresses, timeout=timeout)
    check_relays(url, relays)
    from acsnet.store.embedded import EmbeddedStore

    return EmbeddedStore(location, timeout=timeout)


__all__ = ["ROOT", "Check", "Create", "Delete", "LeavesChange", "SetValue", "Store", "Versioned", "check_relays", "check_store_url", "encode", "join", "open_store", "read_each"]
