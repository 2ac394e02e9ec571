"""Open vSwitch and Linux link control: the only place acsnet touches OVSDB, OpenFlow and netlink.

- `acsnet.ovsctl.ovsdb`: bridges and ports through one persistent OVSDB connection per process (python-ovs's
  IDL), with acsnet's facts in `external_ids`.
- `acsnet.ovsctl.openflow`: a driver's flows on a bridge (its cookie only): the difference after a change, the
  whole set in one bundle after a restart; count them, and send packets (packet-out).
- `acsnet.ovsctl.links`: veth pairs, MTU, checksum offload, moving a NIC's addresses and routes (pyroute2).
- `acsnet.ovsctl.vlan_pipeline`, `vxlan_pipeline`, `vpc_pipeline`: each driver's flow tables, as pure
  functions of the desired state (documented flow by flow in docs/pipeline.md); `router`,
  `kernel_routes`, `arp`, `host_setup`: the rest of a host's datapath.
Every command has a timeout and takes its arguments as a list; names are validated before use.
"""
