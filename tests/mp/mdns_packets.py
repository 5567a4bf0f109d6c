# MicroPython driver for tests/test_node_mdns.py: node.mdns.Responder over a fake socket
# (no network), so that CPython can check every reply byte for byte.
#
#   micropython mdns_packets.py FILE
#   FILE: JSON {"node": {"host", "ip", "port", "txt", "name", "full"}, "queries": [[hex,
#   source port, "tuple" | "raw", reset], ...]}: a source address as the esp32 port gives
#   it (tuple) or as the Unix port does (raw sockaddr_in); reset forgets the time of our
#   last multicast first. (A file: the Unix port dies on arguments of 256 bytes or more.)
#
# Prints "HEAP import n" (bytes the import of node.mdns took), "HEAP responder n" (what one
# Responder keeps), "HEAP modules a,b" (node modules loaded after it), "ANNOUNCE MC hex",
# "GOODBYE MC hex", then per query i "REPLY i MC|UNI hex" for each reply or "NONE i", and
# "DROPPED n" at the end.

import gc

gc.collect()
free = gc.mem_free()
from node import mdns  # noqa: E402 (measured)

gc.collect()
print("HEAP import", free - gc.mem_free())

import binascii  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


class Sock:
    def __init__(self):
        self.rx = []
        self.tx = []

    def recvfrom(self, n):
        if not self.rx:
            raise OSError(11)
        return self.rx.pop(0)

    def sendto(self, data, to):
        self.tx.append(("MC" if to == "MC" else "UNI", bytes(data)))


def show(tag, tx):
    for dest, data in tx:
        print(tag, dest, binascii.hexlify(data).decode())
    tx.clear()


with open(sys.argv[1]) as f:
    job = json.load(f)
cfg = job["node"]
gc.collect()
free = gc.mem_free()
r = mdns.Responder(cfg["host"], cfg["ip"], cfg["port"], cfg["txt"], cfg["name"], cfg["full"])
gc.collect()
print("HEAP responder", free - gc.mem_free())
print("HEAP modules", ",".join(sorted(k for k in sys.modules if k.startswith("node"))))
s = Sock()
r.sock = s
r._to = "MC"
r.announce()
show("ANNOUNCE", s.tx)
r.goodbye()
show("GOODBYE", s.tx)
r.announce()
s.tx.clear()
for i, (hx, port, style, reset) in enumerate(job["queries"]):
    if reset:
        r._mt = None
    if style == "tuple":
        src = ("127.0.0.1", port)
    else:
        src = b"\x02\x00" + bytes((port >> 8, port & 255)) + b"\x7f\x00\x00\x01" + bytes(8)
    s.rx.append((binascii.unhexlify(hx), src))
    r.poll()
    if s.tx:
        show("REPLY %d" % i, s.tx)  # noqa: UP031 (MicroPython)
    else:
        print("NONE", i)
print("DROPPED", r.dropped)
