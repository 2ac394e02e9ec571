"""ZooKeeper credentials: with zk://user:password@..., acsnet's nodes are the identity's alone, and the
password appears in no log."""

from __future__ import annotations

import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from acsnet.store import open_store


def test_nodes_are_readable_and_writable_only_with_the_credentials(zookeeper, plugins):
    chroot = f"/acl-{uuid.uuid4().hex[:8]}"
    url = f"zk://acsnet:s3cret-pw@{zookeeper.address}{chroot}"
    store = open_store(url)
    try:
        store.register_host("h1", "test", {})
        assert store.create("/acsnet/thing", b"value")
        assert store.get("/acsnet/thing").value == b"value"
    finally:
        store.close()

    for auth in (None, [("digest", "acsnet:wrong")]):
        other = KazooClient(hosts=zookeeper.address + chroot, auth_data=auth)
        other.start(timeout=10)
        try:
            for action in (lambda: other.get("/acsnet/thing"), lambda: other.set("/acsnet/thing", b"x"),
                           lambda: other.create("/acsnet/intruder"), lambda: other.get_children("/")):
                with pytest.raises(NoAuthError):
                    action()
        finally:
            other.stop()
            other.close()

    ipam = plugins("ipam", "--store", url, "--host-id", "h1")
    status, pool = ipam.client().call("IpamDriver.RequestPool", {"AddressSpace": "acsnet-local", "Pool": "192.0.2.0/24"})
    assert status == 200, pool
    assert "s3cret-pw" not in ipam.log(), "the password reached the log"


def test_credentials_must_name_a_user_and_a_password():
    with pytest.raises(ValueError, match="user:password"):
        open_store("zk://justauser@127.0.0.1:2181/x")


def test_sasl_credentials_protect_the_nodes_too(tmp_path):
    from acsnet.errors import StoreUnavailable
    from acsnet.lab.zookeeper import ZooKeeperServer

    server = ZooKeeperServer(str(tmp_path / "zk"), sasl_users={"acsnet": "sasl-pw"}).start()
    try:
        store = open_store(f"zk://acsnet:sasl-pw@{server.address}/sasl?auth=sasl")
        try:
            store.register_host("h1", "test", {})
            assert store.create("/acsnet/thing", b"value") and store.host_alive("h1")
        finally:
            store.close()
        anonymous = KazooClient(hosts=server.address + "/sasl")
        anonymous.start(timeout=10)
        try:
            with pytest.raises(NoAuthError):
                anonymous.get("/acsnet/thing")
        finally:
            anonymous.stop()
            anonymous.close()
        impostor = open_store(f"zk://acsnet:wrong@{server.address}/sasl?auth=sasl", timeout=2)
        try:
            with pytest.raises(StoreUnavailable, match="authentication failed: check the user and password"):
                impostor.get("/acsnet/thing")
        finally:
            impostor.close()
    finally:
        server.stop()


@pytest.mark.parametrize("url, message", [
    ("zk://127.0.0.1:2181/x?auth=sasl", "auth=sasl needs user:password@"),
    ("zk://a:b@127.0.0.1:2181/x?auth=kerberos", "auth=digest or auth=sasl"),
])
def test_bad_auth_options_are_refused(url, message):
    with pytest.raises(ValueError, match=message):
        open_store(url)
