"""acsnet as Docker managed plugins (`acsnet plugin build`, `acsnet plugin install`) on a lab whose hosts
run them instead of `acsnet serve` processes: real dockerd (20.10, or 26 with ACSNET_TEST_ENGINE=26, as
.ci/run does), OVS and ZooKeeper. One lab for the module; each test removes what it makes."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid

import pytest

from acsnet.cli import main
from acsnet.config import COMMON_OPTIONS, IPAM_OPTIONS
from acsnet.lab.dockerd import IMAGE
from acsnet.lab.topology import Lab
from acsnet import managed_plugins
from acsnet.managed_plugins import PLUGINS, config_json, source_digest
from tests.conftest import ENGINE
from tests.test_vlan import acsnet_ports

VXLAN, VLAN, VPC, IPAM = (PLUGINS[p].reference for p in ("vxlan", "vlan", "vpc", "ipam"))
QUICK = ["--stop-timeout", "1"]


@pytest.fixture(scope="module")
def managed_lab(tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp("managed") / "lab"), f"acsnet-m{uuid.uuid4().hex[:4]}")
    lab.up(hosts=2, engine=ENGINE, plugins="managed")
    yield lab
    lab.down()
    assert lab.leftovers() == []


def inspect_plugin(lab: Lab, host: str, reference: str) -> dict:
    return json.loads(lab.docker(host, "plugin", "inspect", reference).stdout)[0]


def address_of(lab: Lab, host: str, container: str, network: str) -> str:
    info = json.loads(lab.docker(host, "inspect", container).stdout)[0]
    return info["NetworkSettings"]["Networks"][network]["IPAddress"]


def pings(lab: Lab, host: str, container: str, address: str) -> bool:
    return lab.docker(host, "exec", container, "ping", "-c", "2", "-W", "2", address, check=False).returncode == 0


def test_every_option_is_a_settable_variable_and_capabilities_are_few():
    """Without a lab: what config.json declares."""
    every = {o.env for o in COMMON_OPTIONS + IPAM_OPTIONS} - {"ACSNET_PLUGIN_DIR"}
    for spec in PLUGINS.values():
        config = config_json(spec)
        settable = {e["Name"] for e in config["Env"] if e["Settable"] == ["value"]}
        assert settable == every, spec.name
        assert config["Network"]["Type"] == "host"
        assert config["Interface"]["Socket"] == spec.socket
    capabilities = {p: config_json(spec)["Linux"]["Capabilities"] for p, spec in PLUGINS.items()}
    assert capabilities == {"ipam": [], "vlan": ["CAP_NET_ADMIN"], "vxlan": ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"],
                            "vpc": ["CAP_NET_ADMIN"]}
    drivers_mounts = {p: [m["Name"] for m in config_json(spec)["Mounts"]] for p, spec in PLUGINS.items()}
    assert all("ovs-run" in drivers_mounts[p] for p in ("vlan", "vxlan", "vpc")) and "netns" in drivers_mounts["vxlan"]


def test_the_source_digest_follows_what_pip_installs_and_nothing_else_on_a_copied_checkout(tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), checkout,
                    ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "build", "tests", "*.egg-info"))
    first = source_digest(str(checkout))
    (checkout / "README.md").write_text("not installed\n")
    os.makedirs(checkout / "plugins" / "__pycache__", exist_ok=True)
    (checkout / "plugins" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert source_digest(str(checkout)) == first
    (checkout / "ipam" / "allocator.py").write_text((checkout / "ipam" / "allocator.py").read_text() + "# changed\n")
    assert source_digest(str(checkout)) != first


def test_build_cached_builds_once_for_the_same_sources_with_a_fake_build(tmp_path, monkeypatch):
    """The plugins' build (debootstrap's root, pip) is faked: this is about when it runs."""
    monkeypatch.setenv("ACSNET_CACHE", str(tmp_path / "cache"))
    builds = []

    def fake_build(out, *, source=None, progress=lambda message: None):
        builds.append(out)
        for spec in PLUGINS.values():
            os.makedirs(os.path.join(out, spec.folder, "rootfs", "etc"))
            with open(os.path.join(out, spec.folder, "config.json"), "w") as f:
                json.dump(config_json(spec), f)
        return out

    monkeypatch.setattr(managed_plugins, "build", fake_build)
    for lab in ("one", "two"):
        managed_plugins.build_cached(str(tmp_path / lab / "plugins"))
        assert managed_plugins.is_built(str(tmp_path / lab / "plugins"))
    assert len(builds) == 1
    kept = os.path.join(builds[0], PLUGINS["vlan"].folder, "config.json")
    assert os.stat(kept).st_ino == os.stat(tmp_path / "two" / "plugins" / PLUGINS["vlan"].folder / "config.json").st_ino
    monkeypatch.setattr(managed_plugins, "source_digest", lambda: "changed-sources")
    managed_plugins.build_cached(str(tmp_path / "three" / "plugins"))
    assert len(builds) == 2 and not os.path.exists(builds[0]), "the older sources' build stays"


def test_install_refuses_bad_settings_before_asking_dockerd(capsys, tmp_path):
    assert main(["plugin", "install", "--docker", str(tmp_path / "none.sock"), "--set", "ACSNET_NOPE=1"]) == 1
    err = capsys.readouterr().err
    assert "--set ACSNET_NOPE: no acsnet plugin has that setting" in err and "ACSNET_STORE" in err
    assert main(["plugin", "install", "--docker", str(tmp_path / "none.sock"), "--set", "novalue"]) == 1
    assert "give KEY=VALUE" in capsys.readouterr().err
    assert main(["plugin", "install", "--docker", str(tmp_path / "none.sock"), "--only", "ipam,dns"]) == 1
    assert "choose among ipam, vlan, vxlan, vpc" in capsys.readouterr().err


def test_the_plugins_are_enabled_as_configured(managed_lab):
    lab = managed_lab
    for host in lab.hosts():
        for plugin, spec in PLUGINS.items():
            info = inspect_plugin(lab, host, spec.reference)
            assert info["Enabled"], f"{spec.reference} on {host}"
            assert info["Config"]["Interface"]["Types"] == [spec.interface]
            assert sorted(info["Config"]["Linux"]["Capabilities"]) == sorted(spec.capabilities)
            assert f"ACSNET_STORE={lab.zookeeper_url}" in info["Settings"]["Env"]
        # The plugins are `acsnet serve` in the host's network namespace, not processes the lab started.
        serving = lab.node(host).run(["ps", "-eo", "args"]).stdout
        assert serving.count("-m acsnet.cli serve") >= 4, serving


def assert_networks_of_each_driver_carry_traffic(lab: Lab, tag: str) -> None:
    """A vxlan, a vlan and a vpc network on every host (local scope: one pool in the IPAM), a container on
    each per host, pinging across hosts; removed, they leave no endpoint port behind."""
    networks = {  # name: (driver, subnet, options)
        f"mvx-{tag}": (VXLAN, "100.82.0.0/24", ["-o", "VxlanId=820"]),
        f"mvl-{tag}": (VLAN, "198.51.100.0/24", ["--gateway", "198.51.100.1", "-o", "VlanId=217"]),
        f"mvp-{tag}": (VPC, "100.83.0.0/16", []),
    }
    containers = {host: [f"m{host}-{n}-{tag}" for n in range(len(networks))] for host in lab.hosts()}
    try:
        for host in lab.hosts():
            for name, (driver, subnet, options) in networks.items():
                lab.docker(host, "network", "create", "-d", driver, "--ipam-driver", IPAM, "--subnet", subnet,
                           *options, name)
            for container, name in zip(containers[host], networks):
                lab.docker(host, "run", "-d", *QUICK, "--net", name, "--name", container, IMAGE, "sleep", "600")
        for index, name in enumerate(networks):
            a, b = containers["h1"][index], containers["h2"][index]
            address_a, address_b = address_of(lab, "h1", a, name), address_of(lab, "h2", b, name)
            assert address_a != address_b
            assert pings(lab, "h1", a, address_b), f"{name}: h1 does not reach {address_b} on h2\n{lab.log_tail('h1')}"
            assert pings(lab, "h2", b, address_a), f"{name}: h2 does not reach {address_a} on h1"
        assert pings(lab, "h1", containers["h1"][1], "198.51.100.1"), "the VLAN's gateway"
    finally:
        for host in lab.hosts():
            lab.docker(host, "rm", "-f", *containers[host], check=False)
            lab.docker(host, "network", "rm", *networks, check=False)
    for host in lab.hosts():
        ports = lab.node(host).run(["ovs-vsctl", "list-ports", "ovsbr0"]).stdout.split()
        ports += lab.node(host).run(["ovs-vsctl", "list-ports", "acsvx0"], check=False).stdout.split()
        assert acsnet_ports(lab, host) == [], f"endpoint ports left on {host}: {ports}"  # spares may stay


def test_networks_of_each_driver_carry_traffic_across_hosts(managed_lab):
    assert_networks_of_each_driver_carry_traffic(managed_lab, uuid.uuid4().hex[:4])


def pools_in_store(lab: Lab) -> list[str]:
    listed = lab.node("h1").run([sys.executable, "-m", "acsnet.cli", "pools", "--json", "--store", lab.zookeeper_url])
    return [pool["subnet"] for pool in json.loads(listed.stdout)]


def test_plugin_commands_take_the_untagged_names_networks_need_the_tag(managed_lab):
    """dockerd's plugin store completes a plugin name without a tag (`acsnet/vxlan` is `acsnet/vxlan:latest`),
    so `docker plugin inspect`, `disable`, `set` and `enable` take the names as the issue writes them. A
    network's driver and IPAM driver are another matter: libnetwork registers a managed plugin's driver
    under the plugin's full name and looks `-d` and `--ipam-driver` up as given, so dockerd refuses the
    untagged names before either plugin is asked anything. Shown on 20.10 and 26 alike."""
    lab, host, tag = managed_lab, "h1", uuid.uuid4().hex[:4]
    for untagged, spec in ((p.name, p) for p in PLUGINS.values()):
        assert inspect_plugin(lab, host, untagged)["Name"] == spec.reference == f"{untagged}:latest"
    lab.docker(host, "plugin", "disable", "acsnet/vxlan")
    lab.docker(host, "plugin", "set", "acsnet/vxlan", "ACSNET_STORE_TIMEOUT=6")
    lab.docker(host, "plugin", "enable", "--timeout", "300", "acsnet/vxlan", timeout=400)
    assert "ACSNET_STORE_TIMEOUT=6" in inspect_plugin(lab, host, "acsnet/vxlan")["Settings"]["Env"]

    subnet = "100.85.0.0/24"
    driver = lab.docker(host, "network", "create", "-d", "acsnet/vxlan", "--ipam-driver", IPAM, "--subnet", subnet,
                        "-o", "VxlanId=850", f"mnotag-{tag}", check=False)
    assert driver.returncode != 0 and "could not resolve driver acsnet/vxlan in registry" in driver.stderr, driver.stderr
    ipam = lab.docker(host, "network", "create", "-d", VXLAN, "--ipam-driver", "acsnet/ipam", "--subnet", subnet,
                      "-o", "VxlanId=850", f"mnotag-{tag}", check=False)
    assert ipam.returncode != 0 and 'invalid ipam driver: "acsnet/ipam"' in ipam.stderr, ipam.stderr
    assert f"mnotag-{tag}" not in lab.network_names(host)
    assert subnet not in pools_in_store(lab), "a refused network left its pool in the IPAM"
    # The same, tagged, is made.
    lab.docker(host, "network", "create", "-d", VXLAN, "--ipam-driver", IPAM, "--subnet", subnet, "-o", "VxlanId=850",
               f"mnotag-{tag}")
    assert subnet in pools_in_store(lab)
    lab.docker(host, "network", "rm", f"mnotag-{tag}")


def test_a_plugin_whose_store_is_unreachable_still_activates(managed_lab):
    """`docker plugin set` reconfigures a plugin (disabled); with a store it cannot reach it still answers
    Activate and GetCapabilities (one failure there disables a driver in dockerd), and refuses networks
    with an error naming the store. Set back, it serves again."""
    lab, host, tag = managed_lab, "h2", uuid.uuid4().hex[:4]
    nowhere = "zk://192.0.2.99:2181/acsnet"
    references = ("acsnet/vlan", "acsnet/ipam")  # `docker plugin` commands take the untagged names
    try:
        for reference in references:
            lab.docker(host, "plugin", "disable", reference)
            lab.docker(host, "plugin", "set", reference, f"ACSNET_STORE={nowhere}", "ACSNET_STORE_TIMEOUT=2")
            lab.docker(host, "plugin", "enable", "--timeout", "300", reference, timeout=400)
        refused = lab.docker(host, "network", "create", "-d", VLAN, "--ipam-driver", IPAM, "--subnet", "100.84.0.0/24",
                             "-o", "VlanId=218", f"mnone-{tag}", check=False)
        assert refused.returncode != 0 and "192.0.2.99:2181" in refused.stderr, refused.stderr
        assert all(inspect_plugin(lab, host, r)["Enabled"] for r in references)
        plugins = lab.docker(host, "plugin", "ls", "--format", "{{.Name}} {{.Enabled}}").stdout
        assert f"{VLAN} true" in plugins and f"{IPAM} true" in plugins  # `plugin ls` shows the full names
    finally:
        for reference in references:
            lab.docker(host, "plugin", "disable", reference, check=False)
            lab.docker(host, "plugin", "set", reference, f"ACSNET_STORE={lab.zookeeper_url}", "ACSNET_STORE_TIMEOUT=5")
            lab.docker(host, "plugin", "enable", "--timeout", "300", reference, timeout=400)
    lab.docker(host, "network", "create", "-d", VLAN, "--ipam-driver", IPAM, "--subnet", "100.84.0.0/24",
               "-o", "VlanId=218", f"mback-{tag}")
    lab.docker(host, "network", "rm", f"mback-{tag}")


def test_a_dual_stack_vpc_network_carries_ipv6_across_hosts_where_host_setup_turned_ipv6_forwarding_on(managed_lab):
    """A managed plugin cannot turn IPv6 forwarding on (its /proc/sys is read-only): `acsnet plugin install
    --host-setup` (which made this lab's hosts) did. With it, a dual-stack vpc network carries IPv6 and
    IPv4 between containers on both hosts. On a host where it is off, the network is refused with an
    error naming the commands that turn it on, nothing is made, and forwarding stays off."""
    lab, tag = managed_lab, uuid.uuid4().hex[:4]
    network, subnet = f"mvp6-{tag}", "100.86.0.0/16"
    create = ["network", "create", "-d", VPC, "--ipam-driver", IPAM, "--ipv6", "--subnet", subnet,
              "--subnet", "fd00:86::/64", "-o", "host_subnet_size=24", network]
    forwarding6 = ["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]
    containers = {"h1": f"m6a-{tag}", "h2": f"m6b-{tag}"}
    for host in lab.hosts():
        assert lab.node(host).run(forwarding6).stdout.strip() == "1", f"host setup left IPv6 forwarding off on {host}"
    try:
        lab.node("h2").run(["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=0"])
        refused = lab.docker("h2", *create, check=False)
        assert refused.returncode != 0 and "IPv6 forwarding is off on this host" in refused.stderr, refused.stderr
        assert ("acsnet plugin install --host-setup" in refused.stderr
                and "sysctl -w net.ipv6.conf.all.forwarding=1" in refused.stderr), refused.stderr
        assert network not in lab.network_names("h2")
        assert subnet not in pools_in_store(lab), "a refused network left its pool in the IPAM"
        assert lab.node("h2").run(forwarding6).stdout.strip() == "0", "the plugin changed /proc/sys after all"
        lab.node("h2").run(["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])

        for host, container in containers.items():
            lab.docker(host, *create)
            lab.docker(host, "run", "-d", *QUICK, "--net", network, "--name", container, IMAGE, "sleep", "600")
        endpoints = {host: json.loads(lab.docker(host, "inspect", c).stdout)[0]["NetworkSettings"]["Networks"][network]
                     for host, c in containers.items()}
        assert endpoints["h1"]["GlobalIPv6Address"] and endpoints["h2"]["GlobalIPv6Address"], endpoints
        for host, peer in (("h1", "h2"), ("h2", "h1")):
            ping6 = lab.docker(host, "exec", containers[host], "ping", "-6", "-c", "2", "-W", "2",
                               endpoints[peer]["GlobalIPv6Address"], check=False)
            assert ping6.returncode == 0, f"{host} does not reach {peer}'s container by IPv6\n{lab.log_tail(host)}"
            assert pings(lab, host, containers[host], endpoints[peer]["IPAddress"]), f"{host} to {peer} by IPv4"
    finally:
        lab.node("h2").run(["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"], check=False)
        for host, container in containers.items():
            lab.docker(host, "rm", "-f", container, check=False)
            lab.docker(host, "network", "rm", network, check=False)
