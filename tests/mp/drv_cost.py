# Heap cost of the drivers and of the host HAL under -X heapsize=110k (gc.mem_free before
# and after; the qstr pool grown first, so that a pool growth is not charged to whichever
# module happens to cause it).
#   drv_cost.py modules            "COST <module> <import bytes>" per driver module, after
#                                  the host HAL is loaded
#   drv_cost.py hostio BOARD       "HOSTIO <bytes>": hal/host_io.py imported and init()ed
#                                  (BOARD/.world names the world server), with what the node
#                                  has loaded before it (protocol.cbor, protocol.messages)
#   drv_cost.py type FILE BOARD    a device type's config: "HOST <bytes>" for node.hal with
#                                  host_io.init, "TYPE <name> <bytes>" for its drivers (import
#                                  + instances), then every driver read once from the world
# ruff: noqa: UP031
import gc
import sys


def free():
    gc.collect()
    return gc.mem_free()


def grow_qstr_pool():
    for i in range(500):  # a failed lookup interns the name
        hasattr(free, "q%d" % i)


def modules():
    import node.hal

    grow_qstr_pool()
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


def host_io_cost(board):
    from protocol import cbor, messages  # noqa: F401  (loaded before the HAL on a node)

    sys.path.insert(0, next(p for p in sys.path if p.endswith("firmware")) + "/node/hal")
    grow_qstr_pool()
    a = free()
    import host_io  # the module alone, without node.hal's host.py

    host_io.init({}, board)
    print("HOSTIO %d" % (a - free()))
    sys.path.pop(0)
    p = host_io.Pin(0)
    print("PROBE %s" % (p.value(),))  # one round trip: the world is there


def device_type(path, board):
    import json

    with open(path) as f:
        cfg = json.load(f)
    a = free()
    from node.hal import host_io
    from node.hal import impl as hal

    host_io.init(cfg, board)
    b = free()
    print("HOST %d" % (a - b))
    grow_qstr_pool()  # the drivers' cost, not a growth of the name table they happen to cause
    b = free()
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
elif sys.argv[1] == "hostio":
    host_io_cost(sys.argv[2])
else:
    device_type(sys.argv[2], sys.argv[3])
