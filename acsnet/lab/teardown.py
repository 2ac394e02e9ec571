"""Taking a lab down: everything it made, found by its prefix and workdir (also after a killed run),
and what of it is left."""

from __future__ import annotations

import os
import shutil
import signal
import time

from acsnet.lab.host import LabError, SimulatedHost
from acsnet.lab.layout import Progress, quiet
from acsnet.lab.processes import cgroup_pids, cgroup_roots, cmdline_of, kill_quietly


class LabTeardown:
    """`Lab`'s down and leftovers (a mixin: the cgroup lookups are `Lab`'s)."""

    def down(self, progress: Progress = quiet) -> list[str]:
        """Remove everything this lab made, found by its prefix and workdir; safe to run twice and
        after a killed run. Returns what was removed."""
        removed = []
        netns = sorted(n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
                       if n.startswith(self.prefix + "-"))
        # Containers first: they live in namespaces of their own, under the lab's cgroup parents.
        for pid in self._container_pids():
            kill_quietly(pid, signal.SIGKILL)
        for name in netns:
            progress(f"stopping {name}")
            node = name[len(self.prefix) + 1:]
            SimulatedHost.attach(node, name, os.path.join(self.workdir, node)).stop(grace=1)
            removed.append(f"netns {name}")
        for pid in self._container_pids():  # any started while the nodes were stopping
            kill_quietly(pid, signal.SIGKILL)
        removed += self._remove_cgroups()
        removed += self._remove_plugin_cgroups()
        if os.path.exists(self.workdir):
            for attempt in range(20):
                try:
                    shutil.rmtree(self.workdir)
                    break
                except OSError:
                    time.sleep(0.25)  # a mount of a dying namespace may linger an instant
            else:
                raise LabError(f"could not remove {self.workdir}; see 'grep {self.workdir} /proc/mounts'")
            removed.append(f"dir {self.workdir}")
        return removed

    def _container_pids(self) -> set[int]:
        pids = set()
        for top in self._cgroup_dirs():
            pids |= cgroup_pids(top)
        return pids

    def _remove_cgroups(self) -> list[str]:
        removed = []
        for top in self._cgroup_dirs():
            for directory, _subdirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                for attempt in range(20):
                    try:
                        os.rmdir(directory)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)  # killed tasks leave the cgroup an instant later
            removed.append(f"cgroup {top}")
        return removed

    def _plugin_cgroups(self) -> list[str]:
        """Cgroups of the managed plugins the lab installed (named by their ids, below dockerd's cgroup)."""
        ids = set((self.state() or {}).get("plugin_ids", []))
        found = []
        for root in cgroup_roots() if ids else []:
            for directory, subdirs, _files in os.walk(root):
                if directory.count("/") - root.count("/") >= 4:
                    subdirs.clear()
                found += [os.path.join(directory, d) for d in subdirs if d in ids]
        return found

    def _remove_plugin_cgroups(self) -> list[str]:
        removed = []
        for directory in self._plugin_cgroups():
            for attempt in range(20):
                try:
                    os.rmdir(directory)
                    removed.append(f"cgroup {directory}")
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        return removed

    def leftovers(self) -> list[str]:
        """What of this lab still exists: namespaces, cgroups, processes, mounts, files (empty after down)."""
        found = [f"netns {n}" for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
                 if n.startswith(self.prefix + "-")]
        found += [f"cgroup {d}" for d in self._cgroup_dirs()]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                cmdline = cmdline_of(int(entry))
                if self.workdir in cmdline or f"{self.prefix}-" in cmdline:
                    found.append(f"process {entry}: {cmdline[:120]}")
        with open("/proc/self/mountinfo") as f:
            found += [f"mount {line.split()[4]}" for line in f if self.workdir in line]
        if os.path.exists(self.workdir):
            found.append(f"dir {self.workdir}")
        return found
