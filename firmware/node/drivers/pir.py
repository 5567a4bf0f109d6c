# PIR motion sensor (HC-SR501, AM312...): its output is high while it sees motion.
# The class is also the contact driver's: a two-state input that reports its level and
# tells the node when it changes (polled every "poll_ms", default 100).


class Driver:
    def __init__(self, hal, dev, kind="motion", active=1, pull=None):
        self.caps = dev["caps"]
        self.c = self.caps[kind]
        self.pin = hal.Pin(dev["pin"], hal.Pin.IN, pull)
        self.act = dev.get("active", active)
        self.ms = dev.get("poll_ms", 100)
        self.v = None

    def read(self):
        return {self.c: self.pin.value() == self.act}

    def poll(self, node, now):
        v = self.pin.value() == self.act
        if v != self.v:
            if self.v is not None:
                node.changed()
            self.v = v
        return self.ms
