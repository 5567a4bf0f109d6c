# The light's dimmer (fades, warm/cold mix, square-law duty) and the climate controller:
# IR frames that drive the world's air conditioner toward the setpoint, and a relay
# thermostat with hysteresis over a heater. Manual clock throughout.
# ruff: noqa: UP031
from drv_kit import Clock, check, done, setup

LIGHT = {
    "devices": [
        {
            "name": "lamp",
            "driver": "dimmer",
            "warm": 18,
            "cold": 19,
            "fade_ms": 1000,
            "caps": {"switch": 1, "brightness": 2, "colour_temp": 3},
        }
    ],
    "sim": {},
}


def dimmer():
    w, node = setup(LIGHT, Clock())
    d = node.devs["lamp"]
    out = w.outputs  # PWM duty 0..1 by role, as the world last saw it
    check("dimmer_starts_dark", out.get("warm") == 0 and out.get("cold") == 0)
    d.set(3, 2700)
    d.set(1, True)
    t0 = d.f[0]
    d.step(t0 + 500)
    check("dimmer_fade_halfway", 120 <= d.cb <= 135 and d.f is not None, d.cb)
    check("dimmer_reports_target", d.read() == {1: True, 2: 255, 3: 2700}, d.read())
    d.step(t0 + 1000)
    check("dimmer_fade_reaches_target", d.cb == 255 and d.f is None, d.cb)
    out = w.outputs
    check("dimmer_full_warm", out["warm"] == 1 and out["cold"] == 0, out)
    d.set(3, 6500, fade=0)
    out = w.outputs
    check("dimmer_full_cold", out["warm"] == 0 and out["cold"] == 1, out)
    d.set(3, 4600, fade=0)
    out = w.outputs
    check("dimmer_mix_half", abs(out["warm"] - 0.5) < 0.01 and abs(out["cold"] - 0.5) < 0.01, out)
    d.set(3, 9000, fade=0)
    check("dimmer_ct_clamped", d.read()[3] == 6500)
    d.set(2, 128, fade=0)
    out = w.outputs
    total = out["warm"] + out["cold"]
    check("dimmer_square_law", abs(total - (128 / 255) ** 2) < 0.01, total)
    duty = d.w.duty_u16() + d.c.duty_u16()
    check("pwm_duty_reads_back", duty == 128 * 128 * 65535 // 65025, duty)
    d.set(1, False)
    t0 = d.f[0]
    for t in range(0, 1001, 20):
        d.step(t0 + t)
    out = w.outputs
    check("dimmer_fades_off", out["warm"] + out["cold"] == 0 and d.read()[2] == 128)


class Thermometer:  # a sensor device for the climate driver: the room's true temperature
    def __init__(self, w):
        self.w = w
        self.caps = {"temperature": 9}

    def read(self):
        return {9: int(self.w.value("temperature") * 100)}


def climate_ir():
    cfg = {
        "devices": [
            {
                "name": "ac",
                "driver": "climate",
                "ir": 4,
                "sensor": "room",
                "caps": {"setpoint": 1, "hvac_mode": 2, "fan_mode": 3},
            }
        ],
        "sim": {"temperature": 27, "diurnal": 0, "drift": 0},
    }
    w, node = setup(cfg, Clock())
    node.devs["room"] = Thermometer(w)
    c = node.devs["ac"]
    c.st = node.store
    c.set(1, 2200)
    c.set(3, 3)
    c.set(2, 2)
    ac = w.ac
    print("AC state from the IR frame: %s" % (ac,))
    check("ir_frame_decoded_by_the_ac", ac == [1, 2, 3, 22.0], ac)
    check("climate_settings_stored", node.store.get("c.ac") == 220023, node.store.d)
    w.skip(3600)
    t = w.temperature
    print("room after an hour of cooling to 22: %.2f degC" % t)
    check("ac_cools_room_to_setpoint", abs(t - 22) < 0.3, t)
    c.set(1, 2450)
    w.skip(3600)
    t = w.temperature
    check("ac_follows_setpoint_without_overcooling", 22 < t <= 24.6, t)
    c.set(2, 0)
    check("ac_off_by_ir", w.ac[0] == 0)
    w.skip(4 * 3600)
    t = w.temperature
    check("room_warms_back_when_off", t > 26, t)
    c.control(node)
    check("climate_reads_sensor", c.t == int(t * 100), (c.t, t))


def climate_relay():
    cfg = {
        "devices": [
            {"name": "heater", "driver": "relay", "pin": 12, "caps": {"switch": 5}},
            {
                "name": "stat",
                "driver": "climate",
                "relay": "heater",
                "sensor": "room",
                "hysteresis": 30,
                "caps": {"setpoint": 1, "hvac_mode": 2, "fan_mode": 3},
            },
        ],
        "sim": {"temperature": 16, "diurnal": 0, "drift": 0, "load": "heater", "load_w": 2000},
    }
    clk = Clock()
    w, node = setup(cfg, clk)
    node.devs["room"] = Thermometer(w)
    c, h = node.devs["stat"], node.devs["heater"]
    c.set(1, 2100)
    c.set(2, 1)
    lo, hi = 99, -99
    switches = 0
    last = False
    for i in range(4 * 360):  # 4 h in 10 s steps
        c.control(node)
        clk.adv(20)  # the relay closes (10 ms)
        w.skip(10)
        if i >= 3 * 360:  # the last hour
            t = w.temperature
            lo, hi = min(lo, t), max(hi, t)
        on = h.read()[5]
        switches += on != last
        last = on
    print("thermostat: %.2f..%.2f degC in the last hour, %d switchings" % (lo, hi, switches))
    check("thermostat_reaches_band", 20.5 < lo and hi < 21.5, (lo, hi))
    check("thermostat_cycles_with_hysteresis", 2 < switches < 200, switches)
    c.set(2, 0)
    c.control(node)
    check("thermostat_off_mode_opens_relay", h.read()[5] is False)


dimmer()
climate_ir()
climate_relay()
done()
