"""Open vSwitch and Linux link control: the only place acsnet touches OVSDB, OpenFlow and netlink.

- `ovsctl.ovsdb`: bridges and ports (ovs-vsctl), with acsnet's facts in `external_ids`.
- `ovsctl.openflow`: install a bridge's whole flow table atomically (ovs-ofctl --bundle replace-flows),
  dump it, and send packets (packet-out).
- `ovsctl.links`: veth pairs, MTU, checksum offload, moving a NIC's addresses and routes (pyroute2).
- `ovsctl.vlan_pipeline`: the vlan driver's flow tables, documented there table by table.
Every command has a timeout and takes its arguments as a list; names are validated before use.
"""
