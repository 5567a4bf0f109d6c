# Shared by the drv_*.py scripts (tests/test_node_drivers.py runs them under MicroPython):
# a manual clock, a stand-in for the node runtime, a dict store, and check().
# ruff: noqa: UP031
import sys

from node import hal
from node.hal import host_io

counts = [0, 0]


def check(name, cond, info=""):
    counts[0 if cond else 1] += 1
    print(("ok " if cond else "FAIL ") + name + ("" if cond else " %s" % (info,)))


def done():
    print("%d passed, %d failed" % (counts[0], counts[1]))


class Clock:
    """A millisecond source the test moves by hand: nothing depends on wall-clock time."""

    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t

    def run(self, ms, step=10, fn=None):
        for _ in range(ms // step):
            self.t += step
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


def board():
    return sys.argv[1] if len(sys.argv) > 1 else None


def world_json(text):
    with open(board() + "/world.json", "w") as f:
        f.write(text)


def setup(cfg, clock=None, seed=7, store=None):
    """The world for cfg, and a stand-in node holding its drivers (hal = node.hal)."""
    logs = []
    w = host_io.init(cfg, board(), clock, seed, logs.append)
    w.logs = logs
    node = Node(store)
    for d in cfg["devices"]:
        node.devs[d["name"]] = driver(d)
    return w, node


def driver(dev):
    return __import__("node.drivers." + dev["driver"], None, None, ["Driver"]).Driver(hal, dev)


def poll(w):
    """Make the world look at world.json at its next tick."""
    w.pt = w.ms - 250
