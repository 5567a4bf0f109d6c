# PWM dimmer for a tunable-white LED: "warm" and "cold" channel pins ("cold" optional),
# brightness 0..255 on a square-law curve (duty = (b/255)^2), colour temperature
# "ct_min".."ct_max" K (default 2700..6500) as the warm/cold mix at constant total. Every
# change fades linearly over "fade_ms" (default 500; the attribute fade_ms, or
# set(..., fade=ms) for one change, e.g. a command's FADE). read() reports the targets.
import time


class Driver:
    def __init__(self, hal, dev):
        self.caps = dev["caps"]
        f = dev.get("freq", 1000)
        self.w = hal.PWM(hal.Pin(dev["warm"]), freq=f, duty_u16=0)
        c = dev.get("cold")
        self.c = None if c is None else hal.PWM(hal.Pin(c), freq=f, duty_u16=0)
        self.lo = dev.get("ct_min", 2700)
        self.hi = dev.get("ct_max", 6500)
        self.fade_ms = dev.get("fade_ms", 500)
        self.on = "switch" not in self.caps  # without a switch capability it is always on
        self.b = 255
        self.k = self.ck = (self.lo + self.hi) // 2
        self.cb = 0  # brightness output now (0 while off)
        self.f = None  # fade in progress: start ms, length ms, brightness and K at start

    def read(self):
        c = self.caps
        r = {}
        for k, v in (("switch", self.on), ("brightness", self.b), ("colour_temp", self.k)):
            if k in c:
                r[c[k]] = v
        return r

    def set(self, cid, v, fade=None):
        c = self.caps
        if cid == c.get("switch"):
            v = self.on = bool(v)
        elif cid == c.get("brightness"):
            self.b = v
        elif cid == c.get("colour_temp"):
            v = self.k = min(self.hi, max(self.lo, v))
        t = time.ticks_ms()
        self.f = (t, self.fade_ms if fade is None else fade, self.cb, self.ck)
        self.step(t)
        return v

    def step(self, now):
        """Move the output along the fade; True while it is not finished."""
        f = self.f
        if f is None:
            return False
        b = self.b if self.on else 0
        e = time.ticks_diff(now, f[0])
        if e >= f[1]:
            self.cb = b
            self.ck = self.k
            self.f = None
        else:
            self.cb = f[2] + (b - f[2]) * e // f[1]
            self.ck = f[3] + (self.k - f[3]) * e // f[1]
        d = self.cb * self.cb * 65535 // 65025
        if self.c is None:
            self.w.duty_u16(d)
        else:
            x = d * (self.hi - self.ck) // (self.hi - self.lo)
            self.w.duty_u16(x)
            self.c.duty_u16(d - x)
        return self.f is not None

    def poll(self, node, now):
        return 20 if self.step(now) else 100
