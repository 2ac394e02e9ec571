"""One persistent OVSDB connection per process: python-ovs's IDL, run by a thread of its own.

`ovs-vsctl` forked per call costs more than the work, and more as the host grows: it downloads the
bridges, ports and interfaces each time (measured against a private ovsdb-server: `add-port` 8.8 ms
with an empty database, 60 ms with 1,000 ports, 169 ms with 2,000). The IDL keeps a replica of the
four tables acsnet reads, kept current by the server's updates, so a read is a lookup and a change
is one `transact` round trip (benchmarks/controlplane.py measures both).

One connection per process and remote (`connection`): its thread runs the IDL, reconnecting when
ovsdb-server restarts; every `Ovsdb` of the process shares it. Request threads read the replica and
compose transactions under its lock. A process forked after using it (gunicorn's worker) makes its
own: an IDL's thread does not survive a fork. What acsnet does with OVSDB is `acsnet.ovsctl.ovsdb`.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from typing import Callable

import ovs.jsonrpc
import ovs.poller
import ovs.stream
from ovs.db import idl as ovs_idl

from acsnet.errors import DatapathError

log = logging.getLogger(__name__)

DATABASE = "Open_vSwitch"
# What is replicated: only the columns acsnet reads or writes. Interface statistics (rewritten by
# ovs-vswitchd every 5 s for every port) would otherwise stream into every plugin.
COLUMNS = {
    "Open_vSwitch": ["bridges", "next_cfg", "cur_cfg", "other_config"],
    "Bridge": ["name", "ports", "datapath_type", "fail_mode", "external_ids", "other_config"],
    "Port": ["name", "interfaces", "tag", "external_ids"],
    "Interface": ["name", "type", "options", "external_ids", "ofport", "mac_in_use", "mac"],
}
RECONNECT_BACKOFF_MS = (1000, 2000)  # python-ovs's floor; its default ceiling (8 s) is long for a restart
SCHEMA_RETRY_SECONDS = 0.5

Tables = dict  # the IDL's tables: name -> table, whose .rows maps uuid -> Row


class OvsdbConnection:
    """One IDL replica of a remote's Open_vSwitch database and the thread that keeps it current."""

    def __init__(self, remote: str):
        self.remote = remote
        self.pid = os.getpid()
        self._lock = threading.Condition(threading.RLock())  # the replica and transactions; notified after each run
        self._idl: ovs_idl.Idl | None = None
        self._problem = "not connected yet"
        self._closed = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="ovsdb-idl", daemon=True)
        self._thread.start()

    # -- the IDL's thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed:
            if self._idl is None and not self._open():
                self._sleep(SCHEMA_RETRY_SECONDS)
                continue
            poller = ovs.poller.Poller()
            with self._lock:
                self._idl.run()
                self._lock.notify_all()
                self._idl.wait(poller)
            poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
            poller.block()
            self._drain_wake()
        with self._lock:
            if self._idl is not None:
                self._idl.close()
        # The wake pipe is close()'s to close, once this thread is gone: closed here, close()'s own
        # write to it could land on a descriptor the process has reused meanwhile.

    def _open(self) -> bool:
        try:
            helper = ovs_idl.SchemaHelper(schema_json=fetch_schema(self.remote))
        except (OSError, DatapathError) as e:
            self._problem = str(e)
            return False
        for table, columns in COLUMNS.items():
            helper.register_columns(table, columns)
        idl = ovs_idl.Idl(self.remote, helper)
        session = getattr(idl, "_session", None)  # python-ovs has no public setter for it
        if session is not None and hasattr(session, "reconnect"):
            session.reconnect.set_backoff(*RECONNECT_BACKOFF_MS)
        with self._lock:
            self._idl = idl
        return True

    def _sleep(self, seconds: float) -> None:
        poller = ovs.poller.Poller()
        poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
        poller.timer_wait(int(seconds * 1000))
        poller.block()
        self._drain_wake()

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # the pipe is full: the thread wakes anyway
            pass
        except OSError:
            if not self._closed:  # closed meanwhile: nothing to wake
                raise

    def close(self) -> None:
        self._closed = True
        self._wake()
        self._thread.join(timeout=5)
        if not self._thread.is_alive():  # else it still polls the pipe: leave it open
            os.close(self._wake_r)
            os.close(self._wake_w)

    # -- for request threads ---------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Connected, with the database's contents received (a replica that is current)."""
        idl = self._idl
        return (idl is not None and idl._session.is_connected()  # noqa: SLF001 (no public accessor)
                and idl.state == ovs_idl.Idl.IDL_S_MONITORING)

    @property
    def ever_ready(self) -> bool:
        idl = self._idl
        return idl is not None and idl.has_ever_connected()

    def wait_ready(self, seconds: float) -> bool:
        """Whether the replica is current, waiting up to `seconds` for it (no round trip)."""
        deadline = time.monotonic() + seconds
        with self._lock:
            while not self.ready and time.monotonic() < deadline:
                self._lock.wait(min(deadline - time.monotonic(), 0.1))
        return self.ready

    def _wait_ready(self, deadline: float) -> ovs_idl.Idl:
        """Under the lock: the IDL once it is ready, or a DatapathError at the deadline."""
        while not self.ready:
            left = deadline - time.monotonic()
            if left <= 0 or self._closed:
                raise DatapathError(f"OVSDB at {self.remote} is not reachable ({self._problem_now()})")
            self._lock.wait(min(left, 0.5))
        return self._idl

    def _problem_now(self) -> str:
        if self._idl is not None:
            return "the connection is down; reconnecting"
        return self._problem

    def read(self, query: Callable[[Tables], object], timeout: float):
        """`query` on the replica, once it is current."""
        with self._lock:
            return query(self._wait_ready(time.monotonic() + timeout).tables)

    def transact(self, change: Callable[["Change"], None], *, timeout: float, wait: bool = True) -> None:
        """Commit what `change` makes; with `wait` (ovs-vsctl's default), return once ovs-vswitchd has
        applied it too (its ports have their OpenFlow numbers: flows may name them). A change that
        changes nothing sends nothing."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                idl = self._wait_ready(deadline)
                seqno = idl.change_seqno
                txn = ovs_idl.Transaction(idl)
                try:
                    built = Change(idl, txn)
                    change(built)
                except BaseException:
                    txn.abort()
                    raise
                if not built.changed:
                    txn.abort()
                    return
                switch = next(iter(idl.tables["Open_vSwitch"].rows.values()), None)
                if wait and switch is not None:
                    switch.increment("next_cfg")
                txn.commit()
            self._wake()  # the thread flushes what the commit queued, and reads the reply
            with self._lock:
                status = txn.commit()  # the reply may have come in between: then this is its status
                while status == txn.INCOMPLETE:
                    self._wait_until(deadline, "commit")
                    status = txn.commit()
                if status in (txn.SUCCESS, txn.UNCHANGED):
                    if wait and switch is not None and status == txn.SUCCESS:
                        self._wait_for_vswitchd(txn.get_increment_new_value(), deadline)
                    return
                if status != txn.TRY_AGAIN:
                    raise DatapathError(f"OVSDB at {self.remote} refused the change: {txn.get_error()}")
                # the connection dropped or a verify failed: compose it again on the next replica
                while self._idl.change_seqno == seqno:
                    self._wait_until(deadline, "commit")

    def _wait_until(self, deadline: float, what: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DatapathError(f"OVSDB at {self.remote} did not {what} in time ({self._problem_now() if not self.ready else 'no answer'})")
        self._lock.wait(min(left, 0.5))

    def _wait_for_vswitchd(self, next_cfg: int, deadline: float) -> None:
        while True:
            switch = next(iter(self._idl.tables["Open_vSwitch"].rows.values()), None)
            if switch is not None and switch.cur_cfg >= next_cfg:
                return
            if time.monotonic() >= deadline:
                raise DatapathError(f"ovs-vswitchd did not apply a change to OVSDB at {self.remote} in time (is it running?)")
            self._lock.wait(min(deadline - time.monotonic(), 0.5))


class Change:
    """A transaction being composed: writes only what differs, so a change that finds everything in
    place is no transaction at all."""

    def __init__(self, idl: ovs_idl.Idl, txn: ovs_idl.Transaction):
        self.idl = idl
        self.tables = idl.tables
        self.txn = txn
        self.changed = False

    def find(self, table: str, name: str):
        """The row of a Bridge, Port or Interface by its name, or None (`row_named`)."""
        return row_named(self.tables, table, name)

    def insert(self, table: str):
        self.changed = True
        return self.txn.insert(self.tables[table])

    def set(self, row, column: str, value) -> None:
        if _current(row, column, None) != value:
            setattr(row, column, value)
            self.changed = True

    def set_keys(self, row, column: str, values: dict[str, str]) -> None:
        current = _current(row, column, {})
        for key, value in values.items():
            if current.get(key) != value:
                row.setkey(column, key, value)
                self.changed = True

    def add_to(self, row, column: str, member) -> None:
        row.addvalue(column, member)
        self.changed = True

    def remove_from(self, row, column: str, member) -> None:
        row.delvalue(column, member)
        self.changed = True


def row_named(tables: Tables, table: str, name: str):
    """The row of a Bridge, Port or Interface by its name, or None: through an index on the name (a
    scan of 2,000 ports, each name decoded from its datum, took ~25 ms). Under the connection's lock."""
    rows = tables[table].rows
    index = rows.indexes.get("name")
    if index is None:  # first use, or python-ovs 3.0 made the table's rows anew (indexes lost) on a reconnect
        index = rows.index_create("name")
        index.add_column("name")
        for row in rows.values():
            index.add(row)
    entry = rows.IndexEntry(name=name)
    return next(iter(index.irange(entry, entry)), None)


def _current(row, column: str, unset):
    """A column's value; `unset` for a row inserted by this transaction that has none yet."""
    try:
        return getattr(row, column)
    except AttributeError:
        return unset


def fetch_schema(remote: str, timeout_ms: int = 5000) -> dict:
    """The server's Open_vSwitch schema (the IDL needs it before it connects)."""
    error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote), timeout_ms)
    if error:
        raise DatapathError(f"cannot connect to OVSDB at {remote}: {os.strerror(error) if error > 0 else error}")
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        error, reply = rpc.transact_block(ovs.jsonrpc.Message.create_request("get_schema", [DATABASE]))
    finally:
        rpc.close()
    if error or reply is None or reply.type != ovs.jsonrpc.Message.T_REPLY:
        reason = os.strerror(error) if error else (reply.error if reply is not None else errno.errorcode.get(error))
        raise DatapathError(f"OVSDB at {remote} did not give its schema: {reason}")
    return reply.result


_connections: dict[str, OvsdbConnection] = {}
_connections_lock = threading.Lock()


def connection(remote: str) -> OvsdbConnection:
    """This process's connection to `remote`, made at first use (again after a fork)."""
    with _connections_lock:
        found = _connections.get(remote)
        if found is None or found.pid != os.getpid():
            found = _connections[remote] = OvsdbConnection(remote)
        return found


def forget_connection(remote: str) -> None:
    """Close this process's connection to `remote` (the next use makes a new one)."""
    with _connections_lock:
        found = _connections.pop(remote, None)
    if found is not None and found.pid == os.getpid():
        found.close()
