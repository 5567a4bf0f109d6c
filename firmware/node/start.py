# Power-on: build the Node from the boot plan, or make the plan first. Runs once per boot;
# runtime.main() drops this module (and setup.py, config.py) before the node runs, so
# none of it stays on the heap.
#
# The boot plan (setup.plan) is stored in the key-value store under "boot", tied to the
# SHA-256 of config.json. A first boot, or a changed config, validates the config, writes
# the plan and resets: every node then runs from a lean boot, without the boot-only
# code's leftovers on its heap.

import gc
import sys
import time

from protocol import cbor
from protocol.errors import ProtocolError

from . import unload
from .link import Link
from .runtime import FIRMWARE, Node, hal


def node():
    """The node, built from the boot plan when config.json is the one it was made from.

    Otherwise (first boot, a changed config): validate, build, write the plan and reset, so
    that the node always runs from a lean boot, without the boot-only code's leftovers.
    """
    import hashlib
    import json

    try:
        with open("config.json", "rb") as f:
            raw = f.read()
        cfg = json.loads(raw)
    except (OSError, ValueError):
        cfg = None
    if not isinstance(cfg, dict):
        return _full(None)  # the config loader says what is wrong
    hal.init(cfg, ".")
    digest = hashlib.sha256(raw)
    digest.update(FIRMWARE.encode())  # a new version plans again (its DNS-SD record names it)
    digest = digest.digest()[:8]
    raw = None
    store = hal.Store()
    plan = None
    try:
        plan = cbor.loads(store.get("boot", b""))
        if plan["h"] != digest:
            plan = None
    except (ProtocolError, KeyError, TypeError, ValueError):
        plan = None
    if plan is None:
        return _full(cfg, store, digest)
    cfg.update(plan["cfg"])
    n = new(cfg, store)
    if plan.get("cause") is not None:  # the reset right after planning is not news
        n.reboot = plan.pop("cause")
        store.put("boot", cbor.dumps(plan))
    trial = "node.ota_boot" in sys.modules  # an update's own boots (SPEC 9.4)
    mode = 0 if trial else store.get("ota", 0)
    if trial:  # confirmed once online (node/ota_trial.py), rolled back if not in time
        n.trial = True
        n.reboot = 6  # REBOOT_OTA
        n.ota_at = time.ticks_add(time.ticks_ms(), cfg.get("ota", {}).get("trial_s", 300) * 1000)
    elif mode:  # taking or installing an update (node/ota.py): no drivers meanwhile
        store.put("ota", 0)
        __import__("node.ota", None, None, ["boot"]).boot(n, mode)
    _intern_handshake()
    try:
        network(n, plan)
        apply(n, plan, not mode)
    except (KeyError, TypeError, ValueError) as e:
        print("kithnet: config error: %s" % e)
        if hal.PLATFORM == "host":
            sys.exit(2)
        return None
    # What only the boot reads (the devices, the network's and the plan's settings, the
    # node's id and key as text, the BLE section): heap the running node has no use for.
    for k in ("devices", "sim", "net", "wifi", "gateway", "mdns", "hostname", "ble", "ota",
              "type", "model"):  # fmt: skip
        cfg.pop(k, None)
    cfg["node"] = {"name": cfg["node"]["name"]}
    return n


def new(cfg, store):
    """A Node (runtime.py), made here: this code runs once per boot, and start.py goes."""
    n = Node()
    n.cfg = cfg
    n.hal = hal
    n.store = store
    n.reboot = hal.reset_cause()
    n.firmware = FIRMWARE
    n.model = ""
    n.rules = {}  # capability id -> values rule
    n.owner = {}  # capability id -> driver
    n.bands = {}  # capability id -> dead-band
    n.devices = {}
    n.drivers = []
    n.hello_caps = {}
    n.last = {}  # what the gateway was last told
    n.flag = True  # sample now
    n.full = True  # the next report carries every value
    n.faults = 0
    n.booted = time.ticks_ms()
    n.interval = cfg["report"]["interval"]
    n.mdns = None
    n.plan = None
    n.link = Link(n)
    n.trial = False  # running an update on trial (start.py): confirmed once online
    n.ota_at = None  # ticks when node/ota.py is due (trial deadline, reset, idle)
    return n


def _intern_handshake():
    """Load the handshake's code once now, and drop it.

    Its names stay interned, so no later handshake adds any: a handshake months into a
    node's life, on a fragmented heap, would otherwise be what makes the interpreter grow
    its table of names (several KB in one piece) and fail with MemoryError.
    """
    for name in ("node.handshake", "protocol.keys"):
        __import__(name)
    unload("node.handshake", "protocol.keys", "protocol.kdf")


def _full(cfg, store=None, digest=None):
    from . import config, setup

    try:
        if cfg is None:
            config.load()  # raises ConfigError naming the problem
        store = setup.load(cfg)
        cause = hal.reset_cause()
        plan = setup.plan(cfg, digest, FIRMWARE)
    except (config.ConfigError, KeyError, TypeError, ValueError) as e:
        print("kithnet: config error: %s" % e)
        if hal.PLATFORM == "host":
            sys.exit(2)
        return None
    plan["cause"] = cause
    cfg = None
    gc.collect()
    store.put("boot", cbor.dumps(plan))
    print("kithnet: boot plan written; restarting lean")
    hal.reset()
    return None


def apply(node, plan, drivers=True):
    """A lean boot: drivers and rules from the boot plan (setup.plan), no validation.
    Without drivers (an update's boot) the node reports its diagnostics only."""
    c = node.cfg
    for dev in c["devices"] if drivers else ():
        try:
            mod = __import__("node.drivers." + dev["driver"], None, None, ["Driver"])
        except ImportError:
            raise ValueError("no driver %r" % dev["driver"])
        drv = mod.Driver(hal, dev)
        node.devices[dev["name"]] = drv
        node.drivers.append(drv)
    for cid in plan["rules"]:
        node.rules[cid] = tuple(plan["rules"][cid])
    owners = plan["owners"]
    for cid in owners if drivers else ():
        node.owner[cid] = node.drivers[owners[cid]]
    node.bands = plan["bands"]
    node.hello_caps = plan["hello"]
    node.model = plan["model"]


def network(node, plan):
    """Join the network, open the socket, publish DNS-SD, know the gateway.

    Before the drivers load: building the DNS-SD records needs a few KB in one piece
    for a moment, easier to find on a young heap.
    """
    c = node.cfg
    if "ble" in c:  # Bluetooth LE (node/ble.py), set up by node/ble_setup.py, then dropped
        wifi = not __import__("node.ble_setup", None, None, ["setup"]).setup(node)
        unload("node.ble_setup")
        if not wifi:
            return  # Bluetooth LE instead of Wi-Fi
    link = node.link
    node.ip = ip = hal.connect(c)
    link.sock = hal.udp(ip, c["port"])
    mode = c.get("mdns", "full" if hal.PLATFORM == "host" else "announce")
    if mode != "off":
        from . import mdns

        try:
            r = mdns.Responder(
                c["hostname"], ip, c["port"], plan["txt"], c["node"]["name"], mode == "full"
            )
            r.open()
            r.announce()
            node.mdns = r
        except OSError as e:
            node.log("mDNS unavailable: %s" % e)
    gw = plan["gw"]
    link.gw = hal.addr(gw[0], gw[1]) if gw else None
