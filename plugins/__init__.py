"""The plugins dockerd talks to (installed as `acsnet.plugins`): the protocol edge (`protocol`, `server`,
the `driver` interfaces) and the network drivers `vlan`, `vxlan`, `vpc` with their shared plumbing in
`segments`. The IPAM is `acsnet.ipam`, OVS control `acsnet.ovsctl`; the rest of acsnet is in acsnet/.
"""
