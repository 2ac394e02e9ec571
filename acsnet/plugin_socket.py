"""The plugin's unix socket, made first thing by `acsnet serve` (standard library only, so nothing heavy
is imported before it exists).

dockerd gives a managed plugin a fixed window to open its socket after starting it (moby's
pluginPostStart: a 0.5 s sleep, then a dial every 3 s, four tries: about 12.5 s) and disables the
plugin on `connect: no such file or directory`; a process plugin is found the same way, by its socket
file. Importing gunicorn and the drivers, checking the host's OVS layout and opening the store
all take time, seconds on a loaded host, so the socket is bound and listening before any of it: a
connection made meanwhile waits in the kernel's backlog until the gunicorn worker accepts it, and
Activate and GetCapabilities then answer whatever the store's or OVS's state (acsnet/composition.py).
"""

from __future__ import annotations

import os
import socket
import stat

from acsnet.errors import AcsnetError

SOCKET_UMASK = 0o117  # socket mode 0660: root only, as dockerd runs as root
BACKLOG = 2048  # gunicorn's own default; dockerd's probes and first calls wait here while the worker starts

# Plugin names dockerd knows each process by (`-d NAME`, `--ipam-driver NAME`): the socket's name.
PLUGIN_NAMES = {"ipam": "acsnet", "vlan": "vlan", "vxlan": "vxlan", "vpc": "vpc"}


def socket_path(plugin_dir: str, name: str) -> str:
    return os.path.join(plugin_dir, f"{name}.sock")


def listen(plugin_dir: str, name: str) -> socket.socket:
    """Bind and listen on `<plugin_dir>/<name>.sock`, replacing a socket a previous run left behind."""
    os.makedirs(plugin_dir, mode=0o755, exist_ok=True)
    path = socket_path(plugin_dir, name)
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise AcsnetError(f"{path} exists and is not a socket")
        if _answers(path):
            raise AcsnetError(f"another process already serves {path}: stop it first")
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(SOCKET_UMASK)
    try:
        listener.bind(path)
    except BaseException:
        listener.close()
        raise
    finally:
        os.umask(old_umask)
    listener.listen(BACKLOG)
    return listener


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(path)
        return True
    except OSError:  # refused: left behind by a process that is gone
        return False
    finally:
        probe.close()


def close(listener: socket.socket, path: str) -> None:
    """Close a listener that was never handed to gunicorn (serving failed to start) and remove its file."""
    listener.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
