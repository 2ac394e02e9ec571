"""Open a store from its URL: `zk://h1:2181,h2:2181/chroot` for ZooKeeper, `file:///path/db` (or a plain
path) for the embedded single-host store."""

from __future__ import annotations

import ssl

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


def check_relays(settings: dict) -> tuple[list[tuple[str, int]], ssl.SSLContext | None]:
    """The relays a plugin's settings name (`relay`, HOST:PORT[,HOST:PORT]) and the TLS to them
    (`relay_tls_*`), or ValueError naming what is wrong."""
    from acsnet.store.relayed import client_tls, parse_relays

    addresses = parse_relays(settings.get("relay"))
    if addresses and check_store_url(settings.get("store"))[0] != "zk":
        raise ValueError(f"relay {settings['relay']!r}: a relay serves a ZooKeeper store (zk://...), and the store is "
                         f"{settings.get('store') or 'the embedded one'}")
    return addresses, client_tls(settings.get("relay_tls_cert"), settings.get("relay_tls_key"), settings.get("relay_tls_ca"))


def open_store(url: str | None, *, timeout: float = 5.0, settings: dict | None = None) -> Store:
    """`settings`: a plugin's, whose `relay` (and `relay_tls_*`) name the store relays its leaves
    watches come through (`acsnet.store.relayed`)."""
    relays, tls = check_relays({**(settings or {}), "store": url})
    kind, location = check_store_url(url)
    if kind == "zk":
        from acsnet.store.zookeeper import ZooKeeperStore

        store = ZooKeeperStore(location, timeout=timeout)
        if not relays:
            return store
        from acsnet.store.relayed import RelayedStore

        return RelayedStore(store, relays, timeout=timeout, tls=tls)
    from acsnet.store.embedded import EmbeddedStore

    return EmbeddedStore(location, timeout=timeout)


__all__ = ["ROOT", "Check", "Create", "Delete", "LeavesChange", "SetValue", "Store", "Versioned", "check_relays", "check_store_url", "encode", "join", "open_store", "read_each"]
