"""The error kinds and the one table at the protocol edge that gives each its HTTP status; the CLI's
one error path."""

from __future__ import annotations

import subprocess
import sys

from acsnet.docker_api import DockerUnreachable
from acsnet.errors import (AcsnetError, Conflict, DatapathError, Exhausted, HostNotSetUp, InvalidRequest, NotFound,
                           StoreUnavailable)
from acsnet.lab.host import REPO, LabError
from acsnet.plugins.error_status import http_status


def test_each_kind_keeps_its_status():
    # dockerd reads a 200 Err from an IPAM call as success: every kind is non-200, and these are the statuses
    # dockerd and operators have seen.
    assert {kind.__name__: http_status(kind("x")) for kind in (
        InvalidRequest, NotFound, Conflict, Exhausted, StoreUnavailable, DatapathError, HostNotSetUp,
        DockerUnreachable, LabError, AcsnetError)} == {
        "InvalidRequest": 400, "NotFound": 404, "Conflict": 409, "Exhausted": 507, "StoreUnavailable": 503,
        "DatapathError": 500, "HostNotSetUp": 503, "DockerUnreachable": 502, "LabError": 500, "AcsnetError": 500}


def test_a_subclass_takes_its_kinds_status():
    class PoolTaken(Conflict):
        pass

    assert http_status(PoolTaken("x")) == 409


def test_errors_carry_no_http():
    assert not [kind for kind in (AcsnetError, InvalidRequest, DatapathError, HostNotSetUp, DockerUnreachable)
                if "http_status" in vars(kind)]


def test_an_os_error_in_the_cli_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "file").write_text("")
    result = subprocess.run([sys.executable, "-m", "acsnet.cli", "install-units", "--dest", str(tmp_path / "file" / "units"),
                             "--config-dir", str(tmp_path / "etc")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"acsnet install-units: Not a directory: {tmp_path / 'file' / 'units'}\n"
