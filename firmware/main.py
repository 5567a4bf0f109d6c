# Runs at every boot (after boot.py on an ESP32; alone on the host): start the node.
import sys

if "lib" not in sys.path and "/lib" not in sys.path:
    sys.path.append("lib")  # the Unix port has no /lib on its path; the board layout does

from node import runtime

runtime.main()
