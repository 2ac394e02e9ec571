"""What `pip install .` installs: a wheel built from the sources, installed non-editable into a fresh
virtual environment, outside the checkout."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = ("pyproject.toml", "README.md", "acsnet", "plugins", "ipam", "ovsctl", "benchmarks", "systemd")
# The folders of the checkout and the package each becomes in an install (pyproject.toml's package-dir).
MAPPED = {"acsnet": "acsnet", "plugins": "acsnet.plugins", "ipam": "acsnet.ipam", "ovsctl": "acsnet.ovsctl",
          "benchmarks": "acsnet.benchmarks"}


def source_packages() -> set[str]:
    found = set()
    for top, package in MAPPED.items():
        for directory, _dirs, files in os.walk(os.path.join(ROOT, top)):
            if "__init__.py" in files:
                inside = os.path.relpath(directory, os.path.join(ROOT, top))
                found.add(".".join([package, *([] if inside == "." else inside.split(os.sep))]))
    return found


def test_a_non_editable_install_is_one_package_that_works(tmp_path):
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
    assert all(f"acsnet/systemd/{u}" in names for u in units)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    before = set(os.listdir(site))
    # Without its dependencies: what is tested is where acsnet's own files go and that they find each
    # other (tests/test_dependency_floors.py installs the dependencies from PyPI).
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    # One top-level package: generic names (plugins, ipam, ovsctl) would collide with other distributions.
    assert set(os.listdir(site)) - before == {"acsnet", "acsnet-0.1.0.dist-info"}
    record = (pathlib.Path(site) / "acsnet-0.1.0.dist-info" / "RECORD").read_text().splitlines()
    ours = {line.split(",")[0].split("/")[0] for line in record}
    assert ours <= {"acsnet", "acsnet-0.1.0.dist-info", "..", "__pycache__"}, ours
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
    where = subprocess.run([python, "-c", "import acsnet.units as u; print(u.UNITS_DIR)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert where.startswith(str(venv)) and where.endswith("acsnet/systemd"), where

    # The rest of the CLI and the mapped packages, with the dependencies this test runs with lent to the
    # fresh environment by a .pth line (a path only: the editable install's own .pth files there are not
    # read), after its own site-packages, so every acsnet module still comes from the wheel.
    (pathlib.Path(site) / "zz-lent-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for argv in ([str(venv / "bin" / "acsnet"), "bench", "--help"], [str(venv / "bin" / "acsnet"), "lab", "--help"],
                 [python, "-c", "import acsnet.plugins.vlan.driver, acsnet.ipam.driver, acsnet.ovsctl.links as l; "
                                "print(l.__file__)"]):
        result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 0, (argv, result.stderr)
    assert result.stdout.strip() == os.path.join(site, "acsnet", "ovsctl", "links.py")


def test_a_second_checkout_run_with_this_checkouts_virtualenv_imports_its_own_folders(tmp_path):
    """A clean clone run with this checkout's virtualenv (whose editable install maps acsnet's folders
    here), as the scale benchmark's A/B runs are: its acsnet, from its working directory, takes its own
    plugins/ and the rest, not this checkout's."""
    assert any(type(f).__module__.startswith("__editable__") or getattr(f, "__module__", "").startswith("__editable__")
               for f in sys.meta_path), "runs with the project's editable install (.ci/install makes one)"
    for folder in MAPPED:
        shutil.copytree(os.path.join(ROOT, folder), tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "results"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path)
    result = subprocess.run([sys.executable, "-c", "import acsnet, acsnet.plugins.segments.worker as w, acsnet.ipam, "
                             "acsnet.benchmarks.scale as b; print(acsnet.__file__, w.__file__, acsnet.ipam.__file__, b.__file__)"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    files = result.stdout.split()
    assert len(files) == 4 and all(f.startswith(str(tmp_path)) for f in files), files
