# The node: drivers read and drive the hardware, the runtime samples them, decides what to
# report and when, answers the gateway, and keeps running without it.
#
# One asyncio loop: a 100 ms tick (watchdog, link timers, sampling), a receive task per
# socket, and each driver's own background task (button, metering, fades, climate).
# Reports go out every `interval` seconds (confirmable, with diagnostics) and at once when
# a value moves beyond its dead-band (confirmable for switches, modes and other discrete
# values, which must not be lost; non-confirmable for measurements, which the next report
# supersedes).

import asyncio
import gc
import sys
import time

from protocol import discovery, model
from protocol import messages as M
from protocol.errors import BAD_VALUE, UNKNOWN_CAPABILITY, UNSUPPORTED, ProtocolError

from . import config, hal
from .link import Link

FIRMWARE = "0.1.0"
RSSI_ID = 30  # diagnostics every node has, above the ids configs use
UPTIME_ID = 31
_TICK_MS = 100

# Default dead-bands in wire units, by kind: 0.2 degC, 2 %RH, 5 W, 2 V, 50 mA, 10 Wh, 20 lx, 1 %.
_DEADBAND = {6: 20, 7: 200, 2: 50, 3: 20, 4: 50, 5: 10, 8: 20, 12: 1, 16: 1}


def _readable(sock):
    yield asyncio.core._io_queue.queue_read(sock)


def _recv(sock):
    yield asyncio.core._io_queue.queue_read(sock)
    return sock.recvfrom(1500)


class Node:
    def __init__(self, cfg):
        self.cfg = cfg
        self.hal = hal
        self.store = hal.Store()
        self.reboot = hal.reset_cause()
        self.model = cfg.get("model", "kithnet-" + cfg.get("type", "node"))
        self.firmware = FIRMWARE
        self.caps = {}
        self.owner = {}
        self.devices = {}
        self.drivers = []
        bands = cfg["report"]["deadband"]
        self.bands = {}
        for dev in cfg["devices"]:
            try:
                mod = __import__("node.drivers." + dev["driver"], None, None, ["Driver"])
            except ImportError:
                raise config.ConfigError("no driver %r" % dev["driver"])
            drv = mod.Driver(hal, dev)
            self.devices[dev["name"]] = drv
            self.drivers.append(drv)
            for kind in dev.get("caps", {}):
                cid = dev["caps"][kind]
                k = model.BY_NAME[kind]
                self.caps[cid] = model.Capability(cid, k, dev.get("options", {}).get(kind))
                self.owner[cid] = drv
                self.bands[cid] = bands.get(kind, dev.get("deadband", {}).get(kind, _DEADBAND.get(k, 0)))
        self.caps[RSSI_ID] = model.Capability(RSSI_ID, model.RSSI)
        self.caps[UPTIME_ID] = model.Capability(UPTIME_ID, model.UPTIME)
        self.last = {}  # what the gateway was last told
        self.flag = True  # sample now
        self.full = True  # the next report carries every value
        self.faults = 0
        self.booted = time.ticks_ms()
        self.link = Link(self)
        self.interval = cfg["report"]["interval"]

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

    # -- describing and reporting ----------------------------------------------------

    def describe(self):
        out = {}
        for cid in self.caps:
            out[cid] = self.caps[cid].describe()
        return out

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
                self.faults += 1
                if self.faults < 4 or self.faults % 100 == 0:
                    self.log("sensor fault %s: %s" % (type(drv).__name__, e))
        return vals

    def sample(self, periodic):
        vals = self.read()
        if periodic or self.full:
            vals[RSSI_ID] = hal.rssi()
            vals[UPTIME_ID] = time.ticks_diff(time.ticks_ms(), self.booted) // 1000
            body = vals
            con = True
        else:
            body = {}
            con = False
            for cid in vals:
                v = vals[cid]
                old = self.last.get(cid)
                if old is None or (v != old and (v is True or v is False or abs(v - old) >= self.bands.get(cid, 0))):
                    body[cid] = v
                    if self.caps[cid].vtype != model.INT:
                        con = True
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
        if mtype == M.CONFIG_GET or mtype == M.CONFIG_SET:
            return M.CONFIG, self.configure(body.get(M.CFG_VALUES) if mtype == M.CONFIG_SET else None)
        if mtype in (M.OTA_OFFER, M.OTA_CHUNK):
            return M.ERROR, {M.CODE: UNSUPPORTED}
        return None

    def command(self, body):
        """Check every entry first, then apply them all: a command is all or nothing."""
        states = M.states(body)
        try:
            for cid in sorted(states):
                cap = self.caps.get(cid)
                if cap is None or cid not in self.owner:
                    raise ProtocolError(UNKNOWN_CAPABILITY, "no capability %d" % cid)
                cap.check_set(states[cid])
        except ProtocolError as e:
            return {M.CODE: e.code}
        out = {M.CODE: 0}
        fade = body.get(M.FADE)
        for cid in sorted(states):
            drv = self.owner[cid]
            if fade is not None and hasattr(drv, "fade_ms"):
                drv.fade_ms = fade
            out[cid] = drv.set(cid, states[cid])
        self.last.update(M.states(out))
        return out

    def configure(self, values):
        c = self.cfg
        if values is not None:
            for k in values:
                v = values[k]
                if k == "interval" and isinstance(v, int) and 5 <= v <= 86400:
                    self.interval = c["report"]["interval"] = v
                    self.store.put("cfg.interval", v)
                elif k == "name" and isinstance(v, str) and 0 < len(v) <= 63:
                    c["node"]["name"] = v
                    self.store.put("cfg.name", v)
                else:
                    return {M.CODE: BAD_VALUE, M.TEXT: "cannot set %s" % k}
        gc.collect()
        link = self.link
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

    async def _rx(self, sock, handle):
        while True:
            try:
                data, src = await _recv(sock)
            except OSError:
                await asyncio.sleep_ms(50)
                continue
            handle(data, src)

    async def _guard(self, coro, name):
        try:
            await coro
        except Exception as e:  # a driver's task must not take the node down
            self.log("%s stopped: %r" % (name, e))

    def _gateway(self, ip):
        gw = self.cfg.get("gateway")
        if gw and gw.get("host"):
            return hal.addr(gw["host"], gw.get("port", discovery.GATEWAY_PORT))
        from . import mdns

        found = mdns.find_gateway(ip)
        return hal.addr(found[0], found[1]) if found else None

    async def run(self):
        c = self.cfg
        ip = await hal.connect(c)
        self.ip = ip
        sock = hal.udp(ip, c["port"])
        self.link.sock = sock
        asyncio.create_task(self._rx(sock, self.link.handle))
        self.mdns = None
        mode = c.get("mdns", "full" if hal.PLATFORM == "host" else "announce")
        if mode != "off":
            self._start_mdns(ip, mode == "full")
        for drv in self.drivers:
            if hasattr(drv, "run"):
                asyncio.create_task(self._guard(drv.run(self), type(drv).__name__))
        wdt = hal.WDT(c.get("watchdog_ms", 30000))
        link = self.link
        sleepy = link.sleepy
        if sleepy and link.resume_rtc():
            self.log("resumed session %d after deep sleep" % link.sess.sid)
        find_at = time.ticks_ms()
        sample_at = find_at
        report_at = time.ticks_add(find_at, self.interval * 1000)
        announce_at = time.ticks_add(find_at, 1000)
        awake_until = time.ticks_add(find_at, c["sleep"].get("awake_ms", 8000))
        sample_ms = c["report"]["sample_ms"]
        reported = False
        while True:
            wdt.feed()
            now = time.ticks_ms()
            if link.gw is None and time.ticks_diff(now, find_at) >= 0:
                link.gw = self._gateway(ip)
                if link.gw is None:
                    find_at = time.ticks_add(now, link.backoff)
                    link.backoff = min(link.backoff * 2, 60000)
            link.tick(now)
            if self.flag or time.ticks_diff(now, sample_at) >= 0:
                periodic = time.ticks_diff(now, report_at) >= 0
                if periodic:
                    report_at = time.ticks_add(now, self.interval * 1000)
                self.flag = False
                sample_at = time.ticks_add(now, sample_ms)
                if self.sample(periodic or (sleepy and not reported)):
                    reported = True
            if self.mdns is not None and time.ticks_diff(now, announce_at) >= 0:
                # RFC 6762 8.3: a second announcement after a second; a responder that
                # cannot answer queries repeats before half its records' TTL has run out.
                self.mdns.announce()
                announce_at = time.ticks_add(now, 50000 if not self.mdns_full else 1 << 29)
            if sleepy and reported and link.online and not link.pending.items and not link.buf:
                self._sleep()
            if sleepy and time.ticks_diff(now, awake_until) >= 0:
                self._sleep()
            await asyncio.sleep_ms(_TICK_MS)

    def _start_mdns(self, ip, full):
        from . import mdns

        c = self.cfg
        txt = {
            discovery.TXT_ID: c["node"]["id"].lower(),
            discovery.TXT_MODEL: self.model,
            discovery.TXT_FIRMWARE: FIRMWARE,
            discovery.TXT_PROTOCOL: "1",
            discovery.TXT_SLEEPY: "1" if self.link.sleepy else "0",
            discovery.TXT_TYPE: c.get("type", "node"),
        }
        try:
            r = mdns.Responder(c["hostname"], ip, c["port"], txt, c["node"]["name"], full)
            r.open()
            r.announce()
        except OSError as e:
            self.log("mDNS unavailable: %s" % e)
            return
        self.mdns = r
        self.mdns_full = r.full  # full mode falls back to announcing when 5353 is taken
        if full:
            asyncio.create_task(self._mdns_rx(r))

    async def _mdns_rx(self, r):
        while True:
            await _readable(r.sock)
            r.poll()

    def _sleep(self):
        self.link.save_rtc()
        ms = self.cfg["sleep"].get("interval", 300) * 1000
        self.log("deep sleep for %d s" % (ms // 1000))
        hal.deepsleep(ms)


def main():
    try:
        cfg = config.load()
        hal.init(cfg, ".")
        node = Node(cfg)
    except (config.ConfigError, KeyError, TypeError, ValueError) as e:
        print("kithnet: config error: %s" % e)
        if hal.PLATFORM == "host":
            sys.exit(2)
        return
    asyncio.run(node.run())
