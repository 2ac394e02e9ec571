"""Network options every driver reads the same way (`docker network create -o ...`), validated; each
driver's own options are in its `options` module, which builds on these."""

from __future__ import annotations

from acsnet.errors import InvalidRequest

MTU_KEY = "com.docker.network.driver.mtu"


def integer_option(text, what: str, low: int, high: int) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InvalidRequest(f"{what} must be an integer from {low} to {high}, got {text!r}") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{what} must be an integer from {low} to {high}, got {value}")
    return value
