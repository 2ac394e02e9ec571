"""Container creation and network connection as the front rewrites them: the IP labels of the original
platform become the container's IPAM config for its network, which stock dockerd hands to the network
and IPAM plugins.

    com.docker.network.endpoint.ipv4address=IP   ->  NetworkingConfig.EndpointsConfig[net].IPAMConfig.IPv4Address
    com.docker.network.endpoint.ipv6address=IP   ->  ...IPv6Address
    (on POST /networks/{net}/connect of a labelled container: EndpointConfig.IPAMConfig.IPv4Address)

A container labelled acsnet.app=NAME without an address of its own is pinned to an address retained
for NAME, if one is (`acsnet.ipam.retention`).

Pure: the caller supplies the network's subnets and the container's labels (from dockerd) and NAME's
retained addresses (from the store), and sends the errors back as 400s.
"""

from __future__ import annotations

import json
from typing import Callable

import netaddr

from acsnet.errors import InvalidRequest

LABELS = {4: "com.docker.network.endpoint.ipv4address", 6: "com.docker.network.endpoint.ipv6address"}
APP_LABEL = "acsnet.app"
FIELDS = {4: "IPv4Address", 6: "IPv6Address"}
NOT_A_NETWORK = ("", "default", "bridge", "host", "none")


def _network(config: dict, why: str) -> str:
    network = ((config.get("HostConfig") or {}).get("NetworkMode") or "")
    if network in NOT_A_NETWORK or network.startswith("container:"):
        raise InvalidRequest(f"{why} needs a user-defined network (--net NAME), not {network or 'the default network'!r}")
    return network


def _ipam_config(config: dict, network: str) -> dict:
    networking = config["NetworkingConfig"] = config.get("NetworkingConfig") or {}
    endpoints = networking["EndpointsConfig"] = networking.get("EndpointsConfig") or {}
    settings = endpoints[network] = endpoints.get(network) or {}
    ipam = settings["IPAMConfig"] = settings.get("IPAMConfig") or {}
    return ipam


RetainedOf = Callable[[str, list[str]], list[str]]


def _check_retention(labels: dict, retained_of: RetainedOf | None) -> None:
    """A front with no store keeps nothing for an application: refuse the label rather than let the
    user believe the address is kept (as --internal once was accepted and ignored)."""
    if labels.get(APP_LABEL) and retained_of is None:
        raise InvalidRequest(f"label {APP_LABEL}={labels[APP_LABEL]}: IP retention needs acsnet front to run with "
                             f"--store (the store keeps the application's addresses)")


def rewrite_create(body: bytes, subnets_of: Callable[[str], list[str] | None],
                   retained_of: RetainedOf | None = None) -> bytes:
    """The create request with the IP labels applied, or `body` itself when it carries none.
    `subnets_of(network)` gives the network's subnets, or None if dockerd does not know it;
    `retained_of(app, subnets)` the addresses kept for an application in those subnets (None: this
    front keeps none, and an acsnet.app label is refused)."""
    try:
        config = json.loads(body or b"{}")
    except ValueError:
        return body  # not ours to judge: dockerd answers it
    if not isinstance(config, dict):
        return body
    labels = config.get("Labels") or {}
    _check_retention(labels, retained_of)
    if any(label in labels for label in LABELS.values()):
        return json.dumps(_apply_ip_labels(config, labels, subnets_of)).encode()
    app = labels.get(APP_LABEL)
    network = ((config.get("HostConfig") or {}).get("NetworkMode") or "")
    if not app or network in NOT_A_NETWORK or network.startswith("container:"):
        return body  # an application on a default network: nothing to retain
    ipam = _ipam_config(config, network)
    if ipam.get("IPv4Address"):
        return body
    subnets = subnets_of(network)
    kept = retained_of(str(app), subnets or [])
    if not kept:
        return body
    ipam["IPv4Address"] = kept[0]
    return json.dumps(config).encode()


def _apply_ip_labels(config: dict, labels: dict, subnets_of) -> dict:
    network = _network(config, f"label {next(label for label in LABELS.values() if label in labels)}")
    subnets = subnets_of(network)
    if subnets is None:
        raise InvalidRequest(f"network {network!r} not found")
    ipam = _ipam_config(config, network)
    for version, label in LABELS.items():
        if label not in labels:
            continue
        address = _labelled_address(label, labels[label], version)
        inside = [s for s in subnets if netaddr.IPNetwork(s).version == version]
        if not any(address in netaddr.IPNetwork(s) for s in inside):
            raise InvalidRequest(f"label {label}: {address} is outside network {network}'s subnet"
                                 f"{'s' if len(inside) != 1 else ''} {', '.join(inside) or '(none of this IP version)'}")
        given = ipam.get(FIELDS[version])
        if given and netaddr.IPAddress(given) != address:
            raise InvalidRequest(f"label {label}={address} and --ip{'6' if version == 6 else ''} {given} disagree")
        ipam[FIELDS[version]] = str(address)
    return config


def rewrite_connect(body: bytes, network: str, labels_of: Callable[[str], dict | None],
                    subnets_of: Callable[[str], list[str] | None],
                    retained_of: RetainedOf | None = None) -> bytes:
    """A network connect (`{"Container": ..., "EndpointConfig": ...}`) with the container's IP labels
    applied to `network`, or `body` itself when nothing applies. An address label outside the network's
    subnets is about another of the container's networks and is left alone here.
    `labels_of(container)` gives the container's labels, or None if dockerd does not know it."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return body
    if not isinstance(request, dict) or not isinstance(request.get("Container"), str):
        return body
    labels = labels_of(request["Container"])
    if not labels:
        return body
    _check_retention(labels, retained_of)
    app = labels.get(APP_LABEL)
    if not any(label in labels for label in LABELS.values()) and not app:
        return body
    subnets = subnets_of(network)
    if not subnets:
        return body  # not a network dockerd knows (it answers), or one without addresses to pin
    endpoint = request["EndpointConfig"] = request.get("EndpointConfig") or {}
    ipam = endpoint["IPAMConfig"] = endpoint.get("IPAMConfig") or {}
    pinned = False
    for version, label in LABELS.items():
        if label not in labels:
            continue
        address = _labelled_address(label, labels[label], version)
        if not any(address in netaddr.IPNetwork(s) for s in subnets if netaddr.IPNetwork(s).version == version):
            continue
        given = ipam.get(FIELDS[version])
        if given and netaddr.IPAddress(given) != address:
            raise InvalidRequest(f"label {label}={address} and the connect's IPv{version} address {given} disagree")
        ipam[FIELDS[version]] = str(address)
        pinned = True
    if not pinned and app and not ipam.get("IPv4Address"):
        kept = retained_of(str(app), subnets)
        if kept:
            ipam["IPv4Address"], pinned = kept[0], True
    return json.dumps(request).encode() if pinned else body


def _labelled_address(label: str, value, version: int) -> netaddr.IPAddress:
    text = str(value).strip()
    try:
        return netaddr.IPAddress(text, version)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise InvalidRequest(f"label {label}: {text!r} is not an IPv{version} address") from None
