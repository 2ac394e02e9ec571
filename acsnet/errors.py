"""The one exception hierarchy of acsnet.

Every error a driver, the IPAM or the store raises is an `AcsnetError`; the protocol server maps it to
a non-200 reply `{"Err": message}` in one place (dockerd reads a 200 `Err` from an IPAM call as
success, so the status code matters as much as the body).
"""


class AcsnetError(Exception):
    """Base of every error that is reported to dockerd or to a CLI user."""

    http_status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(AcsnetError):
    """The request is malformed or names an impossible value (bad JSON, bad CIDR, VLAN out of range)."""

    http_status = 400


class NotFound(AcsnetError):
    """The request names a pool, network or endpoint that does not exist."""

    http_status = 404


class Conflict(AcsnetError):
    """The request is well formed but collides with stored state (an address in use, a pool taken)."""

    http_status = 409


class Exhausted(AcsnetError):
    """A pool or supernet has nothing left to hand out."""

    http_status = 507


class StoreUnavailable(AcsnetError):
    """The store did not answer in time; nothing was changed by the failed request."""

    http_status = 503
