# MicroPython driver for tests/test_node_mdns.py: a node.mdns.Responder that runs until
# told to stop, the way the node runtime drives it (announce at start, twice, 1 s apart;
# in announce mode again every EVERY ms; poll() when the socket is readable).
#
#   micropython mdns_node.py FILE
#   FILE: JSON {"host", "ip", "port", "txt", "name", "full", "every"} (a file: the Unix
#   port dies on arguments of 256 bytes or more)
#
# Prints "HEAP n" (bytes the import of node.mdns took), "FULL True|False" (the mode after
# open()), then "READY" once the first announcement is out. Commands on stdin, one per line:
#   stat  -> "DROPPED n"        stop (or end of input) -> goodbye, "BYE n", exit

import gc
import json
import select
import sys
import time

gc.collect()
free = gc.mem_free()
from node import mdns  # noqa: E402 (measured)

gc.collect()
print("HEAP", free - gc.mem_free())

with open(sys.argv[1]) as f:
    cfg = json.load(f)
r = mdns.Responder(cfg["host"], cfg["ip"], cfg["port"], cfg["txt"], cfg["name"], cfg["full"])
sock = r.open()
assert sock is r.sock
print("FULL", r.full)
pl = select.poll()
pl.register(sock, select.POLLIN)
pl.register(sys.stdin, select.POLLIN)
print("SENT", r.announce())
print("READY")
due = time.ticks_add(time.ticks_ms(), 1000)
every = cfg.get("every", 0)
while True:
    for obj, _ in pl.poll(50):
        if obj is sys.stdin:
            line = sys.stdin.readline().strip()
            if line == "stat":
                print("DROPPED", r.dropped)
            elif line == "stop" or not line:
                print("SENT", r.goodbye())
                r.close()
                print("BYE", r.dropped)
                sys.exit(0)
        else:
            r.poll()
    if due is not None and time.ticks_diff(time.ticks_ms(), due) >= 0:
        print("SENT", r.announce())
        due = time.ticks_add(due, every) if every else None
