# Bluetooth LE for a node whose config.json has a "ble" section (loaded only then).
#
# Reports and events go out as broadcast frames (SPEC 4, sealed under the broadcast key
# K_b, SPEC 5.4) in advertisements (SPEC 13: Manufacturer Specific Data, at most 31 bytes
# of advertising data, so a report with more readings than fit becomes several frames,
# each with its own sequence number, advertised in turn). The broadcast counter (SPEC 5.5)
# is persisted write-ahead in blocks of 64; a deep-sleep wake resumes it from RTC memory
# without a flash write, a cold boot skips ahead to the stored mark.
#
# A node without Wi-Fi ("wifi": false) runs its own loop here (run()): sample, advertise
# a burst, deep sleep (if sleep is enabled) until the next report. If it is connectable
# (always, or for "pair_s" seconds after any boot but a deep-sleep wake) it serves the
# kithnet GATT service (SPEC 13.1): the gateway connects, subscribes, writes BLE_OPEN, and
# the node's ordinary Link runs the handshake and answers commands and config over
# that one characteristic, frames as over UDP; this object is the Link's "socket".

import gc
import select
import time

from protocol import frame
from protocol import messages as M
from protocol.errors import BAD_VALUE, LIMIT, ProtocolError

from . import unload

_BLOCK = 64
_RTC = b"kb1"
_DIAG = 30  # capability ids from here on are diagnostics (RSSI, uptime): not broadcast
# SPEC 13 (protocol/discovery.py, not imported: its module costs 2 KB of heap, and a
# test holds these copies to it):
# AD length, type 0xFF Manufacturer Specific Data, company id 0xFFFF little-endian.
_AD = b"\xff\xff\xff"
_FRAME_MAX = 27
_OPEN = b"\x00"  # discovery.BLE_OPEN: the gateway subscribed and wants the hello
_SERVICE = "6b697468-6e65-7401-0000-000000000001"  # discovery.BLE_SERVICE
_CHAR = "6b697468-6e65-7401-0000-000000000002"  # discovery.BLE_FRAME_CHAR


class Counter:
    """The broadcast sequence (SPEC 5.5): a mark stored before any number below it is used,
    so a reboot resumes at the mark and never reuses one. With rtc, the next value also
    rides in RTC memory (written before each number is used): a deep-sleep wake goes on
    from it, with no flash write and no skip."""

    def __init__(self, hal, store, rtc):
        self.hal = hal
        self.store = store
        self.rtc = rtc
        m = store.get("ble.mark")
        self.mark = int.from_bytes(m, "big") if isinstance(m, bytes) else 0
        v = None
        if rtc:
            r = hal.rtc_memory()
            if len(r) == 13 and r[:3] == _RTC and int.from_bytes(r[8:13], "big") == self.mark:
                v = int.from_bytes(r[3:8], "big")
        if v is None or v > self.mark:
            v = self.mark
            self._store(v + _BLOCK)  # a cold boot: skip to the mark, reserve the next block
        self.value = v

    def _store(self, mark):
        self.store.put("ble.mark", mark.to_bytes(5, "big"))  # 5 bytes: NVS i32 is too short
        self.mark = mark

    def next(self):
        v = self.value
        if v > frame.MAX_SEQ:
            raise ProtocolError(LIMIT, "broadcast counter exhausted: re-key the node")
        if v >= self.mark:
            self._store(v + _BLOCK)
        self.value = v + 1
        if self.rtc:
            self.hal.rtc_memory(_RTC + self.value.to_bytes(5, "big") + self.mark.to_bytes(5, "big"))
        return v


class _NoRtc:
    """Link.rtc of a node without Wi-Fi: its GATT sessions end with their connection, and
    RTC memory holds the broadcast counter."""

    def save(self, link):
        pass


class Ble:
    def __init__(self, node, c):
        hal = node.hal
        cfg = node.cfg
        self.node = node
        self.wifi = c.get("wifi", False)
        self.adv_ms = c.get("adv_ms", 100)
        self.burst_ms = c.get("burst_ms", 1000)
        self.radio = hal.radio(cfg["node_id"])
        # K_b (SPEC 5.4, protocol/keys.broadcast_key) on kdf.py alone: keys.py is 3 KB more
        kdf = __import__("protocol.kdf", None, None, ["hkdf"])
        self.bkey = kdf.hkdf(cfg["key"], b"", b"kithnet/1 broadcast" + cfg["node_id"], 16)
        unload("protocol.kdf")
        self.counter = Counter(hal, node.store, not self.wifi)
        self.advs = []  # advertising data of the latest message(s), advertised in turn
        self.i = 0
        self.switch_at = self.posted = time.ticks_ms()
        self.conn = None  # the GATT connection the Link speaks over
        self.handle = None
        self.connectable = False
        self.pair_until = self.posted
        if not self.wifi:
            node.interval = c.get("interval_s", node.interval)
            cfg["sleep"]["interval"] = node.interval  # Node.due() tells the gateway this
            link = node.link
            link.rtc = _NoRtc()
            unload("node.rtc")
            link.sock = self
            self.connectable = c.get("connectable", False)
            pair = c.get("pair_s", 30)
            if not self.connectable and pair and node.reboot != M.REBOOT_DEEP_SLEEP:
                self.pair_until = time.ticks_add(self.posted, pair * 1000)
            self.handle = self.radio.serve(_SERVICE, _CHAR)

    # -- advertising -------------------------------------------------------------------

    def pairing(self, now):
        return time.ticks_diff(self.pair_until, now) > 0

    def post(self, mtype, body):
        """A report or an event, as the advertisements that carry it from now on."""
        items = sorted(k for k in body if 0 <= k < _DIAG)
        piv = len(frame.piv_bytes(min(self.counter.value + 8, frame.MAX_SEQ)))
        room = _FRAME_MAX - 1 - frame.KID_LEN - piv - frame.TAG_LEN
        msgs = []
        cur = {}
        for k in items:
            cur[k] = body[k]
            if len(M.encode(mtype, cur)) > room and len(cur) > 1:
                del cur[k]
                msgs.append(cur)
                cur = {k: body[k]}
        if cur:
            msgs.append(cur)
        advs = []
        nid = self.node.cfg["node_id"]
        for m in msgs:
            # session.seal_broadcast, without loading session.py for it
            data = frame.seal(frame.BROADCAST, self.bkey, nid, (nid[0] << 8) | nid[1],
                              self.counter.next(), M.encode(mtype, m))  # fmt: skip
            advs.append(bytes((len(data) + 3,)) + _AD + data)
        if mtype == M.EVENT:
            self.advs = advs + self.advs[:3]  # the event first; the report goes on after it
        else:
            self.advs = advs
        self.i = 0
        now = time.ticks_ms()
        self.posted = now
        self._advertise(now)

    def _advertise(self, now):
        if self.advs:
            conn = self.connectable or self.pairing(now)
            self.radio.advertise(self.advs[self.i], self.adv_ms, conn)
        self.switch_at = time.ticks_add(now, 3 * self.adv_ms)

    def tick(self, now):
        """Advertise the next frame in turn (three advertising events each)."""
        if len(self.advs) > 1 and time.ticks_diff(now, self.switch_at) >= 0:
            self.i = (self.i + 1) % len(self.advs)
            self._advertise(now)

    def provision(self, v):
        """Wi-Fi credentials from config-set {"wifi": {"ssid", "password"}}, which reached
        the node sealed in a session (over GATT before it has Wi-Fi); the Wi-Fi HAL uses
        them from the next boot. True if taken. The password is never read back."""
        ok = (
            isinstance(v, dict)
            and isinstance(v.get("ssid"), str)
            and 0 < len(v["ssid"]) <= 32
            and isinstance(v.get("password", ""), str)
            and len(v.get("password", "")) <= 64
        )
        if ok:
            self.node.store.put("wifi.ssid", v["ssid"])
            self.node.store.put("wifi.pass", v.get("password", ""))
        return ok

    # -- GATT: the Link's socket -------------------------------------------------------

    def sendto(self, data, conn):
        if conn is not None:
            self.radio.notify(conn, self.handle, data)

    def _events(self, now):
        link = self.node.link
        for ev, conn, data in self.radio.events():
            if ev == 1:  # a central connected: that ended advertising (NimBLE); again
                self._advertise(now)
            elif ev == 3:
                if data == _OPEN:  # subscribed: a fresh handshake on this one
                    link.restart("new central", 0)
                    self.conn = link.gw = conn
                    link.next_hello = now
                elif conn == self.conn:
                    link.handle(data, conn)
            elif ev == 2 and conn == self.conn:
                was = link.online
                link.restart("central left", 0)
                self.conn = link.gw = None
                if was:
                    self.pair_until = now  # the gateway knows this node now: pairing ends

    # -- the loop of a node without Wi-Fi ----------------------------------------------

    def run(self):
        """Node.run for a node without Wi-Fi: start the drivers, then loop (no UDP)."""
        node = self.node
        hal = node.hal
        c = node.cfg
        link = node.link
        radio = self.radio
        c.pop("devices", None)
        c.pop("sim", None)
        node.plan = None
        for drv in node.drivers:
            if hasattr(drv, "start"):
                drv.start(node)
        gc.collect()
        node.log("running on BLE, %d bytes of heap free" % gc.mem_free())
        wdt = hal.WDT(c.get("watchdog_ms", 30000))
        poller = None
        if radio.sock is not None:
            poller = select.poll()
            poller.register(radio.sock, select.POLLIN)
        now = time.ticks_ms()
        timers = [[d, now] for d in node.drivers if hasattr(d, "poll")]
        sample_at = tick_at = now
        report_at = time.ticks_add(now, node._period())
        sleepy = c["sleep"].get("enabled")
        awake = c["sleep"].get("awake_ms", 8000)
        if self.pairing(now):
            awake = max(awake, time.ticks_diff(self.pair_until, now) + 1000)
        awake_until = time.ticks_add(now, awake)
        sample_ms = c["report"]["sample_ms"]
        tick_ms = c["report"].get("tick_ms", 100)
        while True:
            now = time.ticks_ms()
            for t in timers:
                if time.ticks_diff(now, t[1]) >= 0:
                    try:
                        t[1] = time.ticks_add(now, t[0].poll(node, now))
                    except OSError as e:
                        node._fault(t[0], e)
                        t[1] = time.ticks_add(now, 1000)
            self._events(now)
            if time.ticks_diff(now, tick_at) >= 0:
                tick_at = time.ticks_add(now, tick_ms)
                wdt.feed()
                link.tick(now)
                if node.flag or time.ticks_diff(now, sample_at) >= 0:
                    periodic = time.ticks_diff(now, report_at) >= 0
                    if periodic:
                        report_at = time.ticks_add(now, node._period())
                    node.flag = False
                    sample_at = time.ticks_add(now, sample_ms)
                    node.sample(periodic)
                self.tick(now)
                if sleepy and (
                    (
                        self.advs
                        and self.conn is None
                        and not self.pairing(now)
                        and time.ticks_diff(now, self.posted) >= self.burst_ms
                    )
                    or time.ticks_diff(now, awake_until) >= 0
                ):
                    radio.advertise(None)
                    node.log("deep sleep for %d s" % node.interval)
                    hal.deepsleep(node.interval * 1000)
            wait = max(0, min(time.ticks_diff(tick_at, now), 20 if self.conn else 100))
            for t in timers:
                wait = max(0, min(wait, time.ticks_diff(t[1], now)))
            if poller is not None:
                poller.poll(wait)
            else:
                radio.wait(wait)


def setup(node):
    """Called at boot (start.py) when config.json has a "ble" section, before the drivers
    load (on a young heap); True when the node has no Wi-Fi. The runtime knows
    nothing of BLE: what it calls is rerouted here on this node's objects alone, so a node
    without BLE pays no byte of heap for it. Reports and events (Link.post) go to the air,
    and also to the gateway's session if the node has Wi-Fi; a Wi-Fi node's loop turns the
    advertisements with Link.tick; config-set takes Wi-Fi credentials; a node without
    Wi-Fi runs the loop above instead of Node.run's."""
    b = node.ble = Ble(node, node.cfg["ble"])
    link = node.link
    send = link.post
    tick = link.tick
    conf = node.configure

    def post(mtype, body, con):
        b.post(mtype, body)
        if b.wifi:
            send(mtype, body, con)

    def ticked(now):
        tick(now)
        b.tick(now)

    def configure(settings):
        if settings is not None and "wifi" in settings:
            if not b.provision(settings["wifi"]):
                return {M.CODE: BAD_VALUE, M.TEXT: "cannot set wifi"}
            settings = dict(settings)
            del settings["wifi"]
        return conf(settings)

    link.post = post
    node.configure = configure
    if b.wifi:
        link.tick = ticked
        return False
    node.run = b.run
    node.ip = None
    return True  # no Wi-Fi: start.py skips the network
