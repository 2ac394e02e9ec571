"""IP retention in the IPAM, on a real store (both backends): an address recorded for an application stays
out of dynamic allocation whatever the order of the front's record and dockerd's release."""

from __future__ import annotations

import netaddr
import pytest

from acsnet.ipam import retention
from acsnet.ipam.model import ENDPOINT, RETAINED
from acsnet.ipam.state import AddressRecords, Retentions
from acsnet.docker_api import parse_docker_address
from acsnet.front.proxy import Front
from acsnet.store import open_store
from tests.test_ipam_driver import hosts, mac, pool_request, release, request  # noqa: F401 (hosts: a fixture)

SUBNET = "192.0.2.0/29"  # six host addresses: .1 to .6


def take(ipam, pool_id, address="", options=None) -> str:
    """An address (without its prefix length) from the IPAM, as dockerd asks for one."""
    return request(ipam, pool_id, address, options).split("/")[0]


def mac_of(n: int) -> str:
    return mac(n)["com.docker.network.endpoint.macaddress"]


@pytest.fixture
def front_store(store_url):
    """The front's own store session (it is another process than the IPAM)."""
    s = open_store(store_url)
    yield s
    s.close()


def record(store, pool_id, address):
    found = AddressRecords.read(store, pool_id, str(address))
    return None if found is None else found.to_json()


def dynamic(ipam, pool_id, count, first_mac=100) -> list[str]:
    return [take(ipam, pool_id, options=mac(first_mac + i)) for i in range(count)]


def test_recorded_while_in_use_then_released(hosts, front_store):
    h1 = hosts("h1")
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    address = take(h1, pool, options=mac(1))
    assert retention.remember(front_store, "web", 3600, netaddr.IPAddress(address), mac_of(1))
    assert record(front_store, pool, address)["kind"] == ENDPOINT
    release(h1, pool, address)
    assert record(front_store, pool, address)["kind"] == RETAINED
    assert address not in dynamic(h1, pool, 5)  # every other address of the pool, never this one
    assert retention.retained(front_store, "web", [SUBNET]) == [address]


def test_released_before_it_was_recorded(hosts, front_store):
    """dockerd released the address (the container went at once) before the front wrote its record."""
    h1 = hosts("h1")
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    address = take(h1, pool, options=mac(1))
    release(h1, pool, address)
    assert record(front_store, pool, address) is None
    assert retention.remember(front_store, "web", 3600, netaddr.IPAddress(address), mac_of(1))
    assert record(front_store, pool, address)["kind"] == RETAINED
    assert address not in dynamic(h1, pool, 5)
    assert retention.retained(front_store, "web", [SUBNET]) == [address]
    # Taken back by the application's next container (the front pins it), then kept again when it goes.
    assert take(h1, pool, address, mac(2)) == address
    release(h1, pool, address)
    assert record(front_store, pool, address)["kind"] == RETAINED


def test_a_record_landing_inside_a_release_is_not_lost(hosts, front_store, monkeypatch):
    """The front's record commits after the release read that there was none and before it freed the
    address: the release must notice and keep the address for the application."""
    h1 = hosts("h1")
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    address = take(h1, pool, options=mac(1))
    read_retention = h1._retained
    landed = []

    def front_records_right_after_the_read(pool_, address_, retention_):  # the release read both: the record, the retention
        answer = read_retention(pool_, address_, retention_)
        if not landed:
            landed.append(retention.remember(front_store, "web", 3600, netaddr.IPAddress(address), mac_of(1)))
        return answer

    monkeypatch.setattr(h1, "_retained", front_records_right_after_the_read)
    release(h1, pool, address)
    assert landed == [True]
    assert record(front_store, pool, address)["kind"] == RETAINED
    assert address not in dynamic(h1, pool, 5)


def test_an_address_another_container_took_is_not_recorded(hosts, front_store):
    h1 = hosts("h1")
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    address = take(h1, pool, options=mac(1))
    release(h1, pool, address)
    assert take(h1, pool, options=mac(2)) == address  # free, so the next container has it
    assert not retention.remember(front_store, "web", 3600, netaddr.IPAddress(address), mac_of(1))
    assert Retentions.read(front_store, netaddr.IPNetwork(SUBNET), address) is None
    release(h1, pool, address)
    assert record(front_store, pool, address) is None, "the other container's address was kept for web"


def test_an_address_retained_for_another_application_stays_with_it(hosts, front_store):
    h1 = hosts("h1")
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    address = take(h1, pool, options=mac(1))
    assert retention.remember(front_store, "web", 3600, netaddr.IPAddress(address), mac_of(1))
    release(h1, pool, address)
    assert not retention.remember(front_store, "db", 3600, netaddr.IPAddress(address), mac_of(1))
    assert record(front_store, pool, address)["holders"] == ["web"]


def test_replicas_created_together_are_offered_different_kept_addresses(hosts, front_store):
    """compose creates every replica of an application before starting any: the front must not pin two
    of them to one kept address (the second start would fail with "address in use")."""
    h1 = hosts("h1")
    pool = h1.request_pool(pool_request(pool=SUBNET)).pool_id
    kept = [take(h1, pool, options=mac(n)) for n in (1, 2)]
    for n, address in enumerate(kept, start=1):
        assert retention.remember(front_store, "web", 3600, netaddr.IPAddress(address), mac_of(n))
        release(h1, pool, address)
    front = Front(parse_docker_address("/nonexistent/docker.sock"), front_store)
    offers = [front._retained("web", [SUBNET], f"web-{n}") for n in (1, 2, 3)]
    assert [o[0] for o in offers[:2]] == kept and offers[2] == [], offers
    # compose v1 connects each created container again before starting it: the same container is
    # offered the same address.
    assert front._retained("web", [SUBNET], "web-2")[0] == kept[1]
    # Once the replicas started and went again, their addresses are kept anew and offered again at once.
    for n, address in enumerate(kept, start=1):
        assert take(h1, pool, address, mac(n)) == address
        release(h1, pool, address)
    assert front._retained("web", [SUBNET], "web-9") == kept
