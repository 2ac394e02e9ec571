"""The acsnet IPAM: address pools and allocations kept in the shared store, so that hosts never hand
out the same address. `acsnet.ipam.driver.AcsnetIpam` is what the protocol server serves."""
