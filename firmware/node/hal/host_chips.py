# Simulated sensor chips for hal/host_io.py, loaded only when a config has them: the I2C
# bus with SHT3x and AHT20 on it, answering with their real byte protocols, and a DHT22.
import errno

from . import host_io as io


def _no():
    raise OSError(errno.ENODEV)  # what the ESP32 port raises on a NACK


def _fail(k):
    io.world.tick()
    return io.world.g(k)


def _chip(addr):
    c = io._chips.get(addr)
    if c is None or _fail("i2c_fail"):
        _no()
    return c


def _crc8(buf, i, n):  # as drivers/_util.py's: a climate node need not load _util
    c = 0xFF
    for j in range(i, i + n):
        c ^= buf[j]
        for _ in range(8):
            c = (c << 1) ^ 0x31 if c & 0x80 else c << 1
        c &= 0xFF
    return c


class I2C:
    def __init__(self, id=0, scl=None, sda=None, freq=400000):
        pass

    def scan(self):
        return [] if _fail("i2c_fail") else sorted(io._chips)

    def writeto(self, addr, buf, stop=True):
        _chip(addr).w(bytes(buf))
        return len(buf)

    def readfrom(self, addr, n, stop=True):
        return _chip(addr).r(n)

    def writeto_mem(self, addr, reg, buf):
        self.writeto(addr, bytes((reg,)) + bytes(buf))

    def readfrom_mem(self, addr, reg, n):
        self.writeto(addr, bytes((reg,)), False)
        return self.readfrom(addr, n)


class Chip:
    """Sensirion SHT3x (single shot: write a 16-bit command, read 6 bytes after the
    conversion: T msb, lsb, CRC, RH msb, lsb, CRC; no result yet: the read is NACKed) or
    Aosong AHT20 (0xBE 0x08 0x00 calibrates; 0xAC 0x33 0x00 measures for 80 ms; a read
    gives status (bit 7 busy, bit 3 calibrated), 20-bit RH, 20-bit T, CRC-8)."""

    def __init__(self, aht):
        w = io.world
        self.aht = aht
        self.cal = False
        self.due = self.m = None
        self.bt = w.gauss() / (10 if aht else 20)  # this part's calibration error
        self.bh = w.gauss() * (1 if aht else 0.7)

    def w(self, b):
        c = b[0] << 8 | b[1] if len(b) > 1 else b[0]
        if self.aht:
            if c == 0xBE08:
                self.cal = True
            elif c == 0xAC33:
                self.due = io.world.ms + 80
        elif c in (0x2400, 0x240B, 0x2416, 0x2C06, 0x2C0D, 0x2C10):  # single shot
            # at most 15/6/4 ms by repeatability; clock stretching (0x2C..) waits it out
            ms = 15 if c == 0x2400 else 6 if c == 0x240B else 4 * (c == 0x2416)
            self.due = io.world.ms + ms
            self.m = None

    def r(self, n):
        w = io.world
        busy = self.due is not None and w.ms < self.due
        if self.due is not None and not busy:  # the conversion has finished: its result
            t = w.value("temperature") + self.bt + w.gauss() / 40
            h = w.value("humidity") + self.bh + w.gauss() / 10
            self.due = None
            if self.aht:
                h = min(0xFFFFF, max(0, int(h * 10485.76)))
                t = min(0xFFFFF, max(0, int((t + 50) * 5242.88)))
                self.m = bytes(
                    (h >> 12, h >> 4 & 255, (h & 15) << 4 | t >> 16, t >> 8 & 255, t & 255)
                )
            else:
                d = bytearray(6)
                for i, x in ((0, (t + 45) / 175), (3, h / 100)):
                    x = min(65535, max(0, int(x * 65535 + 0.5)))
                    d[i] = x >> 8
                    d[i + 1] = x & 255
                    d[i + 2] = _crc8(d, i, 2)
                self.m = d
        if not self.aht:
            d = self.m
            if d is None:
                _no()
            self.m = None
            return bytes(d[:n])
        d = bytearray(7)
        d[0] = 0x10 | 8 * self.cal | 0x80 * busy
        d[1:6] = self.m or bytes(5)
        d[6] = _crc8(d, 0, 6)
        return bytes(d[:n])


class DHT22:
    """The esp32 dht.DHT22 API: measure() (OSError when the sensor does not answer), then
    temperature() and humidity() at the sensor's 0.1 resolution."""

    def __init__(self):
        self.t = self.h = None
        self.b = io.world.gauss() / 5

    def measure(self):
        w = io.world
        if _fail("dht_fail"):
            raise OSError(errno.ETIMEDOUT)
        self.t = round(w.value("temperature") + self.b + w.gauss() / 10, 1)
        self.h = round(min(99.9, w.value("humidity") + w.gauss() / 3), 1)

    def temperature(self):
        return self.t

    def humidity(self):
        return self.h
