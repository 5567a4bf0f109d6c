# A relay on a pin (high closes it unless "inverted"), with an optional status LED that
# follows it ("led": pin, lit low unless "led_inverted": false). "restore": "last" keeps
# the state across reboots in the store (written only when it changes); "on"/"off" (the
# default) set the state at boot.


class Driver:
    def __init__(self, hal, dev):
        self.caps = dev["caps"]
        self.c = self.caps["switch"]
        self.inv = dev.get("inverted", False)
        self.pin = hal.Pin(dev["pin"], hal.Pin.OUT)
        led = dev.get("led")
        self.led = None if led is None else hal.Pin(led, hal.Pin.OUT)
        self.li = dev.get("led_inverted", True)
        self.rs = dev.get("restore", "off")
        self.key = ("r." + dev.get("name", "relay"))[:15]  # NVS keys: 15 chars
        self.st = None
        self.on = None
        self._w(self.rs == "on")

    def _w(self, v):
        self.on = v
        self.pin.value(v != self.inv)
        if self.led:
            self.led.value(v != self.li)

    def read(self):
        return {self.c: self.on}

    def set(self, cid, v):
        v = bool(v)
        if v != self.on:
            self._w(v)
            if self.st:
                self.st.put(self.key, int(v))
        return v

    def start(self, node):
        if self.rs == "last":
            self.st = node.store
            self._w(bool(self.st.get(self.key, False)))
