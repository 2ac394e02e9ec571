"""acsnet: Docker libnetwork remote network drivers (vlan, vxlan, vpc) and IPAM on Open vSwitch and ZooKeeper.

This package is the server core: the protocol server, the store, the CLI. Drivers live in
`plugins.vlan`, `plugins.vxlan`, `plugins.vpc`; the IPAM in `ipam`; OVS control in `ovsctl`.
"""

__version__ = "0.1.0"
