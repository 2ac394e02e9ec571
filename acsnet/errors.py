"""The one exception hierarchy of acsnet.

Every error a driver, the IPAM, the store or the datapath raises is an `AcsnetError`, by kind: what
went wrong, never how to say it over HTTP. The protocol edge maps each kind to a status in one table
(`acsnet.plugins.error_status`); the CLI prints the message.
"""


class AcsnetError(Exception):
    """Base of every error that is reported to dockerd or to a CLI user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(AcsnetError):
    """The request is malformed or names an impossible value (bad JSON, bad CIDR, VLAN out of range)."""


class NotFound(AcsnetError):
    """The request names a pool, network or endpoint that does not exist."""


class Conflict(AcsnetError):
    """The request is well formed but collides with stored state (an address in use, a pool taken)."""


class Exhausted(AcsnetError):
    """A pool or supernet has nothing left to hand out."""


class StoreUnavailable(AcsnetError):
    """The store did not answer in time; nothing was changed by the failed request."""


class DatapathError(AcsnetError):
    """Open vSwitch or the kernel refused or did not answer; the message carries their own words."""


class HostNotSetUp(DatapathError):
    """This host lacks the layout `acsnet host-setup` makes (the bridge, its uplink): nothing to plug into."""


class Unreachable(AcsnetError):
    """A service this command asks (dockerd) did not answer at the address given: nothing was asked of it."""
