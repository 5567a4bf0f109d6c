# The hardware abstraction layer: one interface, one module per platform.
# esp32.py drives real hardware; host.py runs the same node on a PC against a simulated
# world that the board runner keeps in CPython (kithnet.tools.world, reached through
# host_io.py), so every behaviour is testable without a board.
import sys

if sys.platform == "esp32":
    from .esp32 import *  # noqa: F403
else:
    from .host import *  # noqa: F403
