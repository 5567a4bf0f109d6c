# The physics of the simulated world (node/sim.py): room air, daylight, people, battery,
# the load behind the relay and the air conditioner. A separate module from sim.py only so
# that each compiles in less heap: MicroPython holds a module's whole parse tree while it
# compiles it.
import math

# LiPo 1S open-circuit voltage (10 mV steps above 3.0 V) against state of charge, %
_MV = b"\x1b\x3d\x45\x4b\x50\x54\x57\x5f\x66\x6f\x78"
_PC = b"\x00\x05\x0a\x19\x28\x32\x3c\x46\x50\x5a\x64"


class Physics:
    def ou(self, x, tau, sd, h):  # Ornstein-Uhlenbeck step, exact for any h
        a = math.exp(-h / tau)
        return x * a + sd * math.sqrt(1 - a * a) * self.gauss()

    def step(self, h):
        g = self.g
        ou = self.ou
        self.s += h
        self.hr = hr = (g("hour", 12) + self.s / 3600) % 24
        t0 = g("temperature", 21)
        self.dt = ou(self.dt, 10800, g("drift", 0.3), h)
        amb = t0 + g("diurnal", 1.5) * math.sin((hr - 9) * math.pi / 12) + self.dt
        self.dv = ou(self.dv, 600, 1.5, h)
        self.V = g("mains", 230) + self.dv
        p, pf = self.load(h)
        self.P = p = max(0, p)
        self.I = i = p / self.V / pf
        self.E += p * h
        self.Q += i * h
        self.VS += self.V * h
        rate = (amb - self.T) / 3600 + p / 700000 * (g("load") == "heater")
        lo, hi = -99, 99
        ac = self.ac
        if ac and ac[0]:  # the unit holds its setpoint; capacity in K/s by fan speed
            m, sp, t = ac[1], ac[3], self.T
            cap = (4, 2.5, 4, 6)[ac[2]] / 1000 / (1 + (m == 4))
            if m == 2 or m == 4 or (m == 3 and t > sp):  # cool, dry, auto above setpoint
                rate -= cap * (t > sp)
                lo = sp
            elif m == 1 or m == 3:
                rate += cap * (t < sp)
                hi = sp
        t = self.T + rate * h
        self.T = max(lo, t) if t < self.T else min(hi, t)
        self.dh = ou(self.dh, 7200, 1.2, h)
        rh = g("humidity", 45) - 2 * (self.T - t0) - 12 * (lo > -99) + self.dh
        self.H += (rh - self.H) * (1 - math.exp(-h / 1800))
        self.sky = min(1, max(0.2, 0.8 + ou(self.sky - 0.8, 1800, 0.15, h)))
        day = 7 < hr < 23
        if self.s > self.mot and self.rnd() * 3600 < g("motion_rate", 4) * h * (day or 0.1):
            self.mot = self.s + g("pir_hold", 5)
        if self.s > self.opn and self.rnd() * 3600 < g("contact_rate", 0.5) * h * day:
            self.opn = self.s + 5 + 55 * self.rnd()
        self.bat = max(0, self.bat - g("drain", 1) * h / 86400)

    def load(self, h):
        """Active power (W) and power factor of the load behind the relay."""
        k = self.g("load", "none")
        on = self.g("load_on", True)
        if not self.rc or k == "none" or self.V < 50:  # open, nothing plugged in, blackout
            return 0, 1
        self.tv = self.ou(self.tv, 20, 12, h)
        t = self.lt
        self.lt += h
        r = self.V * self.V / 52900  # a resistive load follows the mains voltage
        if k == "kettle":  # ~2.2 kW for ~3 min, then its thermostat opens
            return r * (2200 - t * 3 / 20) * (on and t < 180), 1
        if k == "fridge":  # compressor: 15 min on (6x inrush for 2 s), 30 min off
            c = t % 2700
            return (90 + 450 * max(0, 1 - c / 2)) if c < 900 else 1.5, 0.8
        if k == "tv":  # ~110 W swinging with the picture, 0.5 W standby
            return (110 + self.tv, 0.9) if on else (0.5, 0.3)
        return r * self.g("load_w", 2000 if k == "heater" else 100) * on, 1

    def value(self, k):
        """True value of temperature (degC), humidity (%RH) or illuminance (lx)."""
        self.tick()
        if k == "temperature":
            return self.T
        if k == "humidity":
            return min(100, max(0, self.H))
        hr = self.hr
        sun = math.sin((hr - 6) * math.pi / 12) if 6 < hr < 18 else 0
        return self.g("lux", 350) * sun * self.sky + self.g("lamp", 0) + 0.5

    def level(self, role):
        """Level a sensor drives on an input pin; None if the role is not an input."""
        self.tick()
        if role == "button":  # to ground while pressed, ~4 ms of contact bounce per edge
            t = self.ms - self.bt
            per = self.bms + 150
            k = t // per
            if t < 0 or k >= self.bn:
                return 1
            t -= k * per
            if t < 4 or self.bms <= t < self.bms + 4:
                return int(self.rnd() < 0.5)
            return int(t >= self.bms)
        if role == "pir":
            return int(self.g("motion", self.s < self.mot))
        if role == "contact":  # reed to ground: a closed door reads 0
            return int(not self.g("contact", self.s >= self.opn))
        return None

    def battery_mv(self):
        self.tick()
        b = self.bat
        i = 1
        while i < 10 and b > _PC[i]:
            i += 1
        m = _MV[i - 1]
        return 2988 + 10 * (m + (_MV[i] - m) * (b - _PC[i - 1]) / (_PC[i] - _PC[i - 1]))
