# Battery voltage through a divider (default 1:2) into the ADC (0..65535 over 0..3.3 V),
# mapped to percent on a LiPo 1S discharge curve.

# open-circuit mV (10 mV steps above 3.0 V) and the matching state of charge, %
_MV = b"\x1b\x3d\x45\x4b\x50\x54\x57\x5f\x66\x6f\x78"
_PC = b"\x00\x05\x0a\x19\x28\x32\x3c\x46\x50\x5a\x64"


class Driver:
    def __init__(self, hal, dev):
        self.c = dev["caps"]["battery"]
        self.caps = dev["caps"]
        self.a = hal.ADC(hal.Pin(dev["pin"]))
        self.k = 3300 * dev.get("divider", 2)

    def read(self):
        u = 0
        for _ in range(8):
            u += self.a.read_u16()
        v = u * self.k // 524280  # mV at the battery (8 samples * 65535)
        p = 100
        for i in range(11):
            m = 3000 + 10 * _MV[i]
            if v < m:
                p = 0
                if i:
                    m0 = 3000 + 10 * _MV[i - 1]
                    p = _PC[i - 1] + (_PC[i] - _PC[i - 1]) * (v - m0) // (m - m0)
                break
        return {self.c: p}
