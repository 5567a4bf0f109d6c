# Heap cost of the drivers under -X heapsize=110k (gc.mem_free before and after).
#   drv_cost.py modules        "COST <module> <import bytes>" per driver module, after the
#                              host HAL is loaded and the qstr pool has room (so that a pool
#                              growth is not charged to whichever module happens to cause it)
#   drv_cost.py type FILE      a device type's config: "TYPE <name> <bytes>" for its drivers
#                              (import + instances), then every driver read once
# ruff: noqa: UP031
import gc
import sys


def free():
    gc.collect()
    return gc.mem_free()


def modules():
    import node.hal  # (host.py, host_io.py, sim.py: the host's own cost)

    for i in range(500):  # grow the qstr pool now (a failed lookup interns the name)
        hasattr(free, "q%d" % i)
    a = free()
    import node.drivers._util  # noqa: F401

    print("COST _util %d" % (a - free()))
    for m in (
        "sht3x",
        "aht20",
        "dht22",
        "pir",
        "contact",
        "button",
        "relay",
        "hlw8012",
        "ldr",
        "battery",
        "dimmer",
        "climate",
    ):
        a = free()
        __import__("node.drivers." + m)
        print("COST %s %d" % (m, a - free()))


def device_type(path):
    import json

    with open(path) as f:
        cfg = json.load(f)
    a = free()
    from node import hal
    from node.hal import host_io

    host_io.init(cfg, None, None, 1, lambda m: None)
    b = free()
    print("HOST %d" % (a - b))
    drivers = []
    for d in cfg["devices"]:
        x = free()
        mod = __import__("node.drivers." + d["driver"], None, None, ["Driver"])
        y = free()
        drivers.append(mod.Driver(hal, d))
        print("DRIVER %s import %d instance %d" % (d["driver"], x - y, y - free()))
    c = free()
    print("TYPE %s %d" % (cfg["type"], b - c))
    print("FREE %d" % c)
    for drv in drivers:
        drv.read()
    print("READ ok")


if sys.argv[1] == "modules":
    modules()
else:
    device_type(sys.argv[2])
