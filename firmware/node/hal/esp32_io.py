# Hardware I/O on an ESP32: the names of hal/host_io.py over machine, dht and esp32.RMT.
# Constructors take a pin number or a machine.Pin, like the host's.
import time

import machine
from machine import I2C as _I2C
from machine import PWM as _PWM
from machine import Pin

ticks_ms = time.ticks_ms


def _pin(p, mode=None):
    if isinstance(p, Pin):
        return p
    return Pin(p) if mode is None else Pin(p, mode)


def PWM(pin, freq=1000, duty_u16=0):
    return _PWM(_pin(pin, Pin.OUT), freq=freq, duty_u16=duty_u16)


def ADC(pin, atten=3):
    a = machine.ADC(_pin(pin))
    a.atten(atten)  # 11 dB: the full 0..3.3 V range
    return a


def I2C(id=0, scl=22, sda=21, freq=400000):
    return _I2C(id, scl=_pin(scl), sda=_pin(sda), freq=freq)


def DHT22(pin):
    import dht

    return dht.DHT22(_pin(pin))


_units = [0]


class PulseCounter:
    """Rising edges on a pin: a PCNT unit through machine.Counter where the firmware has
    it (v1.26+), else a Pin IRQ."""

    def __init__(self, pin):
        p = _pin(pin, Pin.IN)
        try:
            self.c = machine.Counter(_units[0], p)
            _units[0] += 1
        except (AttributeError, ValueError, OSError):
            self.c = None
            self.n = 0
            p.irq(self._edge, Pin.IRQ_RISING)

    def _edge(self, p):
        self.n += 1

    def value(self):
        return self.n if self.c is None else self.c.value()


class IR:
    """An IR LED on an RMT channel with a 38 kHz carrier; send(mark/space us, marks first)."""

    def __init__(self, pin, ch=0):
        from esp32 import RMT

        p = _pin(pin, Pin.OUT)
        c = (38000, 33, 1)
        try:  # 1 us units
            self.r = RMT(ch, pin=p, resolution_hz=1000000, tx_carrier=c)
        except TypeError:  # before v1.25
            self.r = RMT(ch, pin=p, clock_div=80, tx_carrier=c)

    def send(self, pulses):
        self.r.write_pulses(pulses, True)
