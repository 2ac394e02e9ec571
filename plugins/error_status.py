"""The one table from an error's kind to the HTTP status the protocol edge answers with.

dockerd reads a 200 `Err` from an IPAM call as success, so the status matters as much as the body: every
error gets a non-200 status, the most specific kind listed wins, and a kind not listed is a 500.
"""

from __future__ import annotations

from acsnet.errors import (AcsnetError, Conflict, DatapathError, Exhausted, HostNotSetUp, InvalidRequest, NotFound,
                           StoreUnavailable, Unreachable)

STATUS: dict[type[AcsnetError], int] = {
    InvalidRequest: 400,
    NotFound: 404,
    Conflict: 409,
    Exhausted: 507,
    StoreUnavailable: 503,
    HostNotSetUp: 503,
    DatapathError: 500,
    Unreachable: 502,
    AcsnetError: 500,
}


def http_status(error: AcsnetError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500
