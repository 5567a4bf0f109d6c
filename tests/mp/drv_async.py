# The drivers' background tasks (run(node)) under asyncio on the wall clock, the way the
# runtime starts them: button and relay with restore, metering, a dimmer fade, PIR
# polling, the climate controller's restore and IR. Outcomes are checked, not durations.
# ruff: noqa: UP031
import asyncio

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


async def main():
    store = Store()
    store.put("r.relay", 1)
    store.put("e.meter", "1234 3000000")
    store.put("c.ac", 2000 * 100 + 2 * 10 + 1)  # 20.00 degC, cool, low fan
    w, node = setup(CFG, store=store)
    d = node.devs
    tasks = [
        asyncio.create_task(d[k].run(node))
        for k in ("relay", "button", "meter", "lamp", "pir", "ac")
    ]
    await asyncio.sleep_ms(100)
    check("relay_restored_on", d["relay"].read() == {1: True} and w.rq)
    check(
        "climate_restored_and_sent", d["ac"].read() == {9: 2000} and w.ac == (1, 2, 1, 20.0), w.ac
    )
    await asyncio.sleep_ms(2500)
    r = d["meter"].read()
    print("meter task read %s" % r)
    check("meter_task_restored_energy", r.get(5) in (1234, 1235), r)  # + 3000 J + 500 W * ~2.5 s
    check("meter_task_measured_power", 4500 < r.get(3, 0) < 5500, r)
    d["lamp"].set(6, 200)
    world_json('{"motion": true, "button": 1, "button_ms": 300}')
    poll(w)
    await asyncio.sleep_ms(1500)
    check(
        "dimmer_fade_done_in_its_task",
        d["lamp"].f is None and abs(w.out["warm"] - (200 / 255) ** 2) < 0.01,
    )
    check("button_task_event", node.events == [(2, 1)], node.events)
    check(
        "button_task_toggled_relay_off",
        d["relay"].read() == {1: False} and store.get("r.relay") == 0,
    )
    check("pir_task_saw_motion", node.changes >= 2 and d["pir"].read() == {7: True}, node.changes)
    check(
        "climate_task_read_sensor", d["ac"].t is not None and abs(d["ac"].t - 2400) < 50, d["ac"].t
    )
    for t in tasks:
        t.cancel()
    await asyncio.sleep_ms(10)


asyncio.run(main())
done()
