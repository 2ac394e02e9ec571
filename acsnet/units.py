"""The systemd units in systemd/, installed with the path of this installation's `acsnet`.

An installed wheel has them as package data, `acsnet/systemd/` (pyproject.toml maps the folder there);
a source checkout, and an editable install of one, read them where they are kept: systemd/ beside
acsnet/ (setuptools' editable finder does not map a data-only package).
"""

from __future__ import annotations

import os
import shutil
import sys

from acsnet.config import config_example

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGED, _CHECKOUT = os.path.join(_HERE, "systemd"), os.path.join(os.path.dirname(_HERE), "systemd")
UNITS_DIR = _PACKAGED if os.path.isdir(_PACKAGED) else _CHECKOUT
PLACEHOLDER = "@ACSNET@"


def acsnet_executable() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "acsnet")
    return here if os.path.exists(here) else (shutil.which("acsnet") or "/usr/local/bin/acsnet")


def install_units(dest: str, config_dir: str | None) -> list[str]:
    os.makedirs(dest, exist_ok=True)
    installed = []
    executable = acsnet_executable()
    for name in sorted(os.listdir(UNITS_DIR)):
        if not name.endswith(".service"):
            continue
        with open(os.path.join(UNITS_DIR, name)) as f:
            text = f.read().replace(PLACEHOLDER, executable)
        path = os.path.join(dest, name)
        with open(path, "w") as f:
            f.write(text)
        installed.append(path)
    if config_dir:
        os.makedirs(config_dir, exist_ok=True)
        conf = os.path.join(config_dir, "acsnet.conf")
        if not os.path.exists(conf):  # never overwrite an operator's configuration
            with open(conf, "w") as f:
                f.write(config_example())
            installed.append(conf)
    return installed
