# MicroPython driver for tests/test_node_mdns.py: node.mdns.find_gateway once.
#
#   micropython mdns_find.py IP TIMEOUT_MS
#
# Prints "HEAP import n", "HEAP call n" (what stays allocated after the call, the answer
# aside), "LOADED <modules of node>" and "RESULT <json>" (null when nothing answered).

import gc
import json
import sys

gc.collect()
free = gc.mem_free()
from node import mdns  # noqa: E402 (measured)

gc.collect()
print("HEAP import", free - gc.mem_free())
gc.collect()
free = gc.mem_free()
res = mdns.find_gateway(sys.argv[1], int(sys.argv[2]))
out = json.dumps(res)
res = None
gc.collect()
print("HEAP call", free - gc.mem_free())
print("LOADED", " ".join(sorted(k for k in sys.modules if k.startswith("node"))))
print("RESULT", out)
