"""The simulated physical world of a host-run node, in CPython, and its UDP server.

A node running on a PC under the MicroPython Unix port has no sensors, relays or mains. The
board runner (tools/board.py) gives it a `World` — room air, daylight, people, a battery,
the load behind the relay, the mains, an air conditioner, and the chips the config puts on
the board — and a `WorldServer` that the node's host HAL (firmware/node/hal/host_io.py)
talks to over loopback UDP. The world lives in the runner, not in the node: a deep sleep, a
reset, a watchdog or a kill -9 of the node leave the kettle boiling, the room warming and
the true energy counting, as they would in a house; and the node's 110 KB heap pays only
for a thin client.

Two clocks, both from one source (`clock`, seconds, time.monotonic by default): `ms` runs at
wall speed and times what a person or a circuit does (button presses, relay switching,
conversion delays); `s` advances by ms * speed / 1000 and times the physics (room
temperature, daylight, battery, load programmes, energy), so a demo can run a day in
minutes. The node's hal.ticks_ms() is `s` in milliseconds, so the metering integrates at
the world's speed.

Parameters come from config.json's "sim" section; any key of BOARD/world.json overrides
them (polled by mtime at most every 250 ms; a missing file, or one that is not a JSON object
of numbers and booleans, is ignored with one log line), and so does World.set(). Keys
(default):
  speed (1), seed (random), hour: time of day at start (12)
  temperature: ambient degC (21), diurnal: amplitude degC (1.5), drift: degC (0.3),
  humidity: %RH (45), lux: daylight peak indoors (350), lamp: extra lx (0)
  motion / contact: force the PIR / reed (true = motion / closed), else random events:
  motion_rate, contact_rate: per hour by day (4, 0.5), pir_hold: s (5)
  battery: % (95), drain: % a day (1)
  load: none|kettle|fridge|tv|heater|constant ("none"), load_on (true), load_w: W of a
  heater/constant (2000/100), mains: V (230), relay_ms: switching time (10)
  button: a press count, button_ms: press length (120; 1500 is a long press)
  i2c_fail, dht_fail: the sensors stop answering; rssi: dBm (-58)
Setting temperature, humidity or battery also resets that state; changing load or load_on
restarts the load's programme (a kettle boils again). Raising "button" by k presses the
button k times in a burst (1: single, 2: double); the count found first is the baseline,
so a file left over from an earlier run presses nothing.

Wire protocol (WorldServer): one CBOR array per datagram, answered by [0, result] or by
[errno] (ENODEV 19 for a NACK or a missing device, ETIMEDOUT 110 for a silent DHT22, EINVAL
22 for a request the server does not understand). The node's HAL forwards the methods of
its machine-like objects by name, as [method, pin or I2C bus, idle level, args...], the
idle level being what the pin reads when nothing drives it (its pull):
  value [level]             Pin: read an input, or drive an output (relay coil, LED, SEL);
                            on a metering chip's CF/CF1 pin, the PulseCounter's count
  duty_u16 [duty]           PWM duty 0..65535
  read_u16                  ADC reading 0..65535 over 0..3.3 V
  scan, writeto, readfrom, writeto_mem, readfrom_mem   machine.I2C on the board's bus
  measure, temperature, humidity                       dht.DHT22
  send marks spaces         IR: the burst's mark and space durations (us), as two arrays
and, with no arguments:
  ms                        the simulated clock, ms since the world started
  rssi                      the Wi-Fi signal, dBm
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import math
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kithnet.protocol import cbor

from .world_chips import AcState, Aht20, Dht22, PowerMeter, Sht3x, ac_command, decode_ir

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "speed": 1,
    "hour": 12,
    "temperature": 21,
    "diurnal": 1.5,
    "drift": 0.3,
    "humidity": 45,
    "lux": 350,
    "lamp": 0,
    "motion_rate": 4,
    "contact_rate": 0.5,
    "pir_hold": 5,
    "battery": 95,
    "drain": 1,
    "load": "none",
    "load_on": True,
    "mains": 230,
    "relay_ms": 10,
    "button_ms": 120,
    "i2c_fail": False,
    "dht_fail": False,
    "rssi": -58,
}
MAX_SPEED = 100_000  # simulated seconds per wall second: a day in under a second
POLL_MS = 250  # world.json is looked at no more often than this
INPUT_ROLES = ("button", "pir", "contact")
# config keys of a device that name pins; "pin" takes the driver's name as its role
PIN_KEYS = ("pin", "led", "cf", "cf1", "sel", "warm", "cold", "ir")
MAX_LOGS = 100

# The simulated LiPo 1S cell's open-circuit voltage (mV) against its state of charge (%):
# 12 mV below the nominal curve the battery driver maps, as a real cell would be
_LIPO_MV = (3258, 3598, 3678, 3738, 3788, 3828, 3858, 3938, 4008, 4098, 4188)
_LIPO_PC = (0, 5, 10, 25, 40, 50, 60, 70, 80, 90, 100)


class ManualClock:
    """A clock (seconds, like time.monotonic) that moves only when told: for tests and for
    stepping a world through a scenario."""

    def __init__(self, start_ms: int = 0) -> None:
        self.now_ms = start_ms

    def __call__(self) -> float:
        return self.now_ms / 1000

    def advance(self, ms: float) -> float:
        self.now_ms += ms
        return self.now_ms


def _locked(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self: World, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


def _check_overrides(d: object) -> dict[str, Any]:
    """world.json's content, or ValueError: a JSON object of finite numbers and booleans
    ("load" a string)."""
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    for k, v in d.items():
        if k == "load":
            ok = isinstance(v, str)
        else:
            ok = isinstance(v, bool) or (isinstance(v, int | float) and math.isfinite(v))
        if not ok:
            raise ValueError(f"{k}: {v!r}")
    return d


class World:
    """The room, the mains and the chips of one board. Thread-safe: the server's thread
    and a test may call it at once."""

    def __init__(
        self,
        cfg: dict,
        board_dir: Path | str | None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.cfg = cfg
        self.board_dir = Path(board_dir) if board_dir is not None else None
        self.base: dict[str, Any] = dict(cfg.get("sim") or {})
        self.file_overrides: dict[str, Any] = {}  # from world.json
        self.set_overrides: dict[str, Any] = {}  # from set()
        self.params: dict[str, Any] = dict(self.base)
        self.logs: list[str] = []
        self._log = log
        if seed is None:
            seed = self.base.get("seed")
        self.rng = random.Random(seed)
        self.clock = clock
        self._t0 = clock()
        self.ms: float = 0  # wall-speed ms since the world started
        self.s = 0.0  # simulated seconds since the world started
        self._polled: float = 0  # world.ms of the last look at world.json
        self._file_key: tuple | None = None  # (mtime_ns, size) of world.json as last read
        self._file_text: str | None = None
        self._file_missing_said = False
        # the room
        self.temperature = float(self.param("temperature"))  # air, degC
        self.humidity = float(self.param("humidity"))  # %RH (state; value() clamps it)
        self.battery = float(self.param("battery"))  # state of charge, %
        self.hour = float(self.param("hour")) % 24
        self._drift = self._rh_walk = self._mains_walk = self._tv_walk = 0.0
        self._sky = 1.0  # cloud cover factor on daylight
        self._motion_until = self._open_until = -1.0  # simulated s
        self.ac: AcState | None = None
        # the mains and the load behind the relay
        self.mains_v = float(self.param("mains"))
        self.power_w = self.current_a = 0.0
        self.energy_j = self.charge_as = self.volt_s = 0.0  # integrals through the meter
        self._load_t = 0.0  # s into the load's programme
        self.relay_commanded = self.relay_closed = False
        self._relay_at: float = 0  # world.ms when the relay coil last changed
        self._mcu_down = False  # the node's chip is down (between mcu_reset and mcu_seen)
        # the button: a burst of presses starting at _press_at (ms)
        self._press_at: float = 0
        self._presses = 0
        self._press_ms: float = 120
        # world.json's button count as first seen: the baseline presses are counted from
        self._button_count: float | None = None if self.board_dir else 0
        # the board: pins by number, chips by bus address or pin
        self.pins: dict[int, tuple[str, dict]] = {}
        self.pin_levels: dict[int, float] = {}  # output pins as last driven
        self.outputs: dict[str, float] = {}  # the same by role; PWM as a duty 0..1
        self.i2c_chips: dict[int, Sht3x | Aht20] = {}
        self.dht: dict[int, Dht22] = {}
        self.meters: list[PowerMeter] = []
        self.counters: dict[int, tuple[PowerMeter, str]] = {}
        self._wire(cfg.get("devices") or [])
        self.poll()

    def _wire(self, devices: list) -> None:
        for dev in devices:
            if not isinstance(dev, dict):
                continue
            kind = dev.get("driver")
            if kind == "sht3x":
                self.i2c_chips[dev.get("addr", 0x44)] = Sht3x(self)
            elif kind == "aht20":
                self.i2c_chips[dev.get("addr", 0x38)] = Aht20(self)
            elif kind == "dht22" and "pin" in dev:
                self.dht[dev["pin"]] = Dht22(self)
            elif kind == "hlw8012":
                meter = PowerMeter(dev)
                self.meters.append(meter)
                for key in ("cf", "cf1"):
                    if key in dev:
                        self.counters[dev[key]] = (meter, key)
            for key in PIN_KEYS:
                if key in dev:
                    self.pins[dev[key]] = (kind if key == "pin" else key, dev)
        if not any(role == "relay" for role, _ in self.pins.values()):
            self.relay_commanded = self.relay_closed = True  # no relay: the load is wired in

    # -- parameters, randomness, logging ------------------------------------------------

    def param(self, key: str, default: Any = None) -> Any:
        if key in self.params:
            return self.params[key]
        if key == "load_w":
            return 2000 if self.params.get("load") == "heater" else 100
        return DEFAULTS.get(key, default)

    def gauss(self) -> float:
        return self.rng.gauss(0.0, 1.0)

    def log(self, msg: str) -> None:
        self.logs.append(msg)
        del self.logs[:-MAX_LOGS]
        if self._log is not None:
            self._log(msg)
        else:
            logger.info("%s", msg)

    @_locked
    def set(self, **overrides: Any) -> None:
        """Override parameters as world.json would (a key set to None drops its override);
        these win over world.json's. ValueError for a value world.json could not hold."""
        _check_overrides({k: v for k, v in overrides.items() if v is not None})
        self.tick()
        for k, v in overrides.items():
            if v is None:
                self.set_overrides.pop(k, None)
            else:
                self.set_overrides[k] = v
        self._apply()

    def _apply(self) -> None:
        old = self.params
        over = {**self.file_overrides, **self.set_overrides}
        self.params = new = {**self.base, **over}
        for key in ("temperature", "humidity", "battery"):
            if key in over and over[key] != old.get(key):
                setattr(self, key, float(over[key]))
        if new.get("load") != old.get("load") or new.get("load_on") != old.get("load_on"):
            self._load_t = 0.0
        count = over.get("button", self._button_count or 0)
        if self._button_count is not None and count > self._button_count:
            self.press(count - self._button_count, new.get("button_ms", 120))
        self._button_count = count

    @_locked
    def press(self, times: int = 1, hold_ms: float = 120) -> None:
        """Press the button `times` times in a burst, each held hold_ms (1000+: a long press)."""
        self._press_at = self.ms + 20
        self._presses = times
        self._press_ms = max(20, hold_ms)

    # -- time -----------------------------------------------------------------------------

    @_locked
    def tick(self) -> None:
        """Catch up with the clock; look at world.json when it is due."""
        now = round((self.clock() - self._t0) * 1000)
        if now > self.ms:
            try:
                self._advance(now)
            except Exception as e:  # a value world.json should not have had: back to config
                self.log(f"world: {e!r}, overrides dropped")
                self.file_overrides = {}
                self.set_overrides = {}
                self._apply()
                self.ms = now
        if self.ms - self._polled >= POLL_MS:
            self._polled = self.ms
            self.poll()

    def _advance(self, now: float) -> None:
        """Move to wall ms `now`, switching the relay at the moment its contacts move."""
        speed = min(MAX_SPEED, max(0, self.param("speed")))
        while self.ms < now:
            until = now
            if self.relay_commanded != self.relay_closed:
                switch = self._relay_at + self.param("relay_ms")
                if switch <= self.ms:
                    self.relay_closed = self.relay_commanded
                    continue
                until = min(now, switch)
            self.skip((until - self.ms) * speed / 1000)
            self.ms = until

    @_locked
    def skip(self, seconds: float) -> None:
        """Advance the physics by `seconds` simulated seconds (wall time stands still):
        1 s steps while a load runs, else 60 s, and at most 20000 steps."""
        floor = seconds / 20000
        while seconds > 0:
            running = self.relay_closed and self.param("load") != "none"
            h = min(seconds, max(floor, 1 if running else 60))
            self._step(h)
            seconds -= h

    @_locked
    def sim_ms(self) -> int:
        """The simulated clock in ms (the node's hal.ticks_ms())."""
        self.tick()
        return int(self.s * 1000)

    # -- physics ----------------------------------------------------------------------------

    def _ou(self, x: float, tau: float, sd: float, h: float) -> float:
        """Ornstein-Uhlenbeck step (exact for any h): a random walk pulled back to 0."""
        a = math.exp(-h / tau)
        return x * a + sd * math.sqrt(1 - a * a) * self.gauss()

    def _step(self, h: float) -> None:
        p = self.param
        self.s += h
        self.hour = hour = (p("hour") + self.s / 3600) % 24
        t0 = p("temperature")
        self._drift = self._ou(self._drift, 10800, p("drift"), h)
        ambient = t0 + p("diurnal") * math.sin((hour - 9) * math.pi / 12) + self._drift
        self._mains_walk = self._ou(self._mains_walk, 600, 1.5, h)
        self.mains_v = v = p("mains") + self._mains_walk
        power, pf = self._load(h)
        self.power_w = power = max(0.0, power)
        self.current_a = i = power / (v * pf) if power else 0.0
        self.energy_j += power * h
        self.charge_as += i * h
        self.volt_s += max(0.0, v) * h
        for m in self.meters:
            m.integrate(power * h, i * h, max(0.0, v) * h, self.pin_levels.get(m.sel_pin, 0))
        # the room: pulled toward the ambient curve in an hour, heated by a heater load,
        # and by an air conditioner toward its setpoint (capacity in K/s by fan speed)
        rate = (ambient - self.temperature) / 3600
        if p("load") == "heater":
            rate += power / 700000
        floor_t, ceiling_t = -99.0, 99.0
        ac = self.ac
        if ac and ac.power:
            t, sp = self.temperature, ac.setpoint
            cap = (4, 2.5, 4, 6)[ac.fan] / 1000 / (2 if ac.mode == 4 else 1)
            if ac.mode in (2, 4) or (ac.mode == 3 and t > sp):  # cool, dry, auto above
                rate -= cap * (t > sp)
                floor_t = sp
            elif ac.mode in (1, 3):  # heat, auto below
                rate += cap * (t < sp)
                ceiling_t = sp
        t = self.temperature + rate * h
        self.temperature = max(floor_t, t) if t < self.temperature else min(ceiling_t, t)
        self._rh_walk = self._ou(self._rh_walk, 7200, 1.2, h)
        dry = 12 if floor_t > -99 else 0  # a cooling unit condenses water out of the air
        rh = p("humidity") - 2 * (self.temperature - t0) - dry + self._rh_walk
        self.humidity += (rh - self.humidity) * (1 - math.exp(-h / 1800))
        self._sky = min(1.0, max(0.2, 0.8 + self._ou(self._sky - 0.8, 1800, 0.15, h)))
        day = 7 < hour < 23
        if self.s > self._motion_until:
            if self.rng.random() * 3600 < p("motion_rate") * h * (1 if day else 0.1):
                self._motion_until = self.s + p("pir_hold")
        if self.s > self._open_until and self.rng.random() * 3600 < p("contact_rate") * h * day:
            self._open_until = self.s + 5 + 55 * self.rng.random()
        self.battery = max(0.0, self.battery - p("drain") * h / 86400)

    def _load(self, h: float) -> tuple[float, float]:
        """Active power (W) and power factor of what is plugged in behind the relay."""
        kind = self.param("load")
        on = bool(self.param("load_on"))
        if not self.relay_closed or kind == "none" or self.mains_v < 50:
            return 0.0, 1.0  # open contacts, nothing plugged in, a blackout
        self._tv_walk = self._ou(self._tv_walk, 20, 12, h)
        t = self._load_t
        self._load_t += h
        resistive = self.mains_v**2 / 230**2  # a resistive load follows the mains voltage
        if kind == "kettle":  # ~2.2 kW for ~3 min, then its thermostat opens
            return resistive * (2200 - t * 3 / 20) * (on and t < 180), 1.0
        if kind == "fridge":  # compressor: 15 min on (6x inrush for 2 s), 30 min off
            c = t % 2700
            return ((90 + 450 * max(0, 1 - c / 2)) if c < 900 else 1.5), 0.8
        if kind == "tv":  # ~110 W swinging with the picture, 0.5 W standby
            return (110 + self._tv_walk, 0.9) if on else (0.5, 0.3)
        return resistive * self.param("load_w") * on, 1.0  # heater, constant

    # -- what a test or a demo reads ------------------------------------------------------

    @property
    def energy_wh(self) -> float:
        """True energy delivered through the meter since the world started."""
        return self.energy_j / 3600

    @_locked
    def value(self, name: str) -> float:
        """A true quantity now: temperature (degC), humidity (%RH), illuminance (lx),
        battery (%), battery_mv, power (W), voltage (V), current (A), energy_wh."""
        self.tick()
        if name == "humidity":
            return min(100.0, max(0.0, self.humidity))
        if name == "illuminance":
            hour = self.hour
            sun = math.sin((hour - 6) * math.pi / 12) if 6 < hour < 18 else 0
            return self.param("lux") * sun * self._sky + self.param("lamp") + 0.5
        if name == "battery_mv":
            return self._battery_mv()
        attr = {"power": "power_w", "voltage": "mains_v", "current": "current_a"}.get(name, name)
        if attr not in ("temperature", "battery", "power_w", "mains_v", "current_a", "energy_wh"):
            raise KeyError(name)
        return getattr(self, attr)

    def _battery_mv(self) -> float:
        b = min(100.0, max(0.0, self.battery))
        i = 1
        while i < 10 and b > _LIPO_PC[i]:
            i += 1
        lo, hi = _LIPO_MV[i - 1], _LIPO_MV[i]
        return lo + (hi - lo) * (b - _LIPO_PC[i - 1]) / (_LIPO_PC[i] - _LIPO_PC[i - 1])

    def _level(self, role: str) -> int:
        """The level a sensor drives on its pin."""
        if role == "button":  # to ground while pressed, ~4 ms of contact bounce per edge
            t = self.ms - self._press_at
            period = self._press_ms + 150
            k = t // period
            if t < 0 or k >= self._presses:
                return 1
            t -= k * period
            if t < 4 or self._press_ms <= t < self._press_ms + 4:
                return int(self.rng.random() < 0.5)
            return int(t >= self._press_ms)
        if role == "pir":
            return int(bool(self.params.get("motion", self.s < self._motion_until)))
        # reed to ground: a closed door reads 0
        return int(not self.params.get("contact", self.s >= self._open_until))

    # -- the board's hardware, as the node's HAL asks for it ------------------------------

    @_locked
    def mcu_reset(self) -> None:
        """The node's chip reset, slept or lost power: its output pins float, so the relay
        coil lets go, LEDs and PWM go dark. The room, the load and the sensors carry on."""
        self.tick()
        self.pin_levels.clear()
        self.outputs.clear()
        self._mcu_down = True  # its pulse counters start again when it is back
        for dht in self.dht.values():
            dht.last = (None, None)
        if self.relay_commanded and any(r == "relay" for r, _ in self.pins.values()):
            self.relay_commanded = False
            self._relay_at = self.ms

    @_locked
    def mcu_seen(self) -> None:
        """The node's chip is running (it asked for something): after a reset, its pulse
        counters start from 0 now, as a PCNT unit does at boot."""
        if self._mcu_down:
            self._mcu_down = False
            self.tick()  # what the load did while the chip was down is not counted
            for meter in self.meters:
                meter.restart_counters()

    @_locked
    def pin_read(self, pin: int, idle: int = 0) -> int:
        self.tick()
        role = self.pins.get(pin, ("", {}))[0]
        if role in INPUT_ROLES:
            return self._level(role)
        return int(self.pin_levels.get(pin, idle))

    @_locked
    def pin_write(self, pin: int, level: float) -> None:
        """An output changed: relay coil, LED, SEL, or a PWM duty (0..1)."""
        self.tick()
        self.pin_levels[pin] = level
        role = self.pins.get(pin, ("", {}))[0]
        if role:
            self.outputs[role] = level
        if role == "relay" and bool(level) != self.relay_commanded:
            self.relay_commanded = bool(level)
            self._relay_at = self.ms

    def pwm_write(self, pin: int, duty_u16: int) -> None:
        self.pin_write(pin, min(65535, max(0, duty_u16)) / 65535)

    @_locked
    def pwm_duty(self, pin: int) -> int:
        return round(self.pin_levels.get(pin, 0) * 65535)

    @_locked
    def adc_read(self, pin: int) -> int:
        """0..65535 over 0..3.3 V with ~5 mV of noise. An LDR from 3.3 V to the pin with
        "r_fixed" to ground; or a battery through a 1:"divider"; else a floating input."""
        self.tick()
        role, dev = self.pins.get(pin, ("", {}))
        mv = 0.0
        if role == "ldr":
            rf = dev.get("r_fixed", 10000)
            lux = max(1.0, self.value("illuminance"))
            r = dev.get("r10", 15000) * (lux / 10) ** -dev.get("gamma", 0.7)
            mv = 3300 * rf / (rf + r)
        elif role == "battery":
            mv = self._battery_mv() / dev.get("divider", 2)
        return min(65535, max(0, int((mv + 5 * self.gauss()) * 65535 / 3300)))

    def _chip(self, addr: int) -> Sht3x | Aht20:
        chip = self.i2c_chips.get(addr)
        if chip is None or self.param("i2c_fail"):
            raise OSError(errno.ENODEV, "I2C NACK")
        return chip

    @_locked
    def i2c(self, method: str, *args: Any) -> Any:
        """machine.I2C's methods on the board's bus (one bus: whatever pins it uses)."""
        self.tick()
        if method == "scan":
            return [] if self.param("i2c_fail") else sorted(self.i2c_chips)
        if method == "writeto":
            addr, buf = args[0], bytes(args[1])
            self._chip(addr).write(self, buf)
            return len(buf)
        if method == "readfrom":
            return self._chip(args[0]).read(self, int(args[1]))
        if method == "writeto_mem":
            addr, reg, buf = args[0], args[1], bytes(args[2])
            self._chip(addr).write(self, bytes((reg,)) + buf)
            return None
        if method == "readfrom_mem":
            addr, reg, n = args
            chip = self._chip(addr)
            chip.write(self, bytes((reg,)))
            return chip.read(self, int(n))
        raise OSError(errno.EINVAL, f"no I2C method {method!r}")

    @_locked
    def dht_measure(self, pin: int) -> tuple[float, float]:
        self.tick()
        chip = self.dht.get(pin)
        if chip is None:
            raise OSError(errno.ETIMEDOUT, "no DHT22 on that pin")
        return chip.measure(self)

    @_locked
    def dht_last(self, pin: int) -> tuple[float | None, float | None]:
        """The DHT22's last measurement, as the esp32 dht module keeps it."""
        chip = self.dht.get(pin)
        return (None, None) if chip is None else chip.last

    @_locked
    def pulse_count(self, pin: int) -> int:
        """Pulses counted on a metering chip's CF or CF1 output since the node's chip
        started (its counters start from 0 at boot, as a PCNT unit does)."""
        self.tick()
        entry = self.counters.get(pin)
        if entry is None:
            return 0
        meter, which = entry
        return meter.count(which)

    @_locked
    def ir_send(self, pin: int, pulses: list[int]) -> None:
        """An IR burst (mark/space durations in us, marks first) reaches the AC's receiver."""
        code = decode_ir(pulses)
        state = None if code is None else ac_command(code)
        if state is not None:
            self.tick()
            self.ac = state

    @_locked
    def rssi(self) -> int:
        return int(self.param("rssi") + 3 * self.gauss())

    # -- world.json -------------------------------------------------------------------------

    @_locked
    def poll(self) -> None:
        """Look at BOARD/world.json now (tick() does, at most every POLL_MS)."""
        if self.board_dir is None:
            return
        path = self.board_dir / "world.json"
        try:
            st = path.stat()
            # mtime has a coarse resolution: keep re-reading while the file is that fresh
            key = (st.st_mtime_ns, st.st_size)
            if key == self._file_key and time.time() - st.st_mtime > 2:
                return
            self._file_key = key
            text = path.read_text(errors="replace")
        except OSError:
            if not self._file_missing_said or self._file_key is not None:
                self.log("world: no world.json, the config's sim section applies")
                self._file_missing_said = True
            self._file_key = self._file_text = None
            if self.file_overrides or self._button_count is None:
                self.file_overrides = {}
                self._apply()
            return
        if text == self._file_text:
            return
        self._file_text = text
        try:
            overrides = _check_overrides(json.loads(text))
        except ValueError:  # whatever a person may write there: ignored, never fatal
            self.log("world: world.json ignored: not a JSON object of numbers and booleans")
            return
        self.file_overrides = overrides
        self._apply()


class WorldServer:
    """Serves a World to a node's host HAL over UDP on loopback, from a thread of its own.

    One request per datagram, one answer (see the module's docstring for the operations).
    Between requests the thread ticks the world every 250 ms, so world.json is read and the
    physics keeps up while the node sleeps. close() stops it; it is also a context manager.
    """

    I2C_METHODS = ("scan", "writeto", "readfrom", "writeto_mem", "readfrom_mem")

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0) -> None:
        self.world = world
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(POLL_MS / 1000)
        self.host, self.port = self.sock.getsockname()[:2]
        self.requests = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="world-server", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def __enter__(self) -> WorldServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, src = self.sock.recvfrom(4096)
            except TimeoutError:
                self._idle()
                continue
            except OSError:
                if self._stop.is_set():
                    break
                continue
            reply = self.handle(data)
            try:
                self.sock.sendto(reply, src)
            except OSError:
                pass

    def _idle(self) -> None:
        try:
            self.world.tick()
        except Exception:
            logger.exception("world: tick failed")

    def handle(self, data: bytes) -> bytes:
        """One request's answer, as bytes to send back."""
        self.requests += 1
        try:
            req = cbor.loads(data)
            if not isinstance(req, list) or not req or not isinstance(req[0], str):
                raise ValueError("a request is [op, args...]")
            result = self.dispatch(req[0], req[1:])
            return cbor.dumps([0, result])
        except OSError as e:
            self.errors += 1
            return cbor.dumps([e.errno or errno.EIO])
        except Exception as e:  # a request this server does not understand
            self.errors += 1
            logger.warning("world: bad request %r: %r", data[:64], e)
            return cbor.dumps([errno.EINVAL])

    def dispatch(self, op: str, args: list) -> Any:
        """Carry out one request: a method of machine.Pin, PWM, ADC, I2C, dht.DHT22, the
        pulse counter or the IR sender, called by the node on [pin or bus, idle level,
        args...]; or the clock or the radio. Subclasses may add operations."""
        w = self.world
        w.mcu_seen()
        if op == "ms":
            return w.sim_ms()
        if op == "rssi":
            return w.rssi()
        pin, idle, *rest = args
        if op in self.I2C_METHODS:
            return w.i2c(op, *rest)
        if op == "value":  # Pin.value([level]), or a PulseCounter's count
            if pin in w.counters:
                return w.pulse_count(pin)
            if rest:
                return w.pin_write(pin, int(bool(rest[0])))
            return w.pin_read(pin, idle)
        if op == "duty_u16":
            return w.pwm_write(pin, rest[0]) if rest else w.pwm_duty(pin)
        if op == "read_u16":
            return w.adc_read(pin)
        if op == "measure":
            w.dht_measure(pin)
            return None
        if op in ("temperature", "humidity"):
            return w.dht_last(pin)[op == "humidity"]
        if op == "send":  # marks and spaces apart: one CBOR array holds at most 64 items
            marks, spaces = rest
            pulses = [0] * (len(marks) + len(spaces))
            pulses[0::2], pulses[1::2] = marks, spaces
            return w.ir_send(pin, pulses)
        raise ValueError(f"unknown op {op!r}")
