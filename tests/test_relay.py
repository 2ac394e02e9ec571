"""The store relay (`acsnet.store.relay`, run as its own process, as an operator runs it) against a real
ZooKeeper, and a host's relayed store (`acsnet.store.relayed`): leaves watches come through the relay
with the records' values, everything else through the host's own session; a relay that goes or refuses
leaves the watch to the host's session, and it comes back to the relay when the relay does."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from acsnet.ipam.state import PoolRecords
from acsnet.plugins.segments import state
from acsnet.plugins.segments.model import LAYOUTS, SegmentRecord
from acsnet.store.liveness import LIVE, LiveSessions
from acsnet.store.relayed import RelayedStore, client_tls, parse_relays
from acsnet.store.zookeeper import ZooKeeperStore
from tests.test_agent_recording_datapath import VNI, Cluster, endpoint, two_hosts_h2_following
from tests.test_metrics_tls import pki as _pki
from tests.test_store import names_followed, wait_for

SEGMENT = LAYOUTS["vxlan"].segment(VNI)
pki = pytest.fixture(_pki.__wrapped__, name="pki")  # test_metrics_tls's CA, relay and host certificates


def relay_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "acsnet.cli", "relay", *args]


class RelayProcess:
    """`acsnet relay` on loopback (plain TCP, `--insecure`, unless `tls` gives its --tls-* flags); stopped by its pid."""

    def __init__(self, store_url: str, port: int = 0, tls: tuple[str, ...] = ("--insecure",)):
        self.store_url = store_url
        self.process = subprocess.Popen(relay_command("--store", store_url, "--listen", f"127.0.0.1:{port}",
                                                      "--log-level", "warning", *tls),
                                        stdout=subprocess.PIPE, text=True)
        said = self.process.stdout.readline().split()
        assert said[:1] == ["listening"], f"the relay said {said!r}"
        host, port = said[1].rsplit(":", 1)
        self.address = (host, int(port))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def relay(zk_url):
    started = RelayProcess(zk_url)
    yield started
    started.kill()


class ReadsCounted(ZooKeeperStore):
    """The real ZooKeeper store, counting the record reads made through it (spied, not faked)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read_paths: list[str] = []

    def get_many(self, paths):
        self.read_paths += list(paths)
        return super().get_many(paths)

    def get(self, path):
        self.read_paths.append(path)
        return super().get(path)


def relayed(zk_url: str, relay: RelayProcess, tls=None) -> RelayedStore:
    return RelayedStore(ReadsCounted(zk_url, timeout=5.0), [relay.address], timeout=5.0, tls=tls)


def test_a_relayed_leaves_watch_reports_each_record_made_and_deleted_with_its_value_and_the_host_reads_none(zk_url, relay):
    writer = ZooKeeperStore(zk_url, timeout=5.0)
    host = relayed(zk_url, relay)
    try:
        writer.create(SEGMENT + "/10.42.0.1~a", b'{"one": 1}')
        wait_for(lambda: host.relay_connected, what="the relay connected")
        changes, reported = [], []
        follow = names_followed(reported)
        host.watch_leaves(SEGMENT, lambda change: (changes.append(change), follow(change))[1])
        assert changes[0].names == {"10.42.0.1~a"} and changes[0].values == {"10.42.0.1~a": b'{"one": 1}'}
        writer.create(SEGMENT + "/10.42.0.2~b", "{\"two\": \"\u00e9\"}".encode())
        writer.delete(SEGMENT + "/10.42.0.1~a")
        wait_for(lambda: reported[-1] == ["10.42.0.2~b"], what="the relay's changes")
        made = [c for c in changes[1:] if c.made]
        assert made and made[0].values == {"10.42.0.2~b": "{\"two\": \"\u00e9\"}".encode()}, "the value, byte for byte"
        assert all(c.names is None for c in changes[1:]), "after the whole list, each change alone"
        assert not [p for p in host.direct.read_paths if p.startswith(SEGMENT)], "no record read by the host"
        assert SEGMENT not in host.direct.watched_paths() and SEGMENT in host.watched_paths()
        # Everything else is the host's own session.
        assert host.commit([]) is True and host.get(SEGMENT + "/10.42.0.2~b").value.startswith(b'{"two"')
    finally:
        host.close()
        writer.close()


def test_the_relay_sends_the_live_list_changes_of_a_second_in_one_line_and_a_segments_of_20_ms(zk_url, relay):
    """Five plugins starting 0.1 s apart reach a host in one or two lines (the relay holds the live list's
    changes for a second); five records made beside them, in about five; a record deleted and another
    made at once, in one."""
    writer = ZooKeeperStore(zk_url, timeout=5.0)
    host = relayed(zk_url, relay)
    try:
        wait_for(lambda: host.relay_connected, what="the relay connected")
        live, segment = [], []
        host.watch_leaves(LIVE, live.append)
        host.watch_leaves(SEGMENT, segment.append)
        for n in range(5):
            LiveSessions.write(writer, f"h{n}", "vxlan")
            writer.create(SEGMENT + f"/10.42.0.{n}~e{n}", b"{}")
            time.sleep(0.1)
        wait_for(lambda: sum(len(c.made) for c in live[1:]) == 5, timeout=5, what="the live list's five changes")
        wait_for(lambda: sum(len(c.made) for c in segment[1:]) == 5, what="the segment's five records")
        assert len(live[1:]) <= 2, [sorted(c.made) for c in live[1:]]
        assert len(segment[1:]) >= 4, [sorted(c.made) for c in segment[1:]]
        # A container replaced: its record deleted and a new one made at once, one line (held 20 ms).
        lines = len(segment)
        writer.delete(SEGMENT + "/10.42.0.0~e0")
        writer.create(SEGMENT + "/10.42.0.0~f0", b"{}")
        wait_for(lambda: any("10.42.0.0~f0" in c.made for c in segment[lines:]), what="the replacement")
        time.sleep(0.2)
        assert [(c.deleted, c.made) for c in segment[lines:]] == [(("10.42.0.0~e0",), ("10.42.0.0~f0",))]
    finally:
        host.close()
        writer.close()


def test_a_relayed_watch_whose_callback_returns_false_ends_and_the_relay_stops_sending_it(zk_url, relay):
    writer = ZooKeeperStore(zk_url, timeout=5.0)
    host = relayed(zk_url, relay)
    try:
        wait_for(lambda: host.relay_connected, what="the relay connected")
        reported, keep_going = [], [True]
        host.watch_leaves(SEGMENT, names_followed(reported, lambda: keep_going[0]))
        keep_going[0] = False
        writer.create(SEGMENT + "/a", b"1")
        wait_for(lambda: reported[-1:] == [["a"]], what="the change that ends it")
        wait_for(lambda: SEGMENT not in host.watched_paths(), what="the watch ended")
        writer.create(SEGMENT + "/b", b"2")
        host.watch_leaves(LIVE, names_followed([]))  # a line through the relay after the forget
        assert reported == [[], ["a"]], "nothing after the callback said it was done"
    finally:
        host.close()
        writer.close()


def test_a_relayed_watch_goes_to_the_store_when_the_relay_dies_and_back_when_it_returns_missing_no_change(zk_url):
    relay = RelayProcess(zk_url)
    writer = ZooKeeperStore(zk_url, timeout=5.0)
    host = relayed(zk_url, relay)
    try:
        wait_for(lambda: host.relay_connected, what="the relay connected")
        reported = []
        host.watch_leaves(SEGMENT, names_followed(reported))
        writer.create(SEGMENT + "/a", b"1")
        wait_for(lambda: reported[-1] == ["a"], what="the relay's first change")

        port = relay.address[1]
        relay.kill()
        wait_for(lambda: SEGMENT in host.direct.watched_paths(), what="the watch moved to the host's session")
        assert not host.relay_connected and host.relay_peer is None
        writer.create(SEGMENT + "/b", b"2")
        writer.delete(SEGMENT + "/a")
        wait_for(lambda: reported[-1] == ["b"], what="changes while the relay is away, through the store")

        relay = RelayProcess(zk_url, port)  # back on the same address
        wait_for(lambda: host.relay_connected, timeout=10, what="the relay connected again")
        assert host.relay_peer == "127.0.0.1:%d" % port  # what the plugin's /healthz shows
        wait_for(lambda: SEGMENT in host.watched_paths() and host._follows[SEGMENT].source == "relayed",
                 what="the watch back on the relay")
        writer.create(SEGMENT + "/c", b"3")
        writer.delete(SEGMENT + "/b")
        wait_for(lambda: reported[-1] == ["c"], what="changes through the relay again")
        # The direct watch ended at its first report after the move (it was told it is no longer wanted).
        wait_for(lambda: SEGMENT not in host.direct.watched_paths(), what="the direct watch ended")
        writer.create(SEGMENT + "/d", b"4")
        wait_for(lambda: reported[-1] == ["c", "d"], what="the next change")
        assert [p for p in host.direct.read_paths if p.startswith(SEGMENT)] == [], \
            "the direct watch's names alone are reported; values are read by whoever wants them"
    finally:
        host.close()
        writer.close()
        relay.kill()


def test_the_relay_answers_a_bad_line_and_a_path_it_does_not_serve_with_an_error_and_serves_on(zk_url, relay):
    writer = ZooKeeperStore(zk_url, timeout=5.0)
    try:
        writer.create(SEGMENT + "/x", b"v")
        with socket.create_connection(relay.address, timeout=5) as sock, sock.makefile("rb") as lines:
            assert json.loads(lines.readline()) == {"relay": "acsnet"}, "it says it is a relay first"
            sock.sendall(b"not json\n")
            assert "bad line" in json.loads(lines.readline())["error"]
            pools = PoolRecords.key("p").rsplit("/", 1)[0]  # the IPAM's pools: not a relay's to serve
            sock.sendall(json.dumps({"follow": pools}).encode() + b"\n")
            refused = json.loads(lines.readline())
            assert refused["path"] == pools and "not a path a relay follows" in refused["error"]
            sock.sendall(b'{"follow": 7}\n')
            assert "not a path" in json.loads(lines.readline())["error"]
            sock.sendall(json.dumps({"follow": SEGMENT}).encode() + b"\n")
            assert json.loads(lines.readline()) == {"path": SEGMENT, "names": {"x": "v"}}
            sock.sendall(json.dumps({"follow": LIVE}).encode() + b"\n")
            assert json.loads(lines.readline())["path"] == LIVE
    finally:
        writer.close()


def test_a_relayed_store_watches_a_path_the_relay_refuses_through_its_own_session_at_once(zk_url, relay):
    host = relayed(zk_url, relay)
    try:
        wait_for(lambda: host.relay_connected, what="the relay connected")
        reported = []
        started = time.monotonic()
        host.watch_leaves("/acsnet/other/leaves", names_followed(reported))
        assert time.monotonic() - started < 2, "the refusal is answered, not waited out"
        assert reported == [[]] and "/acsnet/other/leaves" in host.direct.watched_paths()
    finally:
        host.close()


def test_the_relay_command_refuses_a_bad_store_address_or_plain_tcp_naming_it():
    for args, said in ((("--store", "file:///tmp/x.db", "--insecure"), "serves a ZooKeeper store"),
                       (("--store", "zk://127.0.0.1:1/x", "--listen", "127.0.0.1:99999", "--insecure"), "port must be a number"),
                       (("--store", "zk://127.0.0.1:1/x"), "a TCP listener needs --tls-cert, --tls-key and --tls-ca, or --insecure"),
                       (("--store", "zk://127.0.0.1:1/x", "--tls-cert", "/nonexistent.pem", "--tls-ca", "/nonexistent.pem"),
                        "No such file")):
        refused = subprocess.run(relay_command(*args), capture_output=True, text=True, timeout=60)
        assert refused.returncode in (1, 2) and said in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert parse_relays("10.0.0.5:7405, 10.0.0.6") == [("10.0.0.5", 7405), ("10.0.0.6", 7405)]
    with pytest.raises(ValueError, match="port"):
        parse_relays("10.0.0.5:x")


def relayed_cluster(zk_url: str, relay: RelayProcess) -> Cluster:
    """Agents whose stores follow through `relay` (each connected before its agent starts)."""
    def open_host_store(host):
        store = relayed(zk_url, relay)
        wait_for(lambda: store.relay_connected, what="the relay connected")
        return store

    return Cluster(zk_url, open_host_store=open_host_store)


def test_agents_on_relayed_stores_program_each_others_endpoints_without_reading_a_record(zk_url, relay):
    """The segment agent on a relayed store: another host's endpoint comes into its table with the value
    the relay handed over, and goes; its own session reads none of the segment's records."""
    cluster = relayed_cluster(zk_url, relay)
    try:
        h1, h2 = two_hosts_h2_following(cluster)
        first = endpoint(1)
        h1.add_endpoint(first)
        remote = f"remote segment={VNI} ip=10.42.0.1 mac={first.mac} host=h1 vtep=192.0.2.1"
        wait_for(lambda: remote in cluster.switches["h2"].flows, what="h1's endpoint in h2's table")
        assert f"remote segment={VNI} ip=10.42.0.9" in "\n".join(cluster.switches["h1"].flows)
        h1.remove_endpoint(first.endpoint_id)
        wait_for(lambda: remote not in cluster.switches["h2"].flows, what="h1's endpoint gone from h2's table")
        segment_reads = [p for p in cluster.stores["h2"].direct.read_paths if p.startswith(SEGMENT + "/")]
        assert segment_reads == [], f"h2 read {segment_reads}"
        assert state.read_segment_records(cluster.stores["h2"], LAYOUTS["vxlan"], VNI).keys() == {f"10.42.0.9~{'09' * 6}"}
    finally:
        cluster.close()


@contextlib.contextmanager
def a_host_seen_by_its_record_before_the_held_list(zk_url: str, relay: RelayProcess):
    """h1 and h2 on relayed stores, h2 following the live list through the relay (h1 has an endpoint on
    h2's segment), no hold of the list running. Then h3 registers and has a record on the segment at
    once (its own session, no agent: nothing that follows the list anew, which would have the relay
    send it at once): h2 has the record 20 ms later, the list's line naming h3 up to a second later
    (the relay holds it). Yields (cluster, h2's store, h3's store, h3's route as h2's table has it)
    once h3's endpoint is in h2's table, before the list names h3."""
    cluster = relayed_cluster(zk_url, relay)
    h3 = ZooKeeperStore(zk_url, timeout=5.0)
    try:
        h1, _h2 = two_hosts_h2_following(cluster)
        h1.add_endpoint(endpoint(1))
        wait_for(lambda: any("ip=10.42.0.1 " in f for f in cluster.switches["h2"].flows), what="h1's endpoint on h2")
        time.sleep(1.5)  # no hold of the list running
        third = endpoint(3)
        h3.register_host("h3", "vxlan", {"host_id": "h3"})
        record = SegmentRecord("h3", "02:00:00:00:01:03", "192.0.2.3", third.ip, third.mac, third.endpoint_id)
        assert state.write_segment_record(h3, LAYOUTS["vxlan"], VNI, record)
        remote = f"remote segment={VNI} ip=10.42.0.3 mac={third.mac} host=h3 vtep=192.0.2.3"
        wait_for(lambda: remote in cluster.switches["h2"].flows, timeout=0.8, what="h3's endpoint in h2's table, "
                 "before the held list names h3")
        yield cluster, cluster.stores["h2"], h3, remote
    finally:
        h3.close()
        cluster.close()


def test_a_host_seen_by_its_record_before_the_held_live_list_names_it_gets_no_watch_of_its_own(zk_url, relay):
    """h2 finds h3's session in the list in the store, takes h3 as alive (its endpoint in h2's table
    before the list names it) and sets no watch of h3's own sessions: one set in that lag stayed for the
    agent's life. h3's death still takes its endpoint out of h2's table, through the list."""
    with a_host_seen_by_its_record_before_the_held_list(zk_url, relay) as (cluster, h2_store, h3, remote):
        time.sleep(1.5)  # the list has named h3 since
        own_watches = [p for p in h2_store.watched_paths() if "/h3/" in p]
        assert own_watches == [], own_watches
        h3.close()
        wait_for(lambda: remote not in cluster.switches["h2"].flows, what="h3's endpoint out of h2's table")


def test_a_host_taken_as_alive_before_the_list_named_it_that_dies_unheard_is_withdrawn_at_the_recheck(zk_url, relay):
    """As above, but h3's session ends within the relay's hold of the list: the relay sends neither its
    coming nor its going (made and gone before a line), so no list line ever names h3. h2, which took h3
    as alive from the list in the store, reads it again at its periodic reconcile and withdraws it."""
    with a_host_seen_by_its_record_before_the_held_list(zk_url, relay) as (cluster, _h2_store, h3, remote):
        h3.close()  # within the hold
        time.sleep(1.5)
        assert remote in cluster.switches["h2"].flows  # nothing said h3 went
        cluster.agents["h2"].reconcile()
        wait_for(lambda: remote not in cluster.switches["h2"].flows, what="h3's endpoint out of h2's table")


def test_acsnet_serve_refuses_a_bad_relay_option_naming_it_before_it_serves(tmp_path):
    """`--relay` (ACSNET_RELAY, relay = in the config file): a bad address, or a relay for the embedded
    store, is refused in a line before the plugin's socket is made."""
    for relay_option, store_url, said in (("10.0.0.5:port", "zk://127.0.0.1:1/x", "port must be a number"),
                                          ("10.0.0.5:7405", f"file://{tmp_path}/store.db", "serves a ZooKeeper store")):
        refused = subprocess.run([sys.executable, "-m", "acsnet.cli", "serve", "vxlan", "--store", store_url, "--relay",
                                  relay_option, "--plugin-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and said in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
        assert os.listdir(tmp_path) == [], "no socket made"


def test_a_relay_on_tls_serves_the_hosts_with_a_certificate_of_its_ca_and_no_other(zk_url, pki):
    """As every TCP listener of acsnet: TLS, and a certificate from each host. A host with one of the
    CA's certificates is served; one without TLS, or without a certificate, is not, and follows its
    segments on its own session instead (so it loses nothing but the relay)."""
    relay = RelayProcess(zk_url, tls=("--tls-cert", f"{pki}/server.pem", "--tls-key", f"{pki}/server.key",
                                      "--tls-ca", f"{pki}/ca.pem"))
    writer = ZooKeeperStore(zk_url, timeout=5.0)
    hosts = []
    try:
        writer.create(SEGMENT + "/a", b"1")
        trusted = client_tls(f"{pki}/client.pem", f"{pki}/client.key", f"{pki}/ca.pem")
        no_certificate = ssl.create_default_context(cafile=f"{pki}/ca.pem")
        for tls in (trusted, None, no_certificate):
            hosts.append(relayed(zk_url, relay, tls))
        assert hosts[0].relay_answered(timeout=10)
        reported = []
        hosts[0].watch_leaves(SEGMENT, names_followed(reported))
        assert reported == [["a"]] and SEGMENT not in hosts[0].direct.watched_paths()
        for refused in hosts[1:]:
            assert not refused.relay_answered(timeout=2)
            also = []
            refused.watch_leaves(SEGMENT, names_followed(also))
            assert also == [["a"]] and SEGMENT in refused.direct.watched_paths()
        with pytest.raises(ValueError, match="needs all of"):
            client_tls(f"{pki}/client.pem", None, f"{pki}/ca.pem")
    finally:
        for host in hosts:
            host.close()
        writer.close()
        relay.kill()
