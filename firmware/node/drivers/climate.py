# Air conditioner or thermostat controller: setpoint (0.01 degC), hvac_mode, fan_mode;
# the room temperature comes from the "sensor" device. Output either:
#   "ir": pin of an IR LED: the whole state goes out as one 32-bit frame on every change
#     and every "resend_s" (default 600): NEC framing (9 ms mark, 4.5 ms space, 560 us
#     marks, 560/1690 us spaces for 0/1, LSB first) of bytes 0x4B, power<<7 | mode<<4 |
#     fan<<2, setpoint in 0.5 degC steps above 10 degC, and their sum; the unit then
#     holds the setpoint itself;
#   "relay": a relay device switched with hysteresis "hysteresis" (0.01 degC, default 30)
#     around the setpoint: heat mode closes it below, cool mode above; other modes open it.
# Settings persist in the store as one integer setpoint*100 + mode*10 + fan (written when
# a command changes them).
import time


class Driver:
    def __init__(self, hal, dev):
        self.caps = dev["caps"]
        self.sp = dev.get("setpoint", 2200)
        self.mode = self.fan = 0
        ir = dev.get("ir")
        self.ir = None if ir is None else hal.IR(hal.Pin(ir, hal.Pin.OUT))
        self.relay = dev.get("relay")
        self.sensor = dev.get("sensor")
        self.h = dev.get("hysteresis", 30)
        self.per = dev.get("period_s", 10) * 1000
        self.rs = dev.get("resend_s", 600) * 1000
        self.key = ("c." + dev.get("name", "climate"))[:15]  # NVS keys: 15 chars
        self.st = None
        self.t = None  # last room temperature read

    def read(self):
        c = self.caps
        r = {}
        for k, v in (("setpoint", self.sp), ("hvac_mode", self.mode), ("fan_mode", self.fan)):
            if k in c:
                r[c[k]] = v
        return r

    def set(self, cid, v):
        c = self.caps
        if cid == c.get("setpoint"):
            self.sp = v
        elif cid == c.get("hvac_mode"):
            self.mode = v
        elif cid == c.get("fan_mode"):
            self.fan = v
        if self.st:
            self.st.put(self.key, self.sp * 100 + self.mode * 10 + self.fan)
        self.send()
        return v

    def send(self):
        if self.ir is None:
            return
        b1 = (self.mode != 0) << 7 | self.mode << 4 | self.fan << 2
        b2 = min(50, max(0, (self.sp + 25) // 50 - 20))
        p = [9000, 4500]
        for x in (0x4B, b1, b2, (0x4B + b1 + b2) & 0xFF):
            for i in range(8):
                p.append(560)
                p.append(1690 if x >> i & 1 else 560)
        p.append(560)
        self.ir.send(p)

    def control(self, node):
        """One thermostat step (relay output): read the room, switch with hysteresis."""
        s = node.device(self.sensor)
        try:
            self.t = s.read().get(s.caps["temperature"], self.t)
        except OSError:
            return
        if self.relay is None or self.t is None:
            return
        r = node.device(self.relay)
        k = r.caps["switch"]
        on = want = r.read()[k]
        t, m = self.t, self.mode
        if m == 1 or m == 2:
            if t <= self.sp - self.h:
                want = m == 1
            elif t >= self.sp + self.h:
                want = m == 2
        else:
            want = False
        if want != on:
            r.set(k, want)
            node.changed()

    def start(self, node):
        self.st = node.store
        s = self.st.get(self.key, None)
        if isinstance(s, int):
            self.sp, s = divmod(s, 100)
            self.mode, self.fan = divmod(s, 10)
        self.send()
        self.sent = time.ticks_ms()
        self.first = True

    def poll(self, node, now):
        if self.first:  # start() sent the state; control from the next period on
            self.first = False
            return self.per
        self.control(node)
        if time.ticks_diff(now, self.sent) >= self.rs:
            self.sent = now
            self.send()
        return self.per
