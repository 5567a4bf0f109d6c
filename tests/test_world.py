"""The simulated world (tools/world.py, tools/world_chips.py) in CPython, its UDP server,
and the board runner that keeps both across a node's restarts.

Everything runs on a ManualClock: the world's time moves only when a test moves it, and
no test asserts on wall-clock time.
"""

from __future__ import annotations

import errno
import json
import math
import os
import socket
import time
from pathlib import Path

import pytest
from kithnet.protocol import cbor
from kithnet.tools import board as B
from kithnet.tools import world as W
from kithnet.tools import world_chips as C

PLUG = json.loads((B.FIRMWARE / "types" / "plug.json").read_text())
SENSOR = json.loads((B.FIRMWARE / "types" / "sensor.json").read_text())
CLIMATE = json.loads((B.FIRMWARE / "types" / "climate.json").read_text())
RELAY, LED, BUTTON, CF, CF1, SEL = 26, 2, 0, 25, 33, 32  # plug.json's pins


def make(cfg: dict, tmp_path: Path | None = None, seed: int = 1, **sim) -> W.World:
    cfg = {**cfg, "sim": {**cfg.get("sim", {}), **sim}}
    return W.World(cfg, tmp_path, seed=seed, clock=W.ManualClock())


def advance(w: W.World, ms: float) -> None:
    w.clock.advance(ms)
    w.tick()


def plug(tmp_path=None, **sim) -> W.World:
    """The plug's world with its relay closed."""
    w = make(PLUG, tmp_path, **sim)
    w.pin_write(RELAY, 1)
    advance(w, 20)
    assert w.relay_closed
    return w


def ac_pulses(power: int, mode: int, fan: int, setpoint: float) -> list[int]:
    """The climate driver's NEC frame (drivers/climate.py)."""
    b1 = power << 7 | mode << 4 | fan << 2
    b2 = int(setpoint * 2 - 20)
    p = [9000, 4500]
    for x in (0x4B, b1, b2, (0x4B + b1 + b2) & 0xFF):
        for i in range(8):
            p += [560, 1690 if x >> i & 1 else 560]
    return [*p, 560]


# -- clocks, parameters, determinism -------------------------------------------------------


def test_parameters_come_from_the_config_and_defaults():
    w = make(PLUG)
    assert w.param("load") == "fridge" and w.param("mains") == 230
    assert w.param("load_w") == 100 and w.param("hour") == 12  # a default
    assert make(SENSOR).param("load_w") == 100  # a constant load's default
    assert make(SENSOR, load="heater").param("load_w") == 2000  # a heater's
    assert w.relay_commanded is False  # the plug has a relay
    assert make(SENSOR).relay_closed is True  # no relay: whatever is metered is wired in


def test_speed_scales_simulated_time_and_the_nodes_clock():
    w = make(SENSOR, speed=60)
    advance(w, 1000)
    assert w.ms == 1000 and w.s == 60 and w.sim_ms() == 60000
    w.set(speed=600)
    advance(w, 1000)
    assert w.s == 660
    w.set(speed=-5)  # a hostile value: time stands still rather than running back
    advance(w, 1000)
    assert w.s == 660


def series(seed: int) -> list[tuple[float, float, float]]:
    w = make(SENSOR, seed=seed, speed=600)
    out = []
    for _ in range(30):
        advance(w, 1000)
        out.append((w.value("temperature"), w.value("humidity"), w.value("illuminance")))
    return out


def test_a_seed_makes_the_world_repeatable():
    assert series(3) == series(3)
    assert series(3) != series(4)
    temps = [t for t, _, _ in series(3)]
    assert 0 < max(temps) - min(temps) < 3  # it moves, plausibly


# -- the room --------------------------------------------------------------------------------


def test_daylight_follows_the_hour_and_nights_are_dark():
    w = make(SENSOR, hour=0, drift=0, lux=400)
    lux = {}
    for hour in range(24):
        lux[hour] = w.value("illuminance")
        w.skip(3600)
    assert lux[2] == pytest.approx(0.5) and lux[22] == pytest.approx(0.5)
    assert lux[12] > 80 and lux[12] > lux[9] > lux[7]
    assert max(lux, key=lux.get) in (11, 12, 13)


def test_room_temperature_drifts_with_the_diurnal_curve():
    w = make(SENSOR, temperature=20, diurnal=3, drift=0, hour=0)
    temps = []
    for _ in range(96):  # two days in half hours
        w.skip(1800)
        temps.append(w.temperature)
    day = temps[48:]  # the second day, settled; day[i] is at (i + 1) / 2 hours
    assert max(day) - min(day) > 2.5
    assert 14 <= (day.index(max(day)) + 1) / 2 <= 20  # warmest in the afternoon
    assert all(15 < t < 25 for t in temps)


def test_battery_drains_and_its_voltage_follows_the_cell_curve():
    w = make(SENSOR, battery=80, drain=24)
    mv80 = w.value("battery_mv")
    w.skip(3600)
    assert w.battery == pytest.approx(79)
    w.set(battery=10)
    assert w.battery == 10 and w.value("battery_mv") < mv80
    w.set(battery=100)
    assert 4150 < w.value("battery_mv") < 4200


def test_pir_and_door_events_come_from_the_world_and_overrides_force_them():
    w = make(SENSOR, motion_rate=60, contact_rate=30, hour=12)
    seen = set()
    for _ in range(600):
        w.skip(9)
        seen.add((w.pin_read(27), w.pin_read(26, 1)))  # PIR high on motion; reed low = closed
    assert {(1, 1), (0, 0)} <= seen
    w.set(motion=True, contact=True)
    assert w.pin_read(27) == 1 and w.pin_read(26, 1) == 0
    assert w.pin_read(13) == 0 and w.pin_read(13, 1) == 1  # nothing wired: its pull


def test_button_presses_with_contact_bounce():
    w = make(PLUG)
    assert w.pin_read(BUTTON, 1) == 1
    w.set(button=1)  # the count went up by one: one press
    levels = []
    for _ in range(60):
        advance(w, 5)
        levels.append(w.pin_read(BUTTON, 1))
    assert levels[:3] == [1, 1, 1]  # starts 20 ms later
    assert levels[8:25] == [0] * 17  # held 120 ms
    assert levels[-10:] == [1] * 10
    w.press(2, hold_ms=50)
    lows = 0
    for _ in range(100):
        advance(w, 5)
        lows += w.pin_read(BUTTON, 1) == 0
    assert 16 <= lows <= 24  # two presses of ~50 ms


# -- the plug's load, the mains, the relay -----------------------------------------------


def test_relay_takes_its_time_and_the_load_draws_only_when_closed():
    w = make(PLUG, load="constant", load_w=100, relay_ms=10)
    w.pin_write(RELAY, 1)
    advance(w, 6)
    assert not w.relay_closed and w.value("power") == 0
    advance(w, 5)
    assert w.relay_closed
    advance(w, 1000)
    assert w.value("power") == pytest.approx(100 * (w.mains_v / 230) ** 2)
    w.pin_write(RELAY, 0)
    advance(w, 11)
    assert not w.relay_closed
    advance(w, 1000)
    assert w.value("power") == 0


def test_energy_is_split_at_the_moment_the_contacts_move():
    w = make(PLUG, load="constant", load_w=1000, mains=230, relay_ms=10)
    w.pin_write(RELAY, 1)
    advance(w, 1010)  # closed after 10 ms: 1 s of load
    assert w.energy_j == pytest.approx(1000 * (w.mains_v / 230) ** 2, rel=0.02)


def test_kettle_boils_about_three_minutes_then_switches_off():
    w = plug(load="kettle")
    powers = []
    for _ in range(200):
        w.skip(1)
        powers.append(w.power_w)
    assert 2000 < powers[0] < 2400 and 2000 < powers[170] < 2400
    assert powers[185:] == [0] * 15
    assert 3 * 2000 * 180 / 3600 / 60 < w.energy_wh < 2400 * 180 / 3600 * 1.05
    w.set(load_on=False)
    w.set(load_on=True)  # switched on again: it boils again
    w.skip(1)
    assert w.power_w > 2000


def test_fridge_compressor_cycles_with_an_inrush():
    w = plug(load="fridge")
    w.skip(1)
    inrush = w.power_w
    w.skip(60)
    running = w.power_w
    w.skip(1000)
    idle = w.power_w
    w.skip(2700 - 1061 + 1)
    assert inrush > 300 and 80 < running < 100 and idle == 1.5 and w.power_w > 300


def test_television_standby_and_on():
    w = plug(load="tv", load_on=False)
    w.skip(10)
    assert w.power_w == 0.5
    w.set(load_on=True)
    powers = []
    for _ in range(300):
        w.skip(1)
        powers.append(w.power_w)
    assert 80 < sum(powers) / len(powers) < 140 and max(powers) - min(powers) > 5
    assert w.current_a < w.power_w / w.mains_v / 0.85  # power factor 0.9


def test_mains_has_noise_and_a_blackout_stops_the_load():
    w = plug(load="constant", load_w=500)
    volts = []
    for _ in range(100):
        w.skip(60)
        volts.append(w.mains_v)
    assert all(220 < v < 240 for v in volts) and max(volts) - min(volts) > 1
    w.set(mains=0)
    w.skip(1)
    assert w.power_w == 0 and w.current_a == 0


def test_a_heater_warms_the_room():
    w = plug(load="heater", load_w=2000, temperature=18, diurnal=0, drift=0)
    w.skip(3600)
    assert w.temperature > 22


# -- the air conditioner --------------------------------------------------------------------


def test_ir_frames_drive_the_air_conditioner():
    assert C.decode_ir([9000, 4500, 560]) is None
    assert C.ac_command(0x12345678) is None  # another remote's code
    w = make(CLIMATE, temperature=27, diurnal=0, drift=0)
    w.ir_send(4, ac_pulses(1, 2, 3, 22))
    assert w.ac == C.AcState(1, 2, 3, 22.0)
    rh = w.value("humidity")
    w.skip(3600)
    assert abs(w.temperature - 22) < 0.3 and w.value("humidity") < rh  # cooled and dried
    w.ir_send(4, ac_pulses(0, 0, 3, 22))
    w.skip(4 * 3600)
    assert w.ac.power == 0 and w.temperature > 26
    w.ir_send(4, ac_pulses(1, 1, 0, 30))  # heat
    w.skip(3600)
    assert 28 < w.temperature <= 30


# -- the chips -------------------------------------------------------------------------------


def test_crc8_of_the_sensirion_datasheet():
    assert C.crc8(b"\xbe\xef") == 0x92


def nack(f) -> int:
    with pytest.raises(OSError) as e:
        f()
    return e.value.errno


def test_sht3x_single_shot_bytes_timing_and_crc():
    w = make(SENSOR, temperature=23.4, humidity=51, diurnal=0, drift=0)
    assert w.i2c("scan") == [0x44]
    w.i2c("writeto", 0x44, b"\x24\x00")
    advance(w, 10)
    assert nack(lambda: w.i2c("readfrom", 0x44, 6)) == errno.ENODEV  # converting
    advance(w, 5)
    d = w.i2c("readfrom", 0x44, 6)
    assert C.crc8(d[0:2]) == d[2] and C.crc8(d[3:5]) == d[5]
    t = -45 + 175 * (d[0] << 8 | d[1]) / 65535
    h = 100 * (d[3] << 8 | d[4]) / 65535
    assert abs(t - 23.4) < 0.3 and abs(h - 51) < 3
    assert nack(lambda: w.i2c("readfrom", 0x44, 6)) == errno.ENODEV  # read once
    assert nack(lambda: w.i2c("writeto", 0x45, b"\x24\x00")) == errno.ENODEV  # nobody there
    w.set(i2c_fail=True)
    assert w.i2c("scan") == [] and nack(lambda: w.i2c("writeto", 0x44, b"\x24\x00"))


def test_aht20_calibration_busy_flag_and_values():
    w = make(CLIMATE, temperature=27, humidity=55, diurnal=0, drift=0)
    assert not w.i2c("readfrom", 0x38, 1)[0] & 0x08  # not calibrated yet
    w.i2c("writeto", 0x38, b"\xbe\x08\x00")
    assert w.i2c("readfrom", 0x38, 1)[0] & 0x08
    w.i2c("writeto", 0x38, b"\xac\x33\x00")
    advance(w, 40)
    assert w.i2c("readfrom", 0x38, 7)[0] & 0x80  # busy
    advance(w, 40)
    d = w.i2c("readfrom", 0x38, 7)
    assert not d[0] & 0x80 and C.crc8(d[:6]) == d[6]
    h = (d[1] << 12 | d[2] << 4 | d[3] >> 4) / 2**20 * 100
    t = ((d[3] & 15) << 16 | d[4] << 8 | d[5]) / 2**20 * 200 - 50
    assert abs(t - 27) < 0.5 and abs(h - 55) < 4
    assert w.i2c("readfrom_mem", 0x38, 0x71, 1)[0] & 0x08  # the status register
    assert nack(lambda: w.i2c("readfrom_mem", 0x40, 0, 2)) == errno.ENODEV


def test_dht22_measures_and_fails_like_one():
    cfg = {"devices": [{"name": "t", "driver": "dht22", "pin": 4}], "sim": {}}
    w = make(cfg, temperature=19.3, humidity=62, diurnal=0, drift=0)
    assert w.dht_last(4) == (None, None)
    t, h = w.dht_measure(4)
    assert round(t, 1) == t and abs(t - 19.3) < 1 and abs(h - 62) < 3
    assert w.dht_last(4) == (t, h)
    assert nack(lambda: w.dht_measure(5)) == errno.ETIMEDOUT  # no sensor on that pin
    w.set(dht_fail=True)
    assert nack(lambda: w.dht_measure(4)) == errno.ETIMEDOUT


@pytest.mark.parametrize("model", ["hlw8012", "bl0937"])
def test_metering_chip_pulses_follow_the_datasheet(model):
    cfg = json.loads(json.dumps(PLUG))
    cfg["devices"][2]["model"] = model
    w = plug(load="constant", load_w=1000)
    w = W.World(cfg, None, seed=1, clock=W.ManualClock())
    w.set(load="constant", load_w=1000, mains=230)
    w.pin_write(RELAY, 1)
    advance(w, 20)
    cur_level = 1 if model == "hlw8012" else 0  # SEL level that selects current
    w.pin_write(SEL, cur_level)
    n0, q0, e0, c0 = w.pulse_count(CF), w.charge_as, w.energy_j, w.pulse_count(CF1)
    advance(w, 100_000)
    shunt, divider = 0.001, 2351
    if model == "hlw8012":
        fosc, vref = 3.579e6, 2.43
        per_j = 48 * fosc / (128 * vref**2) * shunt / divider
        per_as = 24 * fosc / (512 * vref) * shunt
        per_vs = 2 * fosc / (512 * vref) / divider
    else:
        vref = 1.218
        per_j = 1721506 / vref**2 * shunt / divider
        per_as = 94638 / vref * shunt
        per_vs = 15397 / vref / divider
    assert w.pulse_count(CF) - n0 == pytest.approx((w.energy_j - e0) * per_j, abs=1)
    assert w.pulse_count(CF1) - c0 == pytest.approx((w.charge_as - q0) * per_as, abs=1)
    w.pin_write(SEL, 1 - cur_level)
    c1, vs1 = w.pulse_count(CF1), w.volt_s
    advance(w, 10_000)
    assert w.pulse_count(CF1) - c1 == pytest.approx((w.volt_s - vs1) * per_vs, abs=1)
    assert 30 < (w.pulse_count(CF) - n0) / 100 < 1000  # tens to hundreds of Hz at 1 kW


def test_node_outputs_float_and_counters_restart_when_its_chip_goes_down():
    w = plug(load="constant", load_w=1000)
    w.pin_write(LED, 0)
    advance(w, 10_000)
    assert w.pulse_count(CF) > 0 and w.outputs == {"relay": 1, "led": 0}
    w.mcu_reset()
    assert w.outputs == {} and w.relay_commanded is False
    advance(w, 20)
    assert not w.relay_closed and w.value("power") == 0
    energy = w.energy_j
    advance(w, 60_000)
    assert w.energy_j == energy  # nothing flows while the node is down
    w.mcu_seen()  # it boots: a PCNT unit starts from 0
    assert w.pulse_count(CF) == 0


# -- world.json ------------------------------------------------------------------------------


def test_world_json_overrides_are_polled_by_mtime(tmp_path):
    logs: list[str] = []
    w = W.World(SENSOR, tmp_path, seed=1, clock=W.ManualClock(), log=logs.append)
    assert logs == ["world: no world.json, the config's sim section applies"]
    advance(w, 2000)
    assert len(logs) == 1
    (tmp_path / "world.json").write_text('{"motion": true, "temperature": 25.5}')
    advance(w, 100)
    assert w.pin_read(27) == 0  # not looked at yet: at most every 250 ms
    advance(w, 200)
    assert w.pin_read(27) == 1 and w.value("temperature") == 25.5
    (tmp_path / "world.json").write_text('{"motion": false, "temperature": 25.5}')  # same size
    advance(w, 300)
    assert w.pin_read(27) == 0
    n = len(logs)
    for text in ("{not json", '{"temperature": "hot"}', "[0]", '{"load": 5}', "", "null",
                 '{"a": {}}', '{"temperature": NaN}'):  # fmt: skip
        (tmp_path / "world.json").write_text(text)
        advance(w, 300)
        advance(w, 300)
        assert len(logs) == n + 1 and "ignored" in logs[-1], (text, logs)
        assert w.param("temperature") == 25.5  # the last good overrides stay
        n += 1
    (tmp_path / "world.json").unlink()
    advance(w, 300)
    assert w.param("temperature") == 21.5 and "no world.json" in logs[-1]


def test_hostile_values_do_not_stop_the_world(tmp_path):
    w = make(PLUG, tmp_path)
    w.pin_write(RELAY, 1)
    (tmp_path / "world.json").write_text(
        '{"mains": 0, "button_ms": -5, "button": 1, "load_w": -100, "speed": 1e300,'
        ' "hour": -7, "relay_ms": -1, "drain": 1e9, "load": "plasma"}'
    )
    advance(w, 300)
    advance(w, 1000)
    assert w.param("mains") == 0 and w.power_w == 0 and w.battery == 0
    with pytest.raises(ValueError):
        w.set(temperature=math.inf)


def test_a_button_count_found_at_start_is_a_baseline(tmp_path):
    (tmp_path / "world.json").write_text('{"button": 5}')
    w = make(PLUG, tmp_path)
    for _ in range(100):
        advance(w, 5)
        assert w.pin_read(BUTTON, 1) == 1
    (tmp_path / "world.json").write_text('{"button": 6}')
    advance(w, 300)
    lows = 0
    for _ in range(100):
        advance(w, 5)
        lows += w.pin_read(BUTTON, 1) == 0
    assert lows > 15


# -- the server ------------------------------------------------------------------------------


@pytest.fixture
def served():
    world = plug(load="constant", load_w=1000)
    with W.WorldServer(world) as srv:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)

        def ask(*req):
            s.sendto(cbor.dumps(list(req)), srv.address)
            return cbor.loads(s.recv(2048))

        yield world, srv, ask
        s.close()


def test_server_answers_the_node_hal_requests(served):
    world, srv, ask = served
    assert ask("value", BUTTON, 1) == [0, 1]  # pulled up, not pressed
    assert ask("value", LED, 0, 0) == [0, None] and world.outputs["led"] == 0
    assert ask("value", LED, 0) == [0, 0]  # an output reads back its level
    assert ask("duty_u16", 18, 0, 32768) == [0, None] and ask("duty_u16", 18, 0) == [0, 32768]
    assert ask("read_u16", 34, 0)[0] == 0
    assert ask("readfrom", 0, 0, 0x44, 6) == [errno.ENODEV]
    assert ask("scan", 0, 0) == [0, []]
    assert ask("measure", 4, 0) == [errno.ETIMEDOUT]
    world.clock.advance(1000)
    n = ask("value", CF, 0)[1]
    assert n > 0 and n == world.pulse_count(CF)
    world.clock.advance(1000)
    assert ask("ms") == [0, 2020] and world.s == pytest.approx(2.02)
    assert -75 < ask("rssi")[1] < -40
    p = ac_pulses(1, 2, 1, 20)
    assert ask("send", 4, 0, p[::2], p[1::2]) == [0, None] and world.ac == (1, 2, 1, 20.0)
    assert ask("frobnicate", 1, 0) == [errno.EINVAL]
    assert ask("value") == [errno.EINVAL]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(b"\xff\x00garbage", srv.address)
    assert cbor.loads(s.recv(64)) == [errno.EINVAL]
    s.close()
    assert srv.errors >= 4


def test_server_ticks_the_world_while_nobody_asks(tmp_path):
    world = make(SENSOR, tmp_path)
    with W.WorldServer(world):
        (tmp_path / "world.json").write_text('{"temperature": 30}')
        world.clock.advance(300)
        deadline = time.monotonic() + 10
        while world.param("temperature") != 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert world.param("temperature") == 30 and world.ms == 300


def test_server_close_stops_its_thread_and_port():
    srv = W.WorldServer(make(SENSOR))
    port = srv.port
    srv.close()
    assert not srv._thread.is_alive()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))  # free again
    s.close()


# -- the board runner keeps the world --------------------------------------------------------

NODE = """\
# A stand-in for the node runtime: the host HAL against the board runner's world.
import os
import sys
import time

sys.path.append("lib")
from node.hal import impl as hal

hal.init({}, ".")
if "t1" not in os.listdir("."):  # first boot: close the relay, then reset
    relay = hal.Pin(%(relay)d, hal.Pin.OUT)
    relay.value(1)
    time.sleep_ms(300)
    with open("t1", "w") as f:
        f.write(str(hal.ticks_ms()))
    hal.reset()
with open("t1") as f:
    t1 = int(f.read())
seen = (time.ticks_diff(hal.ticks_ms(), t1) > 0, hal.PulseCounter(%(cf)d).value())
with open("done", "w") as f:
    f.write("%%s %%s" %% seen)
while True:
    time.sleep_ms(100)
"""


def test_board_keeps_its_world_while_the_node_restarts(tmp_path):
    path = tmp_path / "plug"
    B.make_board(path, "plug", "p", gateway=("127.0.0.1", 9), overrides={"mdns": "off"})
    cfg = json.loads((path / "config.json").read_text())
    cfg["sim"].update(load="constant", load_w=1000, speed=10)
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "main.py").write_text(NODE % {"relay": RELAY, "cf": CF})
    b = B.Board(path, seed=1)
    try:
        b.start()
        deadline = time.monotonic() + 30
        while not (path / "done").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (path / "done").read_text() == "True 0", b.console()
        world = b.world
        assert b.exits == [B.EXIT_RESET] and b.boots == 2
        assert (path / ".world").read_text() == f"127.0.0.1 {b.server.port}\n"
        assert world.energy_wh > 0  # it flowed while the first boot held the relay
        assert not world.relay_commanded  # the reset let go of it, and nobody closed it
        energy = world.energy_wh
        b.stop()
        assert b.server is None and b.world is world
        b.start()  # the same world, served again
        deadline = time.monotonic() + 30
        while b.server.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.world is world and world.energy_wh >= energy
        assert (path / ".world").read_text() == f"127.0.0.1 {b.server.port}\n"
    finally:
        b.stop()
    assert os.path.exists(path / "console.log")
