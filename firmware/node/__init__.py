# The kithnet node firmware (MicroPython). runtime.main() is what main.py runs.
import sys


def unload(*names):
    """Forget modules that only boot or a handshake needs; a later import loads them again.

    On a 110 KB heap, code that runs once should not stay: dropping the module from
    sys.modules and from its package lets the collector free its functions and tables.
    """
    for name in names:
        if sys.modules.pop(name, None) is None:
            continue
        pkg, _, attr = name.rpartition(".")
        parent = sys.modules.get(pkg)
        if parent is not None:
            try:
                delattr(parent, attr)
            except AttributeError:
                pass
