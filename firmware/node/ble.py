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
#
# Only what runs again and again lives here. Building this object (the config, K_b, the
# counter's resume, the radio's GATT service) and taking Wi-Fi credentials are in
# ble_setup.py, loaded for that and dropped. Heap: every name here is interned for the
# node's life, so constants are const() (no name, no global) and the object's methods
# stand in for what the runtime calls (Link.post, Link.tick, Link.rtc, Node.configure,
# Node.run), with no closures or helper classes.

import gc
import select
import time

from micropython import const

from protocol import frame
from protocol import messages as M
from protocol.errors import LIMIT, ProtocolError

from . import unload

_BLOCK = const(64)
_RTC = const(b"kb1")  # RTC memory: this, the next value and the mark (ble_setup.py reads it)
_DIAG = const(30)  # capability ids from here on are diagnostics (RSSI, uptime): not broadcast
# SPEC 13 (protocol/discovery.py, not imported: its module costs 2 KB of heap, and a
# test holds these copies to it):
# AD length, type 0xFF Manufacturer Specific Data, company id 0xFFFF little-endian.
_AD = const(b"\xff\xff\xff")
_FRAME_MAX = const(27)
_OPEN = const(b"\x00")  # discovery.BLE_OPEN: the gateway subscribed and wants the hello


class Ble:
    """Made by ble_setup.setup(). Attributes: node, wifi (reports also go to the gateway's
    session), adv_ms, burst_ms, radio, bkey (K_b), value and mark (the broadcast counter),
    rtc (the counter rides in RTC memory: a node without Wi-Fi), advs (advertising data of
    the latest message(s)), i (the one on the air), switch_at, posted, conn (the GATT
    connection the Link speaks over), handle, connectable, pair_until; bt: None, or with
    BTHome (SPEC 13.2) [bindkey, kithnet frames too, BTHome advertisements in advs]."""

    bt = None

    def next(self):
        """The next broadcast sequence number (SPEC 5.5): a mark is stored before any number
        below it is used, so a reboot resumes at the mark and never reuses one; with rtc,
        the next value also rides in RTC memory (written before each number is used), so
        that a deep-sleep wake goes on from it, with no flash write and no skip."""
        v = self.value
        if v > frame.MAX_SEQ:
            raise ProtocolError(LIMIT, "broadcast counter exhausted: re-key the node")
        if v >= self.mark:
            m = v + _BLOCK
            self.node.store.put("ble.mark", m.to_bytes(5, "big"))  # 5 bytes: NVS i32 is short
            self.mark = m
        v += 1
        self.value = v
        if self.rtc:
            self.node.hal.rtc_memory(_RTC + v.to_bytes(5, "big") + self.mark.to_bytes(5, "big"))
        return v - 1

    # -- advertising (Link.post and Link.tick of a BLE node) ---------------------------

    def post(self, mtype, body, con=False):
        """A report or an event, as the advertisements that carry it from now on; with
        Wi-Fi, to the gateway's session as well."""
        if self.bt:  # BTHome (SPEC 13.2): node/bthome.py, loaded for this and dropped
            __import__("node.bthome", None, None, ["post"]).post(self, mtype, body, con)
            unload("node.bthome")
            return
        piv = len(frame.piv_bytes(min(self.value + 8, frame.MAX_SEQ)))
        room = _FRAME_MAX - 1 - frame.KID_LEN - piv - frame.TAG_LEN
        msgs = []
        cur = {}
        for k in sorted(body):
            if k < 0 or k >= _DIAG:
                continue  # metadata (DUE) and diagnostics are not broadcast
            cur[k] = body[k]
            if len(M.encode(mtype, cur)) > room and len(cur) > 1:
                del cur[k]
                msgs.append(cur)
                cur = {k: body[k]}
        if cur:
            msgs.append(cur)
        advs = []
        node = self.node
        nid = node.cfg["node_id"]
        for m in msgs:
            # session.seal_broadcast, without loading session.py for it
            data = frame.seal(frame.BROADCAST, self.bkey, nid, (nid[0] << 8) | nid[1],
                              self.next(), M.encode(mtype, m))  # fmt: skip
            advs.append(bytes((len(data) + 3,)) + _AD + data)
        if mtype == M.EVENT:
            self.advs = advs + self.advs[:3]  # the event first; the report goes on after it
        else:
            self.advs = advs
        self.i = 0
        now = time.ticks_ms()
        self.posted = now
        self.advertise(now)
        if self.wifi:
            link = node.link
            type(link).post(link, mtype, body, con)

    def advertise(self, now):
        """Put the frame in turn on the air (connectable while pairing)."""
        if self.advs:
            conn = self.connectable or time.ticks_diff(self.pair_until, now) > 0  # pairing
            self.radio.advertise(self.advs[self.i], self.adv_ms, conn)
        self.switch_at = time.ticks_add(now, 3 * self.adv_ms)

    def tick(self, now):
        """Link.tick, then the next frame in turn (three advertising events each)."""
        link = self.node.link
        type(link).tick(link, now)
        if len(self.advs) > 1 and time.ticks_diff(now, self.switch_at) >= 0:
            self.i = (self.i + 1) % len(self.advs)
            if not self.i and self.bt and self.bt[2] > 1:  # BTHome split: sealed anew each turn
                __import__("node.bthome", None, None, ["turn"]).turn(self)
                unload("node.bthome")
            self.advertise(now)

    def configure(self, settings):
        """Node.configure, which also takes Wi-Fi credentials (ble_setup.wifi)."""
        node = self.node
        if settings is not None and "wifi" in settings:
            ok, settings = __import__("node.ble_setup", None, None, ["wifi"]).wifi(node, settings)
            unload("node.ble_setup")
            if not ok:
                return settings  # the answer that refuses them
        return type(node).configure(node, settings)

    # -- GATT: the Link's socket (and its rtc: GATT sessions end with their connection) --

    def sendto(self, data, conn):
        if conn is not None:
            self.radio.notify(conn, self.handle, data)

    def save(self, link):
        pass

    # -- the loop of a node without Wi-Fi ----------------------------------------------

    def run(self):
        """Node.run for a node without Wi-Fi: start the drivers, then loop (no UDP)."""
        node = self.node
        hal = node.hal
        c = node.cfg
        link = node.link
        radio = self.radio
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
        pair = time.ticks_diff(self.pair_until, now)
        if pair > 0:  # pairing: awake for all of it
            awake = max(awake, pair + 1000)
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
            for ev, conn, data in radio.events():
                if ev == 1:  # a central connected: that ended advertising (NimBLE); again
                    self.advertise(now)
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
            if time.ticks_diff(now, tick_at) >= 0:
                tick_at = time.ticks_add(now, tick_ms)
                wdt.feed()
                if node.flag or time.ticks_diff(now, sample_at) >= 0:
                    periodic = time.ticks_diff(now, report_at) >= 0
                    if periodic:
                        report_at = time.ticks_add(now, node._period())
                    node.flag = False
                    sample_at = time.ticks_add(now, sample_ms)
                    node.sample(periodic)
                self.tick(now)  # Link.tick too: sampling changes nothing it looks at here
                if sleepy and (
                    (
                        self.advs
                        and self.conn is None
                        and time.ticks_diff(self.pair_until, now) <= 0
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
