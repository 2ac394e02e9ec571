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


def open_store(url: str | None, *, timeout: float = 5.0) -> Store:
    kind, location = check_store_url(url)
    if kind == "zk":
        from acsnet.store.zookeeper import ZooKeeperStore

        return ZooKeeperStore(location, timeout=timeout)
    from acsnet.store.embedded import EmbeddedStore

    return EmbeddedStore(location, timeout=timeout)


__all__ = ["ROOT", "Check", "Create", "Delete", "LeavesChange", "SetValue", "Store", "Versioned", "check_store_url", "encode", "join", "open_store", "read_each"]
