# Hardware I/O for a node running on a PC. The hardware is the simulated world that the
# board runner keeps in CPython (kithnet.tools.world), which outlives the node: a reboot,
# a deep sleep or a kill -9 leaves the room, the kettle and the energy where they were,
# and this client is all the node's heap pays for it.
#
# Pin, PWM, ADC, I2C, DHT22 and IR take the constructor arguments of their esp32
# counterparts (hal/esp32_io.py) and are all one proxy: each method call (value, duty_u16,
# read_u16, writeto, measure, send...) is carried out by the world, on that pin or bus,
# which knows from config.json what is wired there. A call is one UDP round trip to the
# world server named in BOARD/.world ("HOST PORT"): the CBOR array
# [method, pin, idle level, args...] (protocol.cbor, loaded anyway), answered by
# [0, result] or [errno], e.g. ENODEV for an I2C NACK. No answer in 200 ms: asked once more
# on a fresh socket (so that a late answer is never taken for the next call's).
# Without a world (no .world, or a server that does not answer) the hardware is unplugged,
# with one log line: a read raises OSError(ENODEV), which the runtime counts as a fault; an
# output (a call with arguments: value(v), duty_u16(d), writeto, send) drives nothing; a
# PulseCounter counts no pulses; ticks_ms() runs on the local clock.
import socket
import time

from protocol import cbor

_at = None  # the server's address, None without BOARD/.world
_s = None  # a UDP socket connected to it, None until needed
_down = 0  # ticks_ms until which a server that did not answer is not asked again
_said = 0  # the missing world has been logged
_ms = _t = 0  # simulated ms at the last answer, and the local ticks_ms then


def init(cfg, board_dir="."):
    global _at
    try:
        with open(board_dir + "/.world") as f:
            h, p = f.read().split()
        _at = socket.getaddrinfo(h, int(p))[0][-1]
    except (OSError, ValueError):
        pass


def call(req, out=False):
    """Ask the world: the result, or OSError (the world's errno; ENODEV if there is no
    world, unless out: an output without a world drives nothing, and gives None)."""
    global _s, _said, _down
    r = None
    if _at and time.ticks_diff(time.ticks_ms(), _down) >= 0:
        for _ in (0, 1):
            try:
                if _s is None:
                    _s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    _s.settimeout(0.2)
                    _s.connect(_at)
                _s.send(cbor.dumps(req))
                r = cbor.loads(_s.recv(256))  # answers are short
                break
            except OSError:  # no answer (then a fresh socket: a late one must not be
                if _s:  # taken for the next call's), or no server
                    _s.close()
                _s = None
        else:
            _down = time.ticks_add(time.ticks_ms(), 1000)
    if r is None:
        if not _said:
            _said = 1
            print("host_io: no world server: the hardware is unplugged")
        if out:
            return None
        raise OSError(19)
    _said = 0
    if r[0]:
        raise OSError(r[0])
    return r[1]


def ticks_ms():
    """Milliseconds of simulated time (the world's speed applies), for time.ticks_diff."""
    global _ms, _t
    now = time.ticks_ms()
    try:
        _ms = call(("ms",))
    except OSError:
        _ms += time.ticks_diff(now, _t)
    _t = now
    return time.ticks_add(0, _ms)


def rssi():
    return call(("rssi",), True) or -127


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.p = int(pull == 2)  # what the pin reads when nothing drives it
        if value is not None:
            self.value(value)

    def __getattr__(self, m):
        return lambda *a: _do(self, m, a)


def _do(pin, m, a):
    if a and type(a[0]) is list:  # an IR burst: marks, spaces (one CBOR array holds 64 items)
        a = (a[0][::2], a[0][1::2])
    out = a and m[:4] != "read"  # a call with arguments drives an output, unless it reads
    return call((m, pin.id, pin.p) + a, out)  # noqa: RUF005 (no (m, *a) in MicroPython)


def PWM(pin=0, *a, duty_u16=None, **k):
    p = pin if isinstance(pin, Pin) else Pin(pin)
    if duty_u16 is not None:
        p.duty_u16(duty_u16)
    return p


ADC = DHT22 = IR = I2C = PWM  # I2C(bus id, scl=, sda=, freq=): the world has one bus


class PulseCounter:
    """Rising edges on a pin, counted from 0 at boot (a PCNT unit). Without a world the
    count stands still, as it would with nothing pulsing."""

    def __init__(self, pin):
        self.id = getattr(pin, "id", pin)
        self.n = 0

    def value(self):
        self.n = call(("value", self.id, 0), True) or self.n
        return self.n
