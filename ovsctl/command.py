"""Run OVS's own tools with a timeout, turning failures into datapath errors."""

from __future__ import annotations

import re
import subprocess

from acsnet.errors import DatapathError, InvalidRequest

INTERFACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
DEFAULT_TIMEOUT = 10.0


def check_interface_name(name: str) -> str:
    if not INTERFACE_NAME.match(name or ""):
        raise InvalidRequest(f"{name!r} is not a valid interface name (1-15 of letters, digits, '_', '.', '-')")
    return name


def run(argv: list[str], *, input_text: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    try:
        result = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DatapathError(f"{argv[0]} did not answer within {timeout:g}s: {' '.join(argv[1:4])}") from None
    except FileNotFoundError:
        raise DatapathError(f"{argv[0]} is not installed (apt-get install openvswitch-switch)") from None
    if result.returncode != 0:
        raise DatapathError(f"{argv[0]} {' '.join(argv[1:3])}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout
