"""Fixtures that run the real components: a ZooKeeper server on loopback, plugin processes under
gunicorn. Nothing here stands in for ZooKeeper or the plugin server."""

from __future__ import annotations

import os
import uuid

import pytest

from acsnet.lab.plugin_process import PluginProcess
from acsnet.lab.zookeeper import ZooKeeperServer
from acsnet.store import open_store

# The Docker Engine of the `lab`, `fresh_lab` and `docker_host` fixtures and of the tests that build a
# lab of their own (`lab.up(..., **LAB_OPTIONS)`): CI runs the suite on 20.10, then the drivers'
# acceptance tests again with ACSNET_TEST_ENGINE=26 (.ci/run). ACSNET_TEST_HOST_OS=debian13 (with
# ACSNET_TEST_ENGINE=26) runs the labs' hosts from a Debian 13 root filesystem (OVS 3.5).
ENGINE = os.environ.get("ACSNET_TEST_ENGINE", "20.10")
HOST_OS = os.environ.get("ACSNET_TEST_HOST_OS", "machine")
LAB_OPTIONS = {"engine": ENGINE, "host_os": HOST_OS}


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory):
    server = ZooKeeperServer(str(tmp_path_factory.mktemp("zookeeper"))).start()
    yield server
    server.stop()


@pytest.fixture
def zk_url(zookeeper):
    """A fresh chroot per test, so tests never see each other's nodes."""
    return f"zk://{zookeeper.address}/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def embedded_url(tmp_path):
    return f"file://{tmp_path}/store.db"


@pytest.fixture(params=["embedded", "zookeeper"])
def store_url(request):
    return request.getfixturevalue("embedded_url" if request.param == "embedded" else "zk_url")


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, timeout=5.0)
    yield opened
    opened.close()


@pytest.fixture
def plugins(tmp_path):
    """Start plugin processes; every one started is stopped at the end, by its own pid."""
    started: list[PluginProcess] = []

    def start(plugin: str, *args: str, plugin_dir: str | None = None) -> PluginProcess:
        directory = plugin_dir or str(tmp_path / "plugins")
        process = PluginProcess.acsnet(plugin, directory, *args, log_dir=str(tmp_path)).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def docker_host(tmp_path):
    """A simulated host (own netns, mount and UTS namespaces; HOST_OS) running a real dockerd (ENGINE), with the
    busybox image imported. Everything is removed by name and pid at the end."""
    from acsnet.lab.dockerd import DockerDaemon
    from acsnet.lab.host import HOST_OSES, SimulatedHost

    host = SimulatedHost("h1", f"acsnet-test-{uuid.uuid4().hex[:8]}", str(tmp_path / "h1"), HOST_OSES[HOST_OS].root()).start()
    try:
        daemon = DockerDaemon(host, str(tmp_path / "h1" / "docker"), engine=ENGINE).start()
        daemon.import_busybox(str(tmp_path / "busybox.tar"))
        yield host, daemon
        daemon.stop()
    finally:
        host.stop()


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A 2-host lab (local scope) shared by the tests of a session; each test removes what it makes."""
    from acsnet.lab.topology import Lab

    the_lab = Lab(str(tmp_path_factory.mktemp("lab") / "lab"), f"acsnet-t{uuid.uuid4().hex[:4]}")
    the_lab.up(hosts=2, scope="local", **LAB_OPTIONS)
    yield the_lab
    the_lab.down()
    assert the_lab.leftovers() == []


@pytest.fixture(scope="session")
def lab26(tmp_path_factory):
    """A 2-host lab whose hosts run Docker 26 (Debian 13's, from .cache/trixie/), shared like `lab`.
    A missing engine fails the tests that use it (run .ci/install): CI must not skip them."""
    from acsnet.lab.topology import Lab

    the_lab = Lab(str(tmp_path_factory.mktemp("lab26") / "lab"), f"acsnet-n{uuid.uuid4().hex[:4]}")
    the_lab.up(hosts=2, scope="local", engine="26")
    yield the_lab
    the_lab.down()
    assert the_lab.leftovers() == []


@pytest.fixture
def fresh_lab(tmp_path):
    """A lab of its own, for tests that kill hosts, plugins or ZooKeeper."""
    from acsnet.lab.topology import Lab

    the_lab = Lab(str(tmp_path / "lab"), f"acsnet-f{uuid.uuid4().hex[:4]}")
    the_lab.up(hosts=2, **LAB_OPTIONS)
    yield the_lab
    the_lab.down()
    assert the_lab.leftovers() == []
