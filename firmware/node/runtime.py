# The node: drivers read and drive the hardware, the runtime samples them, decides what to
# report and when, answers the gateway, and keeps running without it.
#
# One loop, no asyncio (its module and tasks would cost the heap more than this loop): a
# 100 ms tick (watchdog, link timers, sampling), select.poll on the sockets, and each
# driver's poll(node, now) when it asked to be called again (button, metering, fades).
# Reports go out every `interval` seconds (confirmable, with diagnostics) and at once when
# a value moves beyond its dead-band (confirmable for switches, modes and other discrete
# values, which must not be lost; non-confirmable for measurements, which the next report
# supersedes). Boot-only code (setup.py, the config loader, the capability registry) is
# dropped once the node runs.

import gc
import select
import sys
import time

from protocol import messages as M
from protocol import values
from protocol.errors import BAD_VALUE, UNKNOWN_CAPABILITY, ProtocolError

from . import unload
from .hal import impl as hal
from .link import Link

FIRMWARE = "0.1.0"
RSSI_ID = 30  # diagnostics every node reports, above the ids configs use (< 30)
UPTIME_ID = 31
_TICK_MS = 100
# Largest datagram taken from the gateway. recvfrom allocates this much in one piece each
# time, and a long-running heap may hold its free space in smaller runs; everything the
# gateway sends a node today fits in 512 bytes (an update's chunks too: SPEC 9.4).
_RX_MAX = 512


def _ota(node):
    """Updates (SPEC 9.4): node/ota.py in an update's own boot, which loads it before the
    network and runs no drivers (start.py): a node that has run a while has the room, but
    not in one piece (its names would need a new table of several KB). On trial, the small
    node/ota_trial.py. Otherwise the node restarts into an update's boot."""
    m = sys.modules.get("node.ota")
    if m is None:
        if node.trial:
            return __import__("node.ota_trial", None, None, ["due"])
        node.store.put("ota", 1)
        hal.reset()
    return m


class Node:
    def __init__(self, cfg, store):
        self.cfg = cfg
        self.hal = hal
        self.store = store
        self.reboot = hal.reset_cause()
        self.firmware = FIRMWARE
        self.model = ""
        self.rules = {}  # capability id -> values rule
        self.owner = {}  # capability id -> driver
        self.bands = {}  # capability id -> dead-band
        self.devices = {}
        self.drivers = []
        self.hello_caps = {}
        self.last = {}  # what the gateway was last told
        self.flag = True  # sample now
        self.full = True  # the next report carries every value
        self.faults = 0
        self.booted = time.ticks_ms()
        self.interval = cfg["report"]["interval"]
        self.mdns = None
        self.plan = None
        self.link = Link(self)
        self.trial = False  # running an update on trial (start.py): confirmed once online
        self.ota_at = None  # ticks when node/ota.py is due (trial deadline, reset, idle)

    # -- what drivers call -----------------------------------------------------------

    def log(self, msg):
        print("node: " + msg)

    def device(self, name):
        return self.devices.get(name)

    def changed(self):
        self.flag = True

    def event(self, cid, code):
        self.link.post(M.EVENT, {M.E_CAP: cid, M.E_CODE: code}, True)

    def online(self):
        self.full = True
        self.flag = True
        if self.trial:
            _ota(self).confirm(self)

    # -- reporting -------------------------------------------------------------------

    def due(self):
        if self.link.sleepy:
            return self.cfg["sleep"].get("interval", 300) + 30
        return self.interval

    def read(self):
        vals = {}
        for drv in self.drivers:
            try:
                vals.update(drv.read())
            except OSError as e:
                self._fault(drv, e)
        return vals

    def _fault(self, drv, e):
        """A hardware error: counted, logged at first and then every hundredth time."""
        self.faults += 1
        if self.faults < 4 or self.faults % 100 == 0:
            self.log("hardware fault in %s: %s" % (type(drv).__name__, e))

    def sample(self, periodic):
        """Report what changed beyond its dead-band, or everything when periodic."""
        vals = self.read()
        con = True
        if periodic or self.full:
            vals[RSSI_ID] = hal.rssi()
            vals[UPTIME_ID] = time.ticks_diff(time.ticks_ms(), self.booted) // 1000
            body = vals
        else:
            body = {}
            con = False
            for cid in vals:
                v = vals[cid]
                old = self.last.get(cid)
                if old is None or v is True or v is False or old is True or old is False:
                    moved = v != old
                else:
                    moved = abs(v - old) >= self.bands.get(cid, 0) and v != old
                if moved:
                    body[cid] = v
                    if self.rules[cid][1] != values.INT:
                        con = True  # a switch, contact or mode change must not be lost
            if not body:
                return False
        self.full = False
        self.last.update(body)
        body[M.DUE] = self.due()
        self.link.post(M.REPORT, body, con)
        return True

    # -- answering the gateway -------------------------------------------------------

    def answer(self, mtype, body):
        if mtype == M.COMMAND:
            return M.RESULT, self.command(body)
        if mtype == M.PING:
            return M.PONG, {}
        if mtype == M.CONFIG_GET:
            return M.CONFIG, self.configure(None)
        if mtype == M.CONFIG_SET:
            return M.CONFIG, self.configure(body[M.CFG_VALUES])
        if mtype == M.OTA_OFFER or mtype == M.OTA_CHUNK:
            return M.OTA_STATUS, _ota(self).answer(self, mtype, body)
        return None

    def command(self, body):
        """Check every entry first, then apply them all: a command is all or nothing."""
        states = M.states(body)
        try:
            for cid in states:
                rule = self.rules.get(cid)
                if rule is None or cid not in self.owner:
                    raise ProtocolError(UNKNOWN_CAPABILITY, "no capability %d" % cid)
                values.check_set(rule, states[cid])
        except ProtocolError as e:
            return {M.CODE: e.code}
        out = {M.CODE: 0}
        fade = body.get(M.FADE)
        for cid in sorted(states):
            drv = self.owner[cid]
            if fade is not None and hasattr(drv, "fade_ms"):
                out[cid] = drv.set(cid, states[cid], fade)
            else:
                out[cid] = drv.set(cid, states[cid])
        self.last.update(M.states(out))
        return out

    def configure(self, settings):
        c = self.cfg
        if settings is not None:
            for k in settings:
                v = settings[k]
                if k == "interval" and isinstance(v, int) and 5 <= v <= 86400:
                    self.interval = c["report"]["interval"] = v
                elif k == "name" and isinstance(v, str) and 0 < len(v) <= 63:
                    c["node"]["name"] = v
                else:
                    return {M.CODE: BAD_VALUE, M.TEXT: "cannot set %s" % k}
                self.store.put("cfg." + k, v)
        link = self.link
        gc.collect()
        return {
            M.CODE: 0,
            M.CFG_VALUES: {
                "name": c["node"]["name"],
                "interval": self.interval,
                "dropped": sum(link.dropped.values()),
                "buffered": len(link.buf),
                "lost": link.lost,
                "faults": self.faults,
                "mem_free": gc.mem_free(),
            },
        }

    # -- running -----------------------------------------------------------------------

    def run(self):
        """Start the drivers, then loop forever (or until deep sleep)."""
        c = self.cfg
        c.pop("devices", None)
        c.pop("sim", None)
        self.plan = None
        for drv in self.drivers:
            if hasattr(drv, "start"):
                drv.start(self)
        gc.collect()
        self.log("running at %s:%d, %d bytes of heap free" % (self.ip, c["port"], gc.mem_free()))
        self._loop(self.ip)

    def _period(self):
        """Milliseconds between full reports ("interval_ms" overrides "interval" seconds)."""
        return self.cfg["report"].get("interval_ms") or self.interval * 1000

    def _loop(self, ip):
        c = self.cfg
        link = self.link
        sleepy = link.sleepy
        wdt = hal.WDT(c.get("watchdog_ms", 30000))
        if sleepy and link.rtc.resume(link):
            self.log("resumed session %d after deep sleep" % link.sess.sid)
        poller = select.poll()
        poller.register(link.sock, select.POLLIN)
        md = self.mdns
        if md is not None and md.full:
            poller.register(md.sock, select.POLLIN)
        now = time.ticks_ms()
        # Drivers with a poll(node, now) -> ms method, each with the tick it is next due.
        timers = [[d, now] for d in self.drivers if hasattr(d, "poll")]
        find_at = sample_at = tick_at = now
        report_at = time.ticks_add(now, self._period())
        announce_at = time.ticks_add(now, 1000)
        awake_until = time.ticks_add(now, c["sleep"].get("awake_ms", 8000))
        sample_ms = c["report"]["sample_ms"]
        tick_ms = c["report"].get("tick_ms", _TICK_MS)
        reported = False
        while True:
            now = time.ticks_ms()
            for t in timers:
                if time.ticks_diff(now, t[1]) >= 0:
                    try:
                        t[1] = time.ticks_add(now, t[0].poll(self, now))
                    except OSError as e:
                        self._fault(t[0], e)
                        t[1] = time.ticks_add(now, 1000)
            if time.ticks_diff(now, tick_at) >= 0:
                tick_at = time.ticks_add(now, tick_ms)
                wdt.feed()
                if link.gw is None and time.ticks_diff(now, find_at) >= 0:
                    from . import mdns

                    found = mdns.find_gateway(ip)
                    if found:
                        link.gw = hal.addr(found[0], found[1])
                    else:
                        find_at = time.ticks_add(now, link.backoff)
                        link.backoff = min(link.backoff * 2, 60000)
                link.tick(now)
                if self.ota_at is not None and time.ticks_diff(now, self.ota_at) >= 0:
                    _ota(self).due(self)
                if self.flag or time.ticks_diff(now, sample_at) >= 0:
                    periodic = time.ticks_diff(now, report_at) >= 0
                    if periodic:
                        report_at = time.ticks_add(now, self._period())
                    self.flag = False
                    sample_at = time.ticks_add(now, sample_ms)
                    if self.sample(periodic):
                        reported = True
                if md is not None and time.ticks_diff(now, announce_at) >= 0:
                    # RFC 6762 8.3: a second announcement after a second; a responder that
                    # cannot answer queries repeats before half its records' TTL runs out.
                    md.announce()
                    announce_at = time.ticks_add(now, 1 << 29 if md.full else 50000)
                if sleepy and (
                    (reported and link.online and not link.pending.items and not link.buf)
                    or time.ticks_diff(now, awake_until) >= 0
                ):
                    link.rtc.save(link)
                    ms = c["sleep"].get("interval", 300) * 1000
                    self.log("deep sleep for %d s" % (ms // 1000))
                    hal.deepsleep(ms)
            wait = time.ticks_diff(tick_at, now)
            for t in timers:
                wait = min(wait, time.ticks_diff(t[1], now))
            for ev in poller.poll(max(0, wait)):
                sock = ev[0]
                if md is not None and sock is md.sock:
                    md.poll()
                    continue
                try:
                    data, src = sock.recvfrom(_RX_MAX)
                except (OSError, MemoryError):
                    self.faults += 1  # MemoryError: no free run that long; the datagram waits
                    gc.collect()
                    continue
                link.handle(data, src)


def main():
    """Build the node at power-on (start.py, dropped once it is built), then run it."""
    node = __import__("node.start", None, None, ["node"]).node()
    unload("node.start", "node.setup", "node.config")
    if node is None:
        return
    try:
        node.run()
    except Exception as e:  # a bug or a MemoryError: a node must not stop at a REPL
        sys.print_exception(e)
        print("node: crashed; restarting")
        time.sleep(1)
        hal.reset()
