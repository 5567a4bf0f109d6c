# DHT22 / AM2302 on one pin through the esp32 `dht` module's API. The sensor wants 2 s
# between measurements: a read within 2 s of the last returns that result again.
import time

from ._util import th


class Driver:
    def __init__(self, hal, dev):
        self.caps = dev["caps"]
        self.d = hal.DHT22(hal.Pin(dev["pin"]))
        self.t = None
        self.r = {}

    def read(self):
        now = time.ticks_ms()
        if self.t is None or time.ticks_diff(now, self.t) >= 2000:
            self.t = now
            self.r = {}
            d = self.d
            d.measure()
            self.r = th(
                self.caps, int(round(d.temperature() * 100)), int(round(d.humidity() * 100))
            )
        return self.r
