"""The systemd units in systemd/, installed with the path of this installation's `acsnet`."""

from __future__ import annotations

import os
import shutil
import sys

from plugins.config import config_example

UNITS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "systemd")
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
