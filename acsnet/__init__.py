"""acsnet: Docker libnetwork remote network drivers (vlan, vxlan, vpc) and IPAM on Open vSwitch and ZooKeeper.

The one installed package. Its own folder holds what is neither a plugin, the IPAM nor the datapath:
errors, config, the store, the CLI, operator tools, the front, the lab. The drivers and the protocol
edge are `acsnet.plugins`, the IPAM `acsnet.ipam`, the datapath `acsnet.ovsctl`; the benchmarks and
the systemd units are `acsnet.benchmarks` and `acsnet.systemd`.
"""

import os

__version__ = "0.1.0"

# A wheel puts plugins/, ipam/, ovsctl/, benchmarks/ and systemd/ inside this package (package-dir in
# pyproject.toml). A source checkout keeps them at its top, the folders the project is known by, beside
# this one: there `acsnet.ipam` is found by searching the checkout too. This covers `python -m pytest`
# and `python -m acsnet.cli` from the checkout and the lab's subprocesses, which run with the checkout as
# their working directory; an editable install maps the same folders by itself and agrees with this.
_HERE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(_HERE)
if (not os.path.isdir(os.path.join(_HERE, "ipam"))
        and os.path.isfile(os.path.join(_CHECKOUT, "pyproject.toml"))
        and os.path.isfile(os.path.join(_CHECKOUT, "ipam", "__init__.py"))):
    __path__.append(_CHECKOUT)
