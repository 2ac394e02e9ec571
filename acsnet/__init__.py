"""acsnet: Docker libnetwork remote network drivers (vlan, vxlan, vpc) and IPAM on Open vSwitch and ZooKeeper.

The one installed package. Its own folder holds what is neither a plugin, the IPAM nor the datapath:
errors, config, the store, the CLI, operator tools, the front, the lab. The drivers and the protocol
edge are `acsnet.plugins`, the IPAM `acsnet.ipam`, the datapath `acsnet.ovsctl`; the benchmarks and
the systemd units are `acsnet.benchmarks` and `acsnet.systemd`.
"""

import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.1.0"

# A wheel puts plugins/, ipam/, ovsctl/ and benchmarks/ inside this package (package-dir in
# pyproject.toml). A source checkout keeps them at its top, the folders the project is known by, beside
# this one: there a finder maps `acsnet.ipam` to ipam/ and so on, as an editable install's finder does.
# This is what `python -m pytest` and `python -m acsnet.cli` from the checkout use, and the lab's
# subprocesses (their working directory is the checkout). Adding the whole checkout to __path__ would
# do too, but then `acsnet.acsnet.acsnet...` exists and pkgutil.walk_packages never ends.
_MAPPED = ("plugins", "ipam", "ovsctl", "benchmarks")
_HERE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(_HERE)


class _CheckoutFolders(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        parent, _, name = fullname.rpartition(".")
        if parent != __name__ or name not in _MAPPED:
            return None
        folder = os.path.join(_CHECKOUT, name)
        return importlib.util.spec_from_file_location(fullname, os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])


if (not os.path.isdir(os.path.join(_HERE, "ipam"))
        and os.path.isfile(os.path.join(_CHECKOUT, "pyproject.toml"))
        and os.path.isfile(os.path.join(_CHECKOUT, "ipam", "__init__.py"))):
    # First: an editable install of another checkout (a clean clone run with the first checkout's
    # virtualenv) would otherwise map this acsnet's plugins/ and the rest to that other checkout.
    sys.meta_path.insert(0, _CheckoutFolders())
