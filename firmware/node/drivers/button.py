# A push button to ground (pin pulled up; "active": 1 for a button to 3.3 V). Debounced
# (the level must hold "debounce_ms"), then: held "long_ms" -> long (3) at once; released
# and no further press within "double_ms" -> single (1), or double (2) for 2+ presses.
# Events go to the "button" capability; "toggles": a device name whose switch a single
# press toggles, locally, gateway or not.
import time


class Driver:
    def __init__(self, hal, dev):
        self.caps = dev["caps"]
        self.c = self.caps.get("button")
        self.pin = hal.Pin(dev["pin"], hal.Pin.IN, hal.Pin.PULL_UP)
        self.act = dev.get("active", 0)
        self.db = dev.get("debounce_ms", 30)
        self.dbl = dev.get("double_ms", 300)
        self.lng = dev.get("long_ms", 1000)
        self.tog = dev.get("toggles")
        self.raw = self.st = self.lf = False
        self.tr = self.td = self.tu = self.n = 0

    def read(self):
        return {}

    def poll(self, node, now):
        d = time.ticks_diff
        r = self.pin.value() == self.act
        if r != self.raw:
            self.raw = r
            self.tr = now
        elif r != self.st and d(now, self.tr) >= self.db:
            self.st = r
            if r:
                self.td = now
                self.lf = False
            elif not self.lf:
                self.n += 1
                self.tu = now
        if self.st:
            if not self.lf and d(now, self.td) >= self.lng:
                self.lf = True
                self.n = 0
                self.ev(node, 3)
        elif self.n and d(now, self.tu) >= self.dbl:
            self.ev(node, 1 if self.n == 1 else 2)
            self.n = 0
        return 10

    def ev(self, node, code):
        if self.c is not None:
            node.event(self.c, code)
        if code == 1 and self.tog:
            r = node.device(self.tog)
            s = r.caps["switch"]
            r.set(s, not r.read()[s])
            node.changed()
