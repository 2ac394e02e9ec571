"""Operations: systemd units, the documented config file, metrics, status and inspect."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

from acsnet.config import COMMON_OPTIONS, HOST_SETUP_OPTIONS, IPAM_OPTIONS, config_example
from acsnet.docker_api import parse_docker_address
from acsnet.lab.dockerd import IMAGE
from acsnet.units import install_units

UNITS = ["acsnet-front.service", "acsnet-host-setup.service", "acsnet-ipam.service", "acsnet-vlan.service", "acsnet-vpc.service", "acsnet-vxlan.service"]


def verify(paths: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=60)


def test_units_install_and_pass_systemd_analyze_verify(tmp_path):
    installed = install_units(str(tmp_path / "units"), str(tmp_path / "etc"))
    units = sorted(p for p in installed if p.endswith(".service"))
    assert [p.rsplit("/", 1)[1] for p in units] == UNITS
    for path in units:
        text = open(path).read()
        assert "@ACSNET@" not in text and "--config /etc/acsnet/acsnet.conf" in text
        assert "Restart=always" in text or "Type=oneshot" in text
        # Plugins come up before dockerd (it restores networks at start); the front talks to dockerd.
        order = "After=docker.service" if path.endswith("acsnet-front.service") else "Before=docker.service"
        assert order in text and "NoNewPrivileges=yes" in text
        result = verify([path])
        assert result.returncode == 0, f"{path}: {result.stderr}"
    # The check can fail: a unit with a bad setting does not verify.
    broken = tmp_path / "units" / "acsnet-broken.service"
    broken.write_text(open(units[1]).read().replace("Restart=always", "Restart=sometimes").replace("ExecStart=", "ExecStart=relative/"))
    assert verify([str(broken)]).returncode != 0
    # The config file is written once, never over an operator's.
    conf = tmp_path / "etc" / "acsnet.conf"
    conf.write_text("[acsnet]\nstore = zk://mine:2181/acsnet\n")
    install_units(str(tmp_path / "units"), str(tmp_path / "etc"))
    assert conf.read_text() == "[acsnet]\nstore = zk://mine:2181/acsnet\n"


def test_config_example_documents_every_option():
    text = config_example()
    for opt in COMMON_OPTIONS + IPAM_OPTIONS + HOST_SETUP_OPTIONS:
        assert f"# {opt.name.replace('_', '-')} = " in text, opt.name


METRICS = """
import sys
from acsnet.plugin_client import UnixHTTPConnection
c = UnixHTTPConnection(sys.argv[1], 10)
c.request("GET", "/metrics")
print(c.getresponse().read().decode())
"""


def counter(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    selector = re.escape("{" + want + "}") if labels else ""
    match = re.search(rf"^{name}{selector} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_what_docker_runs_caused_and_inspect_shows_both_hosts(lab):
    tag = uuid.uuid4().hex[:4]
    network = f"ops-{tag}"
    h1 = lab.node("h1")

    def scrape(plugin: str) -> str:
        return h1.run([sys.executable, "-c", METRICS, f"/run/docker/plugins/{plugin}.sock"]).stdout

    before_vlan, before_ipam = scrape("vlan"), scrape("acsnet")
    names = {"h1": [f"{network}-a", f"{network}-b", f"{network}-c"], "h2": [f"{network}-d"]}
    try:
        for host in ("h1", "h2"):
            lab.docker(host, "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "198.51.100.0/24",
                       "--gateway", "198.51.100.1", "-o", "VlanId=217", network)
            for name in names[host]:
                lab.docker(host, "run", "-d", "--stop-timeout", "1", "--net", network, "--name", name, IMAGE, "sleep", "600")
        after_vlan, after_ipam = scrape("vlan"), scrape("acsnet")
        for method in ("NetworkDriver.CreateEndpoint", "NetworkDriver.Join"):
            grew = (counter(after_vlan, "acsnet_requests_total", method=method, plugin="vlan", status="200")
                    - counter(before_vlan, "acsnet_requests_total", method=method, plugin="vlan", status="200"))
            assert grew == 3, f"{method}: {grew}"
        grew = (counter(after_ipam, "acsnet_requests_total", method="IpamDriver.RequestAddress", plugin="acsnet", status="200")
                - counter(before_ipam, "acsnet_requests_total", method="IpamDriver.RequestAddress", plugin="acsnet", status="200"))
        assert grew == 4, "three containers and the gateway on h1"
        assert "acsnet_store_connected 1.0" in after_vlan
        network_id = json.loads(lab.docker("h1", "network", "inspect", network).stdout)[0]["Id"][:12]
        assert counter(after_vlan, "acsnet_flows", network=network_id) >= 3 * 4, "4 flows per local endpoint at least"
        assert counter(after_vlan, "acsnet_endpoints", network=network_id) == 3
        assert counter(after_vlan, "acsnet_reconcile_runs_total") > counter(before_vlan, "acsnet_reconcile_runs_total")

        report = json.loads(h1.run([sys.executable, "-m", "acsnet.cli", "inspect", "network", network, "--json",
                                    "--store", lab.zookeeper_url, "--host-id", "h1"]).stdout)
        seen = {(e["host"], e["ip"], e["mac"]) for e in report["endpoints"]}
        expected = set()
        for host in ("h1", "h2"):
            for name in names[host]:
                info = json.loads(lab.docker(host, "inspect", name).stdout)[0]["NetworkSettings"]["Networks"][network]
                expected.add((host, info["IPAddress"], info["MacAddress"]))
        assert seen == expected
        assert {e["container"] for e in report["endpoints"] if e["host"] == "h1"} == set(names["h1"])
        for e in report["endpoints"]:  # the OVS port each is on (a pair made ahead, or made for it)
            assert lab.node(e["host"]).run(["ovs-vsctl", "--bare", "--columns=name", "find", "interface",
                                            f"external_ids:acsnet-ip={e['ip']}"]).stdout.split() == [e["port"]], e

        status = h1.run([sys.executable, "-m", "acsnet.cli", "status", "--json", "--store", lab.zookeeper_url,
                         "--host-id", "h1"], check=False)
        report = json.loads(status.stdout)
        assert status.returncode == 0 and report["ok"] and report["endpoints"] == 3
        assert set(report["plugins"]) == {"acsnet", "vlan", "vxlan", "vpc"} and report["ovs"]["flows"] > 0
        assert report["ovs"]["datapath"] == "netdev" and report["ovs"]["userspace_tso"] is True
    finally:
        for host in ("h1", "h2"):
            lab.docker(host, "rm", "-f", *names[host], check=False)
            lab.docker(host, "network", "rm", network, check=False)


def test_docker_option_takes_every_form_and_an_unreachable_dockerd_is_named(lab):
    """The same --docker forms for status, inspect and audit, against h1's real dockerd; and a dockerd
    that cannot be reached is said to be so, not taken for an unknown network name."""
    tag = uuid.uuid4().hex[:4]
    network, container = f"dk-{tag}", f"dk-{tag}-a"
    h1 = lab.node("h1")
    local = ["--store", lab.zookeeper_url, "--host-id", "h1"]

    def acsnet(*argv: str) -> subprocess.CompletedProcess:
        return h1.run([sys.executable, "-m", "acsnet.cli", *argv, *local], check=False)

    try:
        lab.docker("h1", "network", "create", "-d", "vlan", "--ipam-driver", "acsnet", "--subnet", "198.51.100.0/24",
                   "--gateway", "198.51.100.1", "-o", "VlanId=217", network)
        lab.docker("h1", "run", "-d", "--stop-timeout", "1", "--net", network, "--name", container, IMAGE, "sleep", "600")
        network_id = json.loads(lab.docker("h1", "network", "inspect", network).stdout)[0]["Id"]
        for form in ("unix:///run/docker.sock", "unix:/run/docker.sock", "/run/docker.sock", "unix:///var/run/docker.sock"):
            result = acsnet("inspect", "network", network, "--json", "--docker", form)
            assert result.returncode == 0, (form, result.stderr)
            report = json.loads(result.stdout)
            assert report["network"] == network and [e["container"] for e in report["endpoints"]] == [container], form
            status = json.loads(acsnet("status", "--json", "--docker", form).stdout)
            assert status["docker"]["reachable"] and status["docker"]["address"] == parse_docker_address(form).url
            # Findings (exit 1) may be other tests' leftovers on this shared lab; the audit itself ran.
            audit = acsnet("audit", "--json", "--docker", form)
            assert audit.returncode in (0, 1) and isinstance(json.loads(audit.stdout), list), (form, audit.stderr)

        nowhere = "unix:///run/acsnet-no-dockerd.sock"
        result = acsnet("inspect", "network", network, "--docker", nowhere)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"dockerd could not be reached at {nowhere}" in result.stderr and "is not a vlan" not in result.stderr, result.stderr
        # By its id the network is found without dockerd; its endpoints go by their ids.
        report = json.loads(acsnet("inspect", "network", network_id, "--json", "--docker", nowhere).stdout)
        assert report["id"] == network_id and len(report["endpoints"]) == 1
        audit = acsnet("audit", "--docker", nowhere)
        assert audit.returncode == 1 and f"dockerd could not be reached at {nowhere}" in audit.stderr, audit.stderr
        status = json.loads(acsnet("status", "--json", "--docker", nowhere).stdout)
        assert not status["docker"]["reachable"] and nowhere in status["docker"]["error"]
    finally:
        lab.docker("h1", "rm", "-f", container, check=False)
        lab.docker("h1", "network", "rm", network, check=False)
