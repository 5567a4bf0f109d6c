# The simulated world a node senses and acts on when it runs on a PC (host only; never
# imported on a board). hal/host_io.py turns it into pins, buses and pulse trains.
#
# Two clocks, both read from one millisecond source (time.ticks_ms, or a function given
# for tests): `ms` runs at wall speed and times what a person or a circuit does (button
# presses, relay switching, conversion delays); `s` advances by ms * speed / 1000 and
# times the physics (room temperature, daylight, battery, load programmes, energy), so a
# demo can run a day in minutes. Parameters come from config.json's "sim" section; any
# key of BOARD/world.json overrides them (polled by mtime at most every 250 ms; a missing
# or broken file is ignored with one log line). Keys (default):
#   speed (1), seed (random), hour: time of day at start (12)
#   temperature: ambient degC (21), diurnal: amplitude degC (1.5), drift: degC (0.3),
#   humidity: %RH (45), lux: daylight peak indoors (350), lamp: extra lx (0)
#   motion / contact: force the PIR / reed (true = motion / closed), else random events:
#   motion_rate, contact_rate: per hour by day (4, 0.5), pir_hold: s (5)
#   battery: % (95), drain: % a day (1)
#   load: none|kettle|fridge|tv|heater|constant ("none"), load_on (true), load_w: W of a
#   heater/constant (2000/100), mains: V (230), relay_ms: switching time (10)
#   button: a press count, button_ms: press length (120; 1500 is a long press)
#   i2c_fail, dht_fail: the sensors stop answering; rssi: dBm (-58)
# Setting temperature, humidity or battery also resets that state; changing load or
# load_on restarts the load's programme (a kettle boils again). Raising "button" by k
# presses the button k times in a burst (1: single, 2: double); the count found at boot
# is the baseline, so a file left over from an earlier run presses nothing.
#
# Memory: this runs inside the node's heap, so it is compact on purpose: integer literals
# where floats would do (each float constant is a heap object here), and the physics in a
# module of its own (sim_phys.py), which halves the heap that compiling either one needs.
import os
import time

from .sim_phys import Physics


class World(Physics):
    def __init__(self, sim=None, board=None, seed=None, clock=None, log=print):
        self.base = self.p = sim or {}
        self.board = board
        self.log = log
        self.clock = clock or time.ticks_ms
        self.last = self.clock()
        self.ms = self.s = 0  # wall-speed ms, simulated s, since start
        if seed is None:
            seed = self.p.get("seed", time.ticks_us())
        self.r = (seed * 2654435761 + 12345) & 0xFFFFFFFF or 1
        self.raw = self.mt = self.ac = None  # ac: (power, mode, fan, setpoint) by IR
        self.bc = None  # world.json's button count as last seen
        self.pt = -1000  # when world.json was last polled (ms)
        self.T = self.g("temperature", 21)  # room air, degC
        self.H = self.g("humidity", 45)  # %RH
        self.bat = self.g("battery", 95)  # state of charge, %
        self.dt = self.dh = self.dv = self.tv = self.lt = 0  # random walks; load programme s
        self.E = self.Q = self.VS = self.P = self.I = 0  # J, A*s, V*s through the meter; W, A
        self.V = 230
        self.hr = self.g("hour", 12)
        self.sky = 1
        self.mot = self.opn = -1  # motion / door open until (s)
        self.rq = self.rc = False  # relay commanded / contacts closed
        self.rt = self.bt = self.bn = 0  # relay commanded at (ms); presses start (ms), count
        self.bms = 120
        self.out = {}  # output role -> last level, or PWM duty 0..1

    def g(self, k, d=None):
        return self.p.get(k, d)

    def rnd(self):  # xorshift32: uniform in [0, 1), deterministic for a seed
        x = self.r
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.r = x
        return x / 4294967296

    def gauss(self):  # ~N(0, 1)
        return (self.rnd() + self.rnd() + self.rnd()) * 2 - 3

    def tick(self):
        n = self.clock()
        d = time.ticks_diff(n, self.last)
        self.last = n
        if d > 0:
            self.ms += d
            if self.rq != self.rc and self.ms - self.rt >= self.g("relay_ms", 10):
                self.rc = self.rq
            try:
                self.skip(d * max(0, self.g("speed", 1)) / 1000)
            except Exception as e:  # a value world.json should not have had: back to config
                self.log("sim: %r, world.json overrides dropped" % e)
                self.p = self.base
        if self.ms - self.pt >= 250:
            self.pt = self.ms
            self.poll()

    def skip(self, sec):
        """Advance the physics by sec simulated seconds (1 s steps while a load runs)."""
        while sec > 0:
            h = min(sec, 1 if self.rc and self.g("load", "none") != "none" else 60)
            self.step(h)
            sec -= h

    def write(self, role, v):
        """An output changed: relay coil, LED, SEL, PWM duty (0..1)."""
        self.tick()
        self.out[role] = v
        if role == "relay" and bool(v) != self.rq:
            self.rq = bool(v)
            self.rt = self.ms

    def ir(self, v):
        """A 32-bit IR frame: 'K', power<<7|mode<<4|fan<<2, setpoint*2-20, sum of those."""
        b = v & 255, v >> 8 & 255, v >> 16 & 255, v >> 24
        if b[0] == 75 and (b[0] + b[1] + b[2]) & 255 == b[3]:
            self.tick()
            self.ac = (b[1] >> 7, b[1] >> 4 & 7, b[1] >> 2 & 3, 10 + b[2] / 2)

    def poll(self):
        f = self.board and self.board + "/world.json"
        try:
            st = os.stat(f)
        except Exception:
            if self.mt != 0:
                self.log("sim: no world.json, the config's sim section applies")
                self.mt = 0
                self.raw = None
                self.apply({})
            return
        # mtime has 1 s resolution: keep re-reading while the file is that fresh
        if (st[8], st[6]) == self.mt and time.time() - st[8] > 2:
            return
        self.mt = (st[8], st[6])
        try:
            with open(f) as fh:
                raw = fh.read()
            if raw == self.raw:
                return
            self.raw = raw
            import json

            d = json.loads(raw)
            if not isinstance(d, dict):
                raise ValueError
            for k in d:
                if not isinstance(d[k], str if k == "load" else (int, float, bool)):
                    raise ValueError
        except Exception:  # whatever a person may write there: ignored, never fatal
            self.log("sim: world.json ignored: not a JSON object of numbers and booleans")
            return
        self.apply(d)

    def apply(self, d):
        old = self.p
        self.p = p = dict(self.base)
        p.update(d)
        if "temperature" in d and d["temperature"] != old.get("temperature"):
            self.T = d["temperature"]
        if "humidity" in d and d["humidity"] != old.get("humidity"):
            self.H = d["humidity"]
        if "battery" in d and d["battery"] != old.get("battery"):
            self.bat = d["battery"]
        if p.get("load") != old.get("load") or p.get("load_on") != old.get("load_on"):
            self.lt = 0
        b = d.get("button", self.bc or 0)
        if self.bc is not None and b > self.bc:  # the count went up: press that many times
            self.bt = self.ms + 20
            self.bn = b - self.bc
            self.bms = max(20, p.get("button_ms", 120))
        self.bc = b
