# Shared by the drv_*.py scripts (tests/test_node_drivers.py runs them under MicroPython
# with the board directory as argv[1]): the world in the test's CPython process, a manual
# clock, a stand-in for the node runtime, a dict store, and check().
#
# The drivers reach the world through the real host HAL (node.hal: host_io's UDP client,
# BOARD/.world naming the test's server). The scripts set scenes and read the truth over a
# control channel of their own to the same server (ops only the test's server has: "new",
# "adv", "get", "call", "set"), with a patient timeout, so that a long physics step is never
# asked twice.
# ruff: noqa: UP031
import select
import socket
import sys

from node.hal import host_io
from node.hal import impl as hal

from protocol import cbor

counts = [0, 0]


def check(name, cond, info=""):
    counts[0 if cond else 1] += 1
    print(("ok " if cond else "FAIL ") + name + ("" if cond else " %s" % (info,)))


def done():
    print("%d passed, %d failed" % (counts[0], counts[1]))


def board():
    return sys.argv[1]


_ctl = []  # the control socket, a poller, and one buffer for every answer: a script that
# keeps many small objects alive fragments its 110 KB heap, and a fresh 1 KB for each
# answer may not be found


def ctl(*req):
    """One control request to the test's world server; its result."""
    if not _ctl:
        with open(board() + "/.world") as f:
            h, p = f.read().split()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(socket.getaddrinfo(h, int(p))[0][-1])
        s.setblocking(False)  # readinto gives the one datagram there is, not a full buffer
        p = select.poll()
        p.register(s, select.POLLIN)
        _ctl.extend((s, p, bytearray(2048)))
    s, p, buf = _ctl
    s.send(cbor.dumps(req))
    if not p.poll(30000):
        raise OSError(110)
    r = cbor.loads(memoryview(buf)[: s.readinto(buf)])
    if r[0]:
        raise OSError(r[0])
    return r[1]


class World:
    """The world in the test's process: w.temperature, w.energy_j... read its attributes,
    the methods below call it."""

    def __getattr__(self, name):
        return ctl("get", name)

    def tick(self):
        ctl("call", "tick")

    def skip(self, seconds):
        ctl("call", "skip", seconds)

    def value(self, name):
        return ctl("call", "value", name)

    def param(self, key):
        return ctl("call", "param", key)

    def poll(self):
        """Look at world.json now."""
        ctl("call", "poll")

    def set(self, **overrides):
        ctl("set", overrides)


class Clock:
    """The world's manual clock, which the test moves: nothing depends on wall-clock time.
    t mirrors it (ms since the world was made)."""

    def __init__(self):
        self.t = 0

    def adv(self, ms):
        self.t += ms
        ctl("adv", ms)

    def run(self, ms, step=10, fn=None):
        for _ in range(ms // step):
            self.adv(step)
            if fn:
                fn(self.t)


class Store:
    def __init__(self):
        self.d = {}
        self.puts = 0

    def get(self, key, default=None):
        return self.d.get(key, default)

    def put(self, key, value):
        self.d[key] = value
        self.puts += 1


class Node:
    def __init__(self, store=None):
        self.hal = hal
        self.store = store or Store()
        self.devs = {}
        self.events = []
        self.logs = []
        self.changes = 0

    def changed(self):
        self.changes += 1

    def event(self, cid, code):
        self.events.append((cid, code))

    def device(self, name):
        return self.devs.get(name)

    def log(self, msg):
        self.logs.append(msg)


def world_json(text):
    with open(board() + "/world.json", "w") as f:
        f.write(text)


def setup(cfg, clock=None, seed=7, store=None):
    """A new world for cfg (on the manual clock if one is given, else the wall clock), and
    a stand-in node holding its drivers (hal = node.hal)."""
    ctl("new", cfg, seed, clock is not None)
    if clock is not None:
        clock.t = 0
    host_io.init(cfg, board())
    node = Node(store)
    for d in cfg["devices"]:
        node.devs[d["name"]] = driver(d)
    return World(), node


def driver(dev):
    return __import__("node.drivers." + dev["driver"], None, None, ["Driver"]).Driver(hal, dev)


def poll(w):
    """Make the world look at world.json now."""
    w.poll()
