# The node: drivers read and drive the hardware, the runtime samples them, decides what to
# report and when, answers the gateway, and keeps running without it.
#
# One loop, no asyncio (its module and tasks would cost the heap more than this loop): a
# 100 ms tick (watchdog, link timers, sampling), select.poll on the sockets, and each
# driver's poll(node, now) when it asked to be called again (button, metering, fades); it
# is in node/loop.py, which a node without Wi-Fi (node/ble.py runs its own) never loads.
# Reports go out every `interval` seconds (confirmable, with diagnostics) and at once when
# a value moves beyond its dead-band (confirmable for switches, modes and other discrete
# values, which must not be lost; non-confirmable for measurements, which the next report
# supersedes). Boot-only code (setup.py, the config loader, the capability registry, the
# Node's construction in start.py) is dropped once the node runs.

import gc
import sys
import time

from protocol import messages as M
from protocol import values
from protocol.errors import BAD_VALUE, UNKNOWN_CAPABILITY, ProtocolError

from . import unload
from .hal import impl as hal

FIRMWARE = "0.1.0"
RSSI_ID = 30  # diagnostics every node reports, above the ids configs use (< 30)
UPTIME_ID = 31


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
    """Built by start.new(), which sets its attributes: code that runs once is not kept."""

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
        """Start the drivers, then loop forever or until deep sleep: node/loop.py (a node
        without Wi-Fi runs node/ble.py's loop instead, and never loads it)."""
        __import__("node.loop", None, None, ["run"]).run(self)

    def _period(self):
        """Milliseconds between full reports ("interval_ms" overrides "interval" seconds)."""
        return self.cfg["report"].get("interval_ms") or self.interval * 1000


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
