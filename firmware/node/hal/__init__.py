# The hardware abstraction layer: one interface, one module per platform.
# esp32.py drives real hardware; host.py runs the same node on a PC against a simulated
# world that the board runner keeps in CPython (kithnet.tools.world, reached through
# host_io.py), so every behaviour is testable without a board.
#
# `impl` is the platform's module itself (`from node.hal import impl as hal`): a star
# import would copy every name into a second globals table on the node's heap.
import sys

if sys.platform == "esp32":
    from . import esp32 as impl
else:
    from . import host as impl  # noqa: F401
