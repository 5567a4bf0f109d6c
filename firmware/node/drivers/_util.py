# Helpers shared by several drivers: loaded once, whatever number of drivers use them.


def crc8(buf, i, n):
    """CRC-8 of buf[i:i+n], polynomial 0x31, init 0xFF (Sensirion SHT3x, Aosong AHT20)."""
    c = 0xFF
    for j in range(i, i + n):
        c ^= buf[j]
        for _ in range(8):
            c = (c << 1) ^ 0x31 if c & 0x80 else c << 1
        c &= 0xFF
    return c


def th(caps, t, h):
    """{cap id: value} for the temperature/humidity capabilities a device has."""
    r = {}
    if "temperature" in caps:
        r[caps["temperature"]] = t
    if "humidity" in caps:
        r[caps["humidity"]] = min(10000, max(0, h))
    return r


class I2CSensor:
    """An I2C sensor measured on demand: read() uses the conversion the previous read
    started if it is recent (no waiting), else starts one and waits for it; then it starts
    the next. Subclasses give ADDR, CONV (ms), go() (start) and get(bytes) -> dict."""

    def __init__(self, hal, dev, n):
        self.caps = dev["caps"]
        self.i2c = hal.I2C(
            dev.get("i2c", 0), scl=hal.Pin(dev.get("scl", 22)), sda=hal.Pin(dev.get("sda", 21))
        )
        self.a = dev.get("addr", self.ADDR)
        self.n = n
        self.t = None

    def read(self):
        import time

        now = time.ticks_ms()
        t = self.t
        self.t = None
        if t is None or time.ticks_diff(now, t) > 5000:
            self.go()
            t = now
        w = self.CONV - time.ticks_diff(now, t)
        if w > 0:
            time.sleep_ms(w)
        r = self.get(self.i2c.readfrom(self.a, self.n))
        try:
            self.go()
            self.t = time.ticks_ms()
        except OSError:
            pass
        return r


def bad():
    raise OSError(5)  # EIO: a frame failed its CRC
