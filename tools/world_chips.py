"""Simulated chips of the world (tools/world.py): what a node's drivers talk to on the host.

Each chip answers with its datasheet's protocol, timing and transfer function, so that the
drivers under test are the ones that run on an ESP32:

- Sensirion SHT3x on I2C: single-shot measurement commands, 6 bytes with CRC-8;
- Aosong AHT20 on I2C: calibration, trigger, busy flag, 20-bit values with CRC-8;
- Aosong DHT22 on one pin (the esp32 `dht` module's measure/temperature/humidity);
- HLW8012 / BL0937 power metering: pulse counts on CF (energy) and CF1 (charge or
  volt-seconds, chosen by the SEL pin);
- an air conditioner's IR receiver: NEC-framed 32-bit codes.

Chips live as long as the world does: a node that reboots finds its sensor where it left it
(an SHT3x still holding an unread result, an AHT20 already calibrated).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, ClassVar, NamedTuple

if TYPE_CHECKING:
    from .world import World


def nack() -> OSError:
    """What the ESP32 port raises when an I2C address does not acknowledge."""
    return OSError(errno.ENODEV, "I2C NACK")


def crc8(data: bytes | bytearray) -> int:
    """CRC-8 of the Sensirion and Aosong sensors: polynomial 0x31, initial value 0xFF."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) if crc & 0x80 else crc << 1
            crc &= 0xFF
    return crc


class Sht3x:
    """Sensirion SHT3x, single shot: write a 16-bit command, read 6 bytes once the
    conversion is done (T msb, lsb, CRC, RH msb, lsb, CRC). A read before the result is
    ready, or a second read of the same result, is NACKed."""

    # single-shot commands and their typical conversion time (ms) by repeatability: 12.5,
    # 4.5, 2.5 (the datasheet's maxima, which drivers wait, are 15, 6, 4); the 0x2C..
    # variants stretch the clock, which on the wire amounts to the same wait
    COMMANDS: ClassVar[dict[int, float]] = {
        0x2400: 12.5,
        0x240B: 4.5,
        0x2416: 2.5,
        0x2C06: 12.5,
        0x2C0D: 4.5,
        0x2C10: 2.5,
    }

    def __init__(self, world: World) -> None:
        self.temp_error = world.gauss() / 20  # this part's calibration error, degC
        self.rh_error = world.gauss() * 0.7  # %RH
        self.due: float | None = None  # when the conversion in progress is done (world ms)
        self.result: bytes | None = None

    def write(self, world: World, data: bytes) -> None:
        if len(data) < 2:
            return
        cmd = data[0] << 8 | data[1]
        if cmd in self.COMMANDS:
            self.due = world.ms + self.COMMANDS[cmd]
            self.result = None

    def read(self, world: World, n: int) -> bytes:
        if self.due is not None and world.ms >= self.due:
            self.due = None
            t = world.temperature + self.temp_error + world.gauss() / 40
            h = world.value("humidity") + self.rh_error + world.gauss() / 10
            out = bytearray()
            for x in ((t + 45) / 175, h / 100):
                raw = min(65535, max(0, int(x * 65535 + 0.5))).to_bytes(2, "big")
                out += raw + bytes((crc8(raw),))
            self.result = bytes(out)
        if self.result is None:
            raise nack()
        data, self.result = self.result, None
        return data[:n]


class Aht20:
    """Aosong AHT20: 0xBE 0x08 0x00 calibrates; 0xAC 0x33 0x00 measures (the datasheet says
    to wait 80 ms; a part is done a little sooner); a read gives status (bit 7 busy, bit 3
    calibrated), 20-bit RH, 20-bit T, CRC-8."""

    CONVERSION_MS = 75

    def __init__(self, world: World) -> None:
        self.temp_error = world.gauss() / 10
        self.rh_error = world.gauss()
        self.calibrated = False
        self.due: float | None = None
        self.data = bytes(5)

    def write(self, world: World, data: bytes) -> None:
        cmd = data[0] << 8 | data[1] if len(data) > 1 else data[0] if data else 0
        if cmd == 0xBE08:
            self.calibrated = True
        elif cmd == 0xAC33:
            self.due = world.ms + self.CONVERSION_MS

    def read(self, world: World, n: int) -> bytes:
        busy = self.due is not None and world.ms < self.due
        if self.due is not None and not busy:
            self.due = None
            t = world.temperature + self.temp_error + world.gauss() / 40
            h = world.value("humidity") + self.rh_error + world.gauss() / 10
            rh = min(0xFFFFF, max(0, int(h / 100 * (1 << 20))))
            tc = min(0xFFFFF, max(0, int((t + 50) / 200 * (1 << 20))))
            self.data = bytes(
                (rh >> 12, rh >> 4 & 255, (rh & 15) << 4 | tc >> 16, tc >> 8 & 255, tc & 255)
            )
        out = bytearray((0x10 | 0x08 * self.calibrated | 0x80 * busy,)) + self.data
        out.append(crc8(out))
        return bytes(out[:n])


class Dht22:
    """Aosong DHT22 / AM2302 behind the esp32 `dht` module: 0.1 degC and 0.1 %RH steps."""

    def __init__(self, world: World) -> None:
        self.temp_error = world.gauss() / 5
        self.last: tuple[float | None, float | None] = (None, None)  # what the MCU holds

    def measure(self, world: World) -> tuple[float, float]:
        if world.param("dht_fail"):
            raise OSError(errno.ETIMEDOUT, "DHT22 does not answer")
        t = round(world.temperature + self.temp_error + world.gauss() / 10, 1)
        h = round(min(99.9, max(0.0, world.value("humidity") + world.gauss() / 3)), 1)
        self.last = (t, h)
        return t, h


class PowerMeter:
    """HLW8012 or BL0937 (datasheets). With V1 = I * shunt on the current input and
    V2 = V / divider on the voltage input:

      HLW8012 (fosc 3.579 MHz, Vref 2.43 V): F_CF = 48*V1*V2*fosc/(128*Vref^2),
        F_CF1 = 24*V1*fosc/(512*Vref) with SEL high, 2*V2*fosc/(512*Vref) with SEL low;
      BL0937 (Vref 1.218 V): F_CF = 1721506*V1*V2/Vref^2, F_CF1 = 94638*V1/Vref with SEL
        low, 15397*V2/Vref with SEL high.

    So CF counts energy and CF1 charge or volt-seconds: the counts are the world's integrals
    times constants, whatever the load did in between. The world calls integrate() for
    every physics step, with the SEL level of that moment."""

    def __init__(self, dev: dict) -> None:
        self.bl0937 = dev.get("model") == "bl0937"
        if self.bl0937:
            kp, ki, kv, vref = 1721506, 94638, 15397, 1.218
        else:
            kp, ki, kv, vref = 1342125, 167766, 13981, 2.43
        shunt = dev.get("shunt", 0.001)
        divider = dev.get("divider", 2351)
        self.per_joule = kp * shunt / (divider * vref * vref)  # CF pulses per J
        self.per_coulomb = ki * shunt / vref  # CF1 pulses per A*s (current selected)
        self.per_volt_second = kv / (divider * vref)  # CF1 pulses per V*s (voltage selected)
        self.sel_pin = dev.get("sel")
        self.current_level = 0 if self.bl0937 else 1  # the SEL level that selects current
        self.cf = 0.0  # pulses since the world started
        self.cf1 = 0.0
        self.cf_base = self.cf1_base = 0.0  # the counts when the node's counters started

    def count(self, which: str) -> int:
        """Pulses the node's counter on CF or CF1 has seen since it started."""
        if which == "cf":
            return int(self.cf) - int(self.cf_base)
        return int(self.cf1) - int(self.cf1_base)

    def restart_counters(self) -> None:
        self.cf_base, self.cf1_base = self.cf, self.cf1

    def integrate(self, joules: float, coulombs: float, volt_seconds: float, sel: int) -> None:
        self.cf += joules * self.per_joule
        if sel == self.current_level:
            self.cf1 += coulombs * self.per_coulomb
        else:
            self.cf1 += volt_seconds * self.per_volt_second


class AcState(NamedTuple):
    """What the air conditioner was last told by IR."""

    power: int
    mode: int  # 0 off, 1 heat, 2 cool, 3 auto, 4 dry
    fan: int  # 0 auto, 1 low, 2 medium, 3 high
    setpoint: float  # degC


def decode_ir(pulses: list[int]) -> int | None:
    """Demodulate NEC-style framing (9 ms mark, 4.5 ms space, 32 bits LSB first, a long
    space is a 1) from mark/space durations in us; None if it is not such a frame."""
    if len(pulses) < 67 or not (7000 < pulses[0] < 11000 and 3500 < pulses[1] < 5500):
        return None
    code = 0
    for i in range(32):
        code |= (pulses[3 + 2 * i] > 1100) << i
    return code


def ac_command(code: int) -> AcState | None:
    """The kithnet climate frame: 'K', power<<7 | mode<<4 | fan<<2, setpoint*2 - 20, and the
    sum of those three bytes; None for any other code (another remote, a corrupted frame)."""
    b = code & 255, code >> 8 & 255, code >> 16 & 255, code >> 24 & 255
    if b[0] != 0x4B or (b[0] + b[1] + b[2]) & 255 != b[3]:
        return None
    return AcState(b[1] >> 7, b[1] >> 4 & 7, b[1] >> 2 & 3, 10 + b[2] / 2)
