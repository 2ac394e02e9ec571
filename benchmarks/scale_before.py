"""The "before" of the scale benchmark's comparisons: the simulated hosts (and the IPAM's hosts) of a
size run the code of another git ref of this repository, against the same ensemble, in the same run
as this checkout's ("after"). The ref is exported with `git archive`; each host process drops the
modules of this checkout and imports that tree's instead, so before and after differ in nothing but
the code."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export(ref: str, into: str) -> tuple[str, str]:
    """The tree of `ref` under `into`, and the commit it names."""
    commit = subprocess.run(["git", "-C", CHECKOUT, "rev-parse", "--verify", f"{ref}^{{commit}}"], check=True,
                            capture_output=True, text=True).stdout.strip()
    tree = os.path.join(into, f"before-{commit[:12]}")
    if not os.path.isdir(tree):
        os.makedirs(tree)
        archive = subprocess.run(["git", "-C", CHECKOUT, "archive", commit], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    return tree, commit


def _maps_this_checkout(finder) -> bool:
    kind = finder if isinstance(finder, type) else type(finder)  # setuptools installs its finder class itself
    return kind.__module__.startswith("__editable__") or kind.__name__ == "_CheckoutFolders"


def run_from(tree: str | None, module: str, function: str, *args) -> None:
    """In a new process: `module.function(*args)`, from the code of `tree` (None: this checkout's)."""
    if tree is not None:
        for name in [n for n in sys.modules if n == "acsnet" or n.startswith("acsnet.")]:
            del sys.modules[name]
        # the editable install's finder and this checkout's would map acsnet's folders here
        sys.meta_path[:] = [f for f in sys.meta_path if not _maps_this_checkout(f)]
        sys.path.insert(0, tree)
        importlib.invalidate_caches()
    target = importlib.import_module(module)
    if tree is not None and not os.path.abspath(target.__file__).startswith(os.path.abspath(tree)):
        raise RuntimeError(f"{module} came from {target.__file__}, not from {tree}")
    getattr(target, function)(*args)
