# HLW8012 / BL0937 power metering by pulse counting ("model": "hlw8012" or "bl0937").
# CF pulses at a frequency proportional to active power; CF1 to RMS current or voltage,
# as the SEL pin selects (HLW8012: high = current; BL0937: low = current). Datasheets:
#   HLW8012: P = F_CF * Vref^2 * div / shunt * 128 / (48 * fosc),
#            I = F_CF1 * Vref / shunt * 512 / (24 * fosc), V = F_CF1 * Vref * div * 512 / (2 * fosc)
#            (fosc 3.579 MHz, Vref 2.43 V);
#   BL0937:  P = F_CF * Vref^2 * div / shunt / 1721506, I = F_CF1 * Vref / shunt / 94638,
#            V = F_CF1 * Vref * div / 15397 (Vref 1.218 V);
# with "shunt" (ohm, default 0.001) and "divider" (default 2351, 5 x 470k over 1k), and
# calibration factors "cal_p", "cal_i", "cal_v" (default 1). A frequency is measured over a
# window of at least 1 s that ends after 50 pulses, 10 s, or when pulses come at under half
# the last rate (a load switched off shows at once); CF1 windows alternate between
# current and voltage, each after a settling window. Each CF pulse is a fixed energy, so
# energy counts whole Wh (integer) with the remainder kept in RAM; both are saved in the
# store (as the text "Wh mJ") every "save_wh" Wh (default 1) at most every "save_s" seconds
# (default 30), or every "save_min" minutes (default 10) if anything was counted: a power
# cut loses at most that much. The energy reported is the saved total, so what the gateway
# was told never exceeds what survives a power cut: the total never goes back (Home
# Assistant reads a decrease of a total_increasing sensor as a new meter).
# Intervals are in hal.ticks_ms() time (the simulated clock on the host).
# "cutoff_w": above this power for "grace_ms" (default 2000) the "relay" device (default
# "relay") is switched off, with no gateway; an event goes to a "trip" capability if the
# device has one.
import time


class Driver:
    def __init__(self, hal, dev):
        self.caps = dev["caps"]
        self.hal = hal
        bl = dev.get("model") == "bl0937"
        kp, ki, kv, vr = (1721506, 94638, 15397, 1.218) if bl else (1342125, 167766, 13981, 2.43)
        rs = dev.get("shunt", 0.001)
        dv = dev.get("divider", 2351)
        g = dev.get
        self.mp = vr * vr * dv / (kp * rs) * g("cal_p", 1)  # W per Hz = J per pulse
        self.mi = vr / (ki * rs) * g("cal_i", 1) * 1000  # mA per Hz
        self.mv = vr * dv / kv * g("cal_v", 1) * 10  # 0.1 V per Hz
        self.cf = hal.PulseCounter(dev["cf"])
        self.cf1 = hal.PulseCounter(dev["cf1"])
        self.sel = hal.Pin(dev["sel"], hal.Pin.OUT)
        self.ci = 0 if bl else 1
        self.cur = 1  # CF1 measures current (1) or voltage (0)
        self.sel.value(self.ci)
        self.p = self.i = self.v = 0  # 0.1 W, mA, 0.1 V
        self.cut = g("cutoff_w")
        self.grace = g("grace_ms", 2000)
        self.relay = g("relay", "relay")
        self.key = ("e." + g("name", "meter"))[:15]  # NVS keys: 15 chars
        self.swh = g("save_wh", 1)
        self.sgap = g("save_s", 30) * 1000
        self.sms = g("save_min", 10) * 60000
        self.wh = None  # known once run() (or load()) has read the store
        self.j = self.js = 0.0  # J not yet a whole Wh; its value at the last save
        t = hal.ticks_ms()
        n = self.cf.value()
        self.tp = self.t1 = self.ts = t  # starts: power window, CF1 window, since last save
        self.np = self.ne = n  # CF count at the power window start, last counted for energy
        self.n1 = 0  # CF1 count at its window start
        self.settle = True  # SEL has just moved: CF1 counts from after a settling second
        self.ws = 0  # Wh at the last save
        self.over = None

    def read(self):
        c = self.caps
        r = {}
        for k, v in (("power", self.p), ("current", self.i), ("voltage", self.v)):
            if k in c:
                r[c[k]] = v
        if "energy" in c and self.wh is not None:
            r[c["energy"]] = self.ws  # what the store holds: a total never goes back after a reboot
        return r

    def load(self, store):
        """Energy from the store ("Wh mJ"), the total counted from there on."""
        self.st = store
        try:
            e = store.get(self.key, "0 0").split()
            self.wh = int(e[0])
            self.j = int(e[1]) / 1000
        except (AttributeError, IndexError, ValueError):  # unreadable: count from 0
            self.wh = 0
            self.j = 0
        self.ws = self.wh
        self.js = self.j
        self.ts = self.hal.ticks_ms()

    def save(self):
        self.st.put(self.key, "%d %d" % (self.wh, self.j * 1000))
        self.ts = self.hal.ticks_ms()
        self.ws = self.wh
        self.js = self.j

    def poll(self, node, now=None):
        d = time.ticks_diff
        t = self.hal.ticks_ms()
        n = self.cf.value()
        m = self.cf1.value()
        dt = d(t, self.tp)
        k = n - self.np  # a window ends after 50 pulses, 10 s, or half the pulses expected
        if dt >= 1000 and (k >= 50 or dt >= 10000 or k * self.mp * 20000 < self.p * dt - 4):
            self.p = int(k * self.mp * 10000 / dt + 0.5)
            self.tp = t
            self.np = n
        dt = d(t, self.t1)
        if self.settle:
            if dt >= 1000:
                self.settle = False
                self.t1 = t
                self.n1 = m
        elif dt >= 1000 and (m - self.n1 >= 50 or dt >= 10000):
            f = (m - self.n1) * 1000 / dt
            if self.cur:
                self.i = int(f * self.mi + 0.5)
            else:
                self.v = int(f * self.mv + 0.5)
            self.cur ^= 1
            self.sel.value(self.ci if self.cur else 1 - self.ci)
            self.settle = True
            self.t1 = t
        if self.wh is not None:
            self.j += (n - self.ne) * self.mp
            self.ne = n
            if self.j >= 3600:
                k = int(self.j // 3600)
                self.wh += k
                self.j -= k * 3600
            w = self.wh - self.ws
            dt = d(t, self.ts)
            if (w >= self.swh and dt >= self.sgap) or ((w or self.j != self.js) and dt >= self.sms):
                self.save()
        if self.cut and self.p > self.cut * 10:
            if self.over is None:
                self.over = t
            elif d(t, self.over) >= self.grace:
                self.over = None
                self.trip(node)
        else:
            self.over = None
        return 500

    def trip(self, node):
        r = node.device(self.relay)
        if r is None or not r.read()[r.caps["switch"]]:
            return
        r.set(r.caps["switch"], False)
        node.log(
            "over-power: %d.%d W > %d W, %s off" % (self.p // 10, self.p % 10, self.cut, self.relay)
        )
        if "trip" in self.caps:
            node.event(self.caps["trip"], 1)
        node.changed()

    def start(self, node):
        self.load(node.store)
