"""Real components run on this machine for the lab and the tests: ZooKeeper, Open vSwitch, dockerd,
each started by pid and stopped by the same pid, never a system-wide service."""
