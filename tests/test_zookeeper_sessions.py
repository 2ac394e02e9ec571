"""ZooKeeper sessions: what the store does when one expires."""

from __future__ import annotations

import time

from acsnet.store import open_store
from acsnet.store.liveness import SESSION_LAYOUTS, HostSessions, LiveSessions
from tests.test_store import wait_for

def test_zookeeper_liveness_is_registered_again_after_a_session_expiry(zk_url):
    """The client loses its session (kazoo's own test hook: the server still holds the old session until
    it times out, with the old liveness node). The store registers again under the new session, and the
    old session's expiry on the server must not take the new registration with it."""
    from kazoo.protocol.connection import _SESSION_EXPIRED

    store = open_store(zk_url)
    try:
        store.register_host("h9", "test", {})
        (name,) = HostSessions.read_all(store, "h9")
        old_session = store._client.client_id[0]

        def owner():
            """The session owning both of the registration's nodes (the list's and the per-host one)."""
            try:
                owners = {store._client.exists(layout.key("h9", name)).ephemeralOwner for layout in SESSION_LAYOUTS}
            except Exception:
                return None
            return owners.pop() if len(owners) == 1 else None

        assert owner() == old_session
        store._client._call(_SESSION_EXPIRED, None)
        wait_for(lambda: store.connected and store._client.client_id[0] != old_session, timeout=15, what="a new session")
        wait_for(lambda: owner() == store._client.client_id[0], timeout=15, what="liveness under the new session")
        time.sleep(12)  # past the old session's timeout on the server
        assert store.host_alive("h9") and owner() == store._client.client_id[0]
        assert LiveSessions.read_all(store) == {"h9": [name]}
    finally:
        store.close()


def test_liveness_that_could_not_be_registered_is_registered_once_the_connection_is_back_in_the_same_session(tmp_path):
    """A plugin that starts while ZooKeeper is away (or whose registration is cut by a dropped connection)
    logs it and serves on (acsnet/composition.py). Its session outlives a short outage, so no new session
    comes to register it again: the registration waits for the connection instead. Until it is made, every
    other host reads this one as dead and leaves its containers out of their flows."""
    from acsnet.errors import StoreUnavailable
    from acsnet.lab.zookeeper import ZooKeeperServer

    server = ZooKeeperServer(str(tmp_path / "zookeeper")).start()
    try:
        store = open_store(f"zk://{server.address}/live", timeout=3.0)
        try:
            session = store._client.client_id[0]
            server.stop()
            wait_for(lambda: not store.connected, timeout=15, what="the store seeing the outage")
            try:
                store.register_host("h7", "vxlan", {"host_id": "h7"})
                raise AssertionError("registered with no server")
            except StoreUnavailable:
                pass
            server.start()
            wait_for(lambda: store.connected, timeout=30, what="the connection back")
            assert store._client.client_id[0] == session, "the same session: nothing expired"
            wait_for(lambda: store.host_alive("h7"), timeout=10, what="the host registered alive")
            assert list(LiveSessions.read_all(store)) == ["h7"]
        finally:
            store.close()
    finally:
        server.stop()
