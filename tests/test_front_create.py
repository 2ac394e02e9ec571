"""The container-create and network-connect rewrites of acsnet front, as pure functions (dockerd's lookups faked)."""

import json

import pytest

from acsnet.errors import InvalidRequest
from acsnet.front.create import rewrite_connect, rewrite_create

SUBNETS = {"v217": ["198.51.100.0/24"], "dual": ["198.51.100.0/24", "2001:db8::/64"]}
V4, V6 = "com.docker.network.endpoint.ipv4address", "com.docker.network.endpoint.ipv6address"


def create(labels=None, network="v217", **extra) -> bytes:
    return json.dumps({"Image": "busybox", "Labels": labels or {}, "HostConfig": {"NetworkMode": network}, **extra}).encode()


def endpoint(body: bytes, network="v217") -> dict:
    return json.loads(body)["NetworkingConfig"]["EndpointsConfig"][network]["IPAMConfig"]


def test_without_labels_the_body_is_untouched_byte_for_byte():
    body = b'{"Image": "busybox",  "Labels": {"a": "b"}}'
    assert rewrite_create(body, SUBNETS.get) is body
    assert rewrite_create(b"not json", SUBNETS.get) == b"not json"


def test_labels_become_the_ipam_config_of_the_network():
    assert endpoint(rewrite_create(create({V4: "198.51.100.9"}), SUBNETS.get)) == {"IPv4Address": "198.51.100.9"}
    both = rewrite_create(create({V4: "198.51.100.9", V6: "2001:db8::9"}, "dual"), SUBNETS.get)
    assert endpoint(both, "dual") == {"IPv4Address": "198.51.100.9", "IPv6Address": "2001:db8::9"}
    given = create({V4: "198.51.100.9"}, NetworkingConfig={"EndpointsConfig": {"v217": {"IPAMConfig": {"IPv4Address": "198.51.100.9"}, "Aliases": ["x"]}}})
    out = json.loads(rewrite_create(given, SUBNETS.get))["NetworkingConfig"]["EndpointsConfig"]["v217"]
    assert out == {"IPAMConfig": {"IPv4Address": "198.51.100.9"}, "Aliases": ["x"]}


@pytest.mark.parametrize("labels,network,message", [
    ({V4: "300.1.1.1"}, "v217", f"label {V4}: '300.1.1.1' is not an IPv4 address"),
    ({V4: "2001:db8::1"}, "v217", "is not an IPv4 address"),
    ({V4: "203.0.113.1"}, "v217", "203.0.113.1 is outside network v217's subnet 198.51.100.0/24"),
    ({V6: "2001:db8::1"}, "v217", "(none of this IP version)"),
    ({V4: "198.51.100.9"}, "bridge", "needs a user-defined network"),
    ({V4: "198.51.100.9"}, "", "needs a user-defined network"),
    ({V4: "198.51.100.9"}, "nosuch", "network 'nosuch' not found"),
])
def test_bad_labels_are_named(labels, network, message):
    with pytest.raises(InvalidRequest, match=None) as e:
        rewrite_create(create(labels, network), SUBNETS.get)
    assert message in e.value.message


def test_ip_and_label_must_agree():
    body = create({V4: "198.51.100.9"}, NetworkingConfig={"EndpointsConfig": {"v217": {"IPAMConfig": {"IPv4Address": "198.51.100.8"}}}})
    with pytest.raises(InvalidRequest) as e:
        rewrite_create(body, SUBNETS.get)
    assert "disagree" in e.value.message


# rewrite_connect: dockerd's container and network lookups faked by dicts.
LABELS = {"pinned": {V4: "198.51.100.9"}, "plain": {"a": "b"}, "app": {"acsnet.app": "web"}, "bad": {V4: "nope"}}


def connect(container, endpoint=None) -> bytes:
    return json.dumps({"Container": container, "EndpointConfig": endpoint}).encode()


def connected(body: bytes) -> dict:
    return json.loads(body)["EndpointConfig"]["IPAMConfig"]


def test_connect_of_a_labelled_container_pins_its_address():
    assert connected(rewrite_connect(connect("pinned", {"Aliases": ["x"]}), "v217", LABELS.get, SUBNETS.get)) == \
        {"IPv4Address": "198.51.100.9"}
    body = rewrite_connect(connect("pinned", {"Aliases": ["x"]}), "v217", LABELS.get, SUBNETS.get)
    assert json.loads(body)["EndpointConfig"]["Aliases"] == ["x"]


def test_connect_leaves_what_is_not_its_own_untouched():
    for body, network in ((connect("plain"), "v217"), (connect("unknown"), "v217"), (connect("pinned"), "nosuch"),
                          (connect("pinned"), "other"), (b"not json", "v217"), (b'{"Container": 5}', "v217")):
        assert rewrite_connect(body, network, LABELS.get, {**SUBNETS, "other": ["203.0.113.0/24"]}.get) is body


def test_connect_of_an_application_takes_a_retained_address():
    kept = lambda app, subnets: ["198.51.100.20"] if app == "web" and subnets == SUBNETS["v217"] else []  # noqa: E731
    assert connected(rewrite_connect(connect("app"), "v217", LABELS.get, SUBNETS.get, kept)) == {"IPv4Address": "198.51.100.20"}
    given = connect("app", {"IPAMConfig": {"IPv4Address": "198.51.100.30"}})
    assert rewrite_connect(given, "v217", LABELS.get, SUBNETS.get, kept) is given


def test_connect_refuses_a_bad_or_disagreeing_label():
    with pytest.raises(InvalidRequest) as e:
        rewrite_connect(connect("bad"), "v217", LABELS.get, SUBNETS.get)
    assert f"label {V4}: 'nope' is not an IPv4 address" in e.value.message
    with pytest.raises(InvalidRequest) as e:
        rewrite_connect(connect("pinned", {"IPAMConfig": {"IPv4Address": "198.51.100.8"}}), "v217", LABELS.get, SUBNETS.get)
    assert "disagree" in e.value.message


def test_an_application_label_is_refused_by_a_front_that_keeps_nothing():
    """retained_of None: the front runs without --store, so nothing would be kept for the application."""
    app_create = json.dumps({"Labels": {"acsnet.app": "web"}, "HostConfig": {"NetworkMode": "v217"}}).encode()
    for rewrite in (lambda: rewrite_create(app_create, SUBNETS.get),
                    lambda: rewrite_connect(connect("app"), "v217", LABELS.get, SUBNETS.get)):
        with pytest.raises(InvalidRequest) as e:
            rewrite()
        assert "acsnet.app=web" in e.value.message and "--store" in e.value.message
