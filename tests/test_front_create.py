"""The container-create rewrite of acsnet front, as a pure function (dockerd's network lookup faked)."""

import json

import pytest

from plugins.errors import InvalidRequest
from plugins.front.create import rewrite_create

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
