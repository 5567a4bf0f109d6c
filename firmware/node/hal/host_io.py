# Hardware I/O for a node running on a PC: machine-like Pin, PWM, ADC, I2C, DHT22, a pulse
# counter and an IR sender over the simulated world (node/sim.py). Pins are wired by the
# config: each device's pin numbers get the role its driver gives them, and the chips on
# the I2C bus are the sht3x/aht20 devices it lists, at their addresses. Only the methods
# the drivers use exist, and the simulated sensor chips (host_chips.py) load only for a
# config that has them: this runs inside the node's 110 KB heap.
import time

from .. import sim

world = None
_roles = {}  # pin number -> (role, device entry)
_chips = {}  # I2C address -> simulated chip


def init(cfg, board_dir=None, clock=None, seed=None, log=print):
    """Build the world from config.json ({"devices": [...], "sim": {...}}); returns it."""
    global world
    _roles.clear()
    _chips.clear()
    world = sim.World(cfg.get("sim"), board_dir, seed, clock, log)
    for d in cfg.get("devices", ()):
        k = d.get("driver")
        if k == "sht3x" or k == "aht20":
            from .host_chips import Chip

            _chips[d.get("addr", 0x44 if k == "sht3x" else 0x38)] = Chip(k == "aht20")
        for p in ("pin", "led", "cf", "cf1", "sel", "warm", "cold", "ir"):
            if p in d:
                _roles[d[p]] = (k if p == "pin" else p, d)
    if not any(_roles[p][0] == "relay" for p in _roles):
        world.rq = world.rc = True  # no relay: a metered load is always powered
    return world


def ticks_ms():
    """Milliseconds of simulated time (the speed factor applies), for time.ticks_diff."""
    world.tick()
    return time.ticks_add(0, int(world.s * 1000))


def rssi():
    return int(world.g("rssi", -58) + 3 * world.gauss())


def _role(pin):
    return _roles.get(getattr(pin, "id", pin)) or (None, {})


def I2C(id=0, scl=None, sda=None, freq=400000):
    from .host_chips import I2C

    return I2C()


def DHT22(pin):
    from .host_chips import DHT22

    return DHT22()


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.r = _role(id)[0]
        self.v = int(pull == 2)  # an unconnected input reads its pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            x = world.level(self.r)
            return self.v if x is None else x
        self.v = int(bool(v))
        world.write(self.r, self.v)


class PWM:
    def __init__(self, pin, freq=1000, duty_u16=0):
        self.r = _role(pin)[0]
        self.duty_u16(duty_u16)

    def duty_u16(self, d=None):
        if d is None:
            return self.d
        self.d = d
        world.write(self.r, d / 65535)


class ADC:
    """read_u16(): 0..65535 over 0..3.3 V with ~5 mV of noise. An LDR from 3.3 V to the pin
    with "r_fixed" to ground; or a battery through a 1:"divider"."""

    def __init__(self, pin, atten=3):
        self.r, self.d = _role(pin)

    def read_u16(self):
        d = self.d.get
        v = 0
        if self.r == "ldr":
            r = d("r10", 15000) * (max(1, world.value("illuminance")) / 10) ** -d("gamma", 0.7)
            v = 3300 * d("r_fixed", 10000) / (d("r_fixed", 10000) + r)
        elif self.r == "battery":
            v = world.battery_mv() / d("divider", 2)
        return min(65535, max(0, int((v + 5 * world.gauss()) * 65535 / 3300)))


class PulseCounter:
    """HLW8012 / BL0937 outputs (datasheets): with V1 = I * shunt on the current input and
    V2 = V / divider on the voltage input,
      HLW8012 (fosc 3.579 MHz, Vref 2.43 V): F_CF = 48*V1*V2*fosc/(128*Vref^2),
        F_CF1 = 24*V1*fosc/(512*Vref) with SEL high, 2*V2*fosc/(512*Vref) with SEL low;
      BL0937 (Vref 1.218 V): F_CF = 1721506*V1*V2/Vref^2, F_CF1 = 94638*V1/Vref with SEL
        low, 15397*V2/Vref with SEL high.
    So CF counts energy and CF1 charge or volt-seconds: counts are the world's integrals
    times constants, whatever the load did in between."""

    def __init__(self, pin):
        self.r, d = _role(pin)
        bl = d.get("model") == "bl0937"
        kp, ki, kv, vr = (1721506, 94638, 15397, 1218) if bl else (1342125, 167766, 13981, 2430)
        vr /= 1000
        rs = d.get("shunt", 0.001)
        dv = d.get("divider", 2351)
        self.k = (kp * rs / (dv * vr * vr), ki * rs / vr, kv / (dv * vr))  # per J, A*s, V*s
        self.ci = 1 - bl  # SEL level that selects current
        self.sel = None
        self.n = self.x0 = 0

    def value(self):
        w = world
        w.tick()
        if self.r == "cf":
            return int(w.E * self.k[0])
        cur = w.out.get("sel", 0) == self.ci
        x = w.Q * self.k[1] if cur else w.VS * self.k[2]
        if cur != self.sel:  # SEL moved: count on from here in the other quantity
            self.sel = cur
            self.x0 = x - self.n
        self.n = x - self.x0
        return int(self.n)


class IR:
    """An IR LED on an RMT channel: send(mark/space durations in us, marks first). The host
    demodulates NEC-style framing (9 ms mark, 4.5 ms space, 32 bits LSB first, a long
    space is a 1) and hands the 32-bit frame to the simulated air conditioner."""

    def __init__(self, pin):
        pass

    def send(self, p):
        if len(p) > 66 and 7000 < p[0] < 11000 and 3500 < p[1] < 5500:
            v = 0
            for i in range(32):
                v |= (p[3 + 2 * i] > 1100) << i
            world.ir(v)
