"""What `pip install .` installs: a wheel built from the sources, installed non-editable into a fresh
virtual environment, outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = ("pyproject.toml", "README.md", "plugins", "ipam", "ovsctl", "systemd")


def source_packages() -> set[str]:
    found = set()
    for top in ("plugins", "ipam", "ovsctl"):
        for directory, _dirs, files in os.walk(os.path.join(ROOT, top)):
            if "__init__.py" in files:
                found.add(os.path.relpath(directory, ROOT).replace(os.sep, "."))
    return found


def test_install_units_from_a_non_editable_install(tmp_path):
    # Build from a copy holding only what the sdist would: a build in the checkout leaves build/ behind.
    source = tmp_path / "source"
    source.mkdir()
    for name in SHIPPED:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, source / name)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
                   check=True, timeout=300)
    [wheel] = list(dist.glob("acsnet-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    # pyproject.toml lists the packages: one left out of the list would be missing from every install.
    shipped_packages = {os.path.dirname(n).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert source_packages() <= shipped_packages, source_packages() - shipped_packages
    units = sorted(n for n in os.listdir(os.path.join(ROOT, "systemd")) if n.endswith(".service"))
    assert all(f"plugins/systemd/{u}" in names for u in units)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # Without its dependencies: install-units needs none, and the units' lookup is what is tested.
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, timeout=300)
    dest, etc = tmp_path / "units", tmp_path / "etc"
    result = subprocess.run([str(venv / "bin" / "acsnet"), "install-units", "--dest", str(dest), "--config-dir", str(etc)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(dest)) == units
    for unit in units:
        text = (dest / unit).read_text()
        assert f"ExecStart={venv}/bin/acsnet " in text, unit
        assert "@ACSNET@" not in text
    assert (etc / "acsnet.conf").exists()
    # The units came from the installed package, not from this checkout.
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import plugins.units as u; print(u.UNITS_DIR)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert where.startswith(str(venv)) and where.endswith("plugins/systemd"), where
