# Light-dependent resistor (GL55xx) from 3.3 V to the ADC pin, fixed resistor to ground.
# R_ldr = R_fixed * (65535 - u) / u; lux = 10 * (R10 / R_ldr) ^ (1 / gamma), R10 being
# the LDR's resistance at 10 lux (datasheet: GL5528 10-20 kOhm, gamma ~0.7).


class Driver:
    def __init__(self, hal, dev):
        self.c = dev["caps"]["illuminance"]
        self.caps = dev["caps"]
        self.a = hal.ADC(hal.Pin(dev["pin"]))
        self.rf = dev.get("r_fixed", 10000)
        self.r10 = dev.get("r10", 15000)
        self.g = dev.get("gamma", 0.7)

    def read(self):
        u = 0
        for _ in range(4):
            u += self.a.read_u16()
        u = min(u >> 2, 65400)
        if u < 30:
            return {self.c: 0}
        r = self.rf * (65535 - u) / u
        return {self.c: min(200000, int(10 * (self.r10 / r) ** (1 / self.g) + 0.5))}
