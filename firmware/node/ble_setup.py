# What a BLE node (node/ble.py) runs once: setup() at boot, before the drivers load (on a
# young heap), and wifi() when a config-set carries Wi-Fi credentials. start.py and
# Ble.configure drop this module again after each use; its names stay interned from the
# boot, so loading it again later adds none (a new name months into a node's life could
# be what makes the interpreter grow its table of names, several KB in one piece).

import time

from micropython import const

from protocol import messages as M
from protocol.errors import BAD_VALUE

from . import unload
from .ble import Ble

_BLOCK = const(64)  # as in ble.py
_RTC = const(b"kb1")  # as in ble.py: RTC memory holds this, the next value and the mark
# SPEC 13.1: discovery.BLE_SERVICE and BLE_FRAME_CHAR (a test holds these copies to it).
_SERVICE = const("6b697468-6e65-7401-0000-000000000001")
_CHAR = const("6b697468-6e65-7401-0000-000000000002")


def counter(b, rtc):
    """Resume the broadcast counter (SPEC 5.5): from RTC memory after a deep-sleep wake (rtc:
    a node without Wi-Fi), else at the stored mark, with the next block reserved at once."""
    node = b.node
    m = node.store.get("ble.mark")
    b.mark = int.from_bytes(m, "big") if isinstance(m, bytes) else 0
    b.rtc = rtc
    v = None
    if rtc:
        r = node.hal.rtc_memory()
        if len(r) == 13 and r[:3] == _RTC and int.from_bytes(r[8:13], "big") == b.mark:
            v = int.from_bytes(r[3:8], "big")
    if v is None or v > b.mark:
        v = b.mark
        m = v + _BLOCK  # a cold boot: skip to the mark, reserve the next block
        node.store.put("ble.mark", m.to_bytes(5, "big"))
        b.mark = m
    b.value = v


def setup(node):
    """Called at boot (start.py) when config.json has a "ble" section; True when the node
    has no Wi-Fi. The runtime knows nothing of BLE: what it calls is rerouted to the Ble
    object's methods on this node's objects alone, so a node without BLE pays no byte of
    heap for it. Reports and events (Link.post) go to the air, and also to the gateway's
    session if the node has Wi-Fi; a Wi-Fi node's loop turns the advertisements with
    Link.tick; config-set takes Wi-Fi credentials; a node without Wi-Fi runs Ble.run
    instead of Node.run."""
    cfg = node.cfg
    c = cfg["ble"]
    b = node.ble = Ble()
    b.node = node
    b.wifi = c.get("wifi", False)
    b.adv_ms = c.get("adv_ms", 100)
    b.burst_ms = c.get("burst_ms", 1000)
    b.radio = node.hal.radio(cfg["node_id"])
    # K_b (SPEC 5.4, protocol/keys.broadcast_key) on kdf.py alone: keys.py is 3 KB more
    kdf = __import__("protocol.kdf", None, None, ["hkdf"])
    b.bkey = kdf.hkdf(cfg["key"], b"", b"kithnet/1 broadcast" + cfg["node_id"], 16)
    # -- BTHome (SPEC 13.2): "adv" is "kithnet" (default), "bthome" or "both" ------------
    adv = c.get("adv", "kithnet")
    if adv != "kithnet":  # the bindkey (keys.bthome_key); node/bthome.py runs at each report
        b.bt = [kdf.hkdf(cfg["key"], b"", b"kithnet/1 bthome" + cfg["node_id"], 16),
                adv == "both", 0]  # fmt: skip
        __import__("node.bthome")  # its names interned now, on a young heap, then dropped
        unload("node.bthome")
    # -- end BTHome ----------------------------------------------------------------------
    unload("protocol.kdf")
    counter(b, not b.wifi)
    b.advs = []
    b.i = 0
    b.switch_at = b.posted = b.pair_until = time.ticks_ms()
    b.conn = b.handle = None
    b.connectable = False
    link = node.link
    link.post = b.post
    node.configure = b.configure
    if b.wifi:
        link.tick = b.tick
        return False
    node.interval = c.get("interval_s", node.interval)
    cfg["sleep"]["interval"] = node.interval  # Node.due() tells the gateway this
    link.rtc = b  # its save() does nothing: GATT sessions end with their connection
    unload("node.rtc")
    link.sock = b
    b.connectable = c.get("connectable", False)
    pair = c.get("pair_s", 30)
    if not b.connectable and pair and node.reboot != M.REBOOT_DEEP_SLEEP:
        b.pair_until = time.ticks_add(b.posted, pair * 1000)
    b.handle = b.radio.serve(_SERVICE, _CHAR)
    node.run = b.run
    node.ip = None
    return True  # no Wi-Fi: start.py skips the network


def wifi(node, settings):
    """Wi-Fi credentials from config-set {"wifi": {"ssid", "password"}}, which reached the
    node sealed in a session (over GATT before it has Wi-Fi); the Wi-Fi HAL uses them from
    the next boot. (True, the other settings for Node.configure), or (False, the answer
    that refuses them). The password is never read back."""
    v = settings["wifi"]
    ok = (
        isinstance(v, dict)
        and isinstance(v.get("ssid"), str)
        and 0 < len(v["ssid"]) <= 32
        and isinstance(v.get("password", ""), str)
        and len(v.get("password", "")) <= 64
    )
    if not ok:
        return False, {M.CODE: BAD_VALUE, M.TEXT: "cannot set wifi"}
    node.store.put("wifi.ssid", v["ssid"])
    node.store.put("wifi.pass", v.get("password", ""))
    settings = dict(settings)
    del settings["wifi"]
    return True, settings
