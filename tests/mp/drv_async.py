# The drivers' start(node) and poll(node, now) -> ms on the wall clock, scheduled the way
# the runtime's loop schedules them: button and relay with restore, metering, a dimmer
# fade, PIR polling, the climate controller's restore and IR. Outcomes are checked, not
# durations.
# ruff: noqa: UP031
import time

from drv_kit import Store, check, done, poll, setup, world_json

CFG = {
    "devices": [
        {"name": "relay", "driver": "relay", "pin": 12, "restore": "last", "caps": {"switch": 1}},
        {"name": "button", "driver": "button", "pin": 0, "toggles": "relay", "caps": {"button": 2}},
        {
            "name": "meter",
            "driver": "hlw8012",
            "cf": 5,
            "cf1": 14,
            "sel": 4,
            "caps": {"power": 3, "voltage": 4, "energy": 5},
        },
        {"name": "lamp", "driver": "dimmer", "warm": 18, "fade_ms": 300, "caps": {"brightness": 6}},
        {"name": "pir", "driver": "pir", "pin": 27, "caps": {"motion": 7}},
        {"name": "air", "driver": "sht3x", "caps": {"temperature": 8}},
        {
            "name": "ac",
            "driver": "climate",
            "ir": 4,
            "sensor": "air",
            "period_s": 1,
            "caps": {"setpoint": 9},
        },
    ],
    "sim": {"load": "constant", "load_w": 500, "motion_rate": 0, "temperature": 24, "speed": 1},
}


def run_for(timers, node, ms):
    """The runtime's scheduling: each driver polled when the delay it asked for is up."""
    end = time.ticks_add(time.ticks_ms(), ms)
    while time.ticks_diff(end, time.ticks_ms()) > 0:
        now = time.ticks_ms()
        for t in timers:
            if time.ticks_diff(now, t[1]) >= 0:
                t[1] = time.ticks_add(now, t[0].poll(node, now))
        time.sleep_ms(2)


def main():
    store = Store()
    store.put("r.relay", 1)
    store.put("e.meter", "1234 3000000")
    store.put("c.ac", 2000 * 100 + 2 * 10 + 1)  # 20.00 degC, cool, low fan
    w, node = setup(CFG, store=store)
    d = node.devs
    for k in ("relay", "meter", "ac"):
        d[k].start(node)
    now = time.ticks_ms()
    timers = [[d[k], now] for k in ("button", "meter", "lamp", "pir", "ac")]
    run_for(timers, node, 100)
    check("relay_restored_on", d["relay"].read() == {1: True} and w.relay_commanded)
    ac = w.ac
    check("climate_restored_and_sent", d["ac"].read() == {9: 2000} and ac == [1, 2, 1, 20.0], ac)
    run_for(timers, node, 2500)
    r = d["meter"].read()
    print("meter read %s" % r)
    check("meter_restored_energy", r.get(5) in (1234, 1235), r)  # + 3000 J + 500 W * ~2.5 s
    check("meter_measured_power", 4500 < r.get(3, 0) < 5500, r)
    d["lamp"].set(6, 200)
    world_json('{"motion": true, "button": 1, "button_ms": 300}')
    poll(w)
    run_for(timers, node, 1500)
    check(
        "dimmer_fade_done_in_its_polls",
        d["lamp"].f is None and abs(w.outputs["warm"] - (200 / 255) ** 2) < 0.01,
    )
    check("button_event", node.events == [(2, 1)], node.events)
    check(
        "button_toggled_relay_off",
        d["relay"].read() == {1: False} and store.get("r.relay") == 0,
    )
    check("pir_saw_motion", node.changes >= 2 and d["pir"].read() == {7: True}, node.changes)
    check("climate_read_sensor", d["ac"].t is not None and abs(d["ac"].t - 2400) < 50, d["ac"].t)


main()
done()
