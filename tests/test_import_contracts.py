"""The layering holds: pyproject.toml's import contracts ([tool.importlinter]: the datapath imports no
protocol, driver or IPAM code; the IPAM no datapath or driver code; no driver another), checked by
import-linter's `lint-imports` on the package as a wheel lays it out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.test_packaging import MAPPED, ROOT


def test_the_import_contracts_hold(tmp_path):
    # import-linter finds a package's modules in its folder, without running its __init__: in a checkout
    # that folder lacks acsnet.ipam and the rest (acsnet/__init__.py adds them when imported), so the
    # contracts are checked on a copy laid out as package-dir lays out the wheel.
    for folder, package in MAPPED.items():
        shutil.copytree(os.path.join(ROOT, folder), tmp_path.joinpath(*package.split(".")),
                        ignore=shutil.ignore_patterns("__pycache__", "results"))
    lint_imports = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint_imports, "--no-cache", "--no-logo", os.path.join(ROOT, "pyproject.toml")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout, result.stdout
