# Reed contact to ground with the pin pulled up: a closed door (magnet near) reads 0.
# contact true = in contact (closed), as in the device model.
from . import pir


class Driver(pir.Driver):
    def __init__(self, hal, dev):
        pir.Driver.__init__(self, hal, dev, "contact", 0, hal.Pin.PULL_UP)
