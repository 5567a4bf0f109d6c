# The sensor node's inputs (PIR, reed contact, LDR, battery) against the world, and the
# world itself as the node sees it: world.json overrides (by mtime, same-second rewrites
# too), garbage and a missing file ignored with one log line, the speed factor and
# hal.ticks_ms(), determinism by seed.
# ruff: noqa: UP031
import os

from drv_kit import Clock, board, check, done, setup, world_json

CFG = {
    "devices": [
        {"name": "pir", "driver": "pir", "pin": 27, "caps": {"motion": 3}},
        {"name": "door", "driver": "contact", "pin": 26, "caps": {"contact": 4}},
        {"name": "ldr", "driver": "ldr", "pin": 34, "caps": {"illuminance": 5}},
        {"name": "bat", "driver": "battery", "pin": 35, "caps": {"battery": 6}},
    ],
    "sim": {"temperature": 21, "hour": 12, "motion_rate": 0, "contact_rate": 0, "battery": 80},
}


def inputs():
    clk = Clock()
    w, node = setup(CFG, clk)
    pir, door, ldr, bat = (node.devs[k] for k in ("pir", "door", "ldr", "bat"))
    check("pir_quiet", pir.read() == {3: False})
    check("door_closed", door.read() == {4: True})
    for hour in (12, 9, 17):
        w.set(hour=hour)
        w.skip(1)
        lux = w.value("illuminance")
        r = ldr.read()[5]
        print("ldr at %d h: %d lx, world %.1f lx" % (hour, r, lux))
        check("ldr_%dh" % hour, abs(r - lux) <= 0.06 * lux + 2, (r, lux))
    w.set(hour=2)
    w.skip(1)
    check("ldr_night_dark", ldr.read()[5] <= 2, ldr.read())
    for pc in (80, 45, 10):
        w.set(battery=pc)
        r = bat.read()[6]
        print("battery %d%%: read %d%% (%d mV)" % (pc, r, w.value("battery_mv")))
        check("battery_%d" % pc, abs(r - pc) <= 3, r)
    w.set(battery=80, drain=24)  # % a day
    w.skip(3600)
    check("battery_drains", 78 < w.battery < 80, w.battery)
    # motion and door events from the world's own processes drive the drivers' polls
    w.set(motion_rate=60, contact_rate=30, hour=12)
    seen = {}
    for _ in range(600):
        clk.adv(1000)
        w.skip(9)
        pir.poll(node, 0)
        door.poll(node, 0)
        seen[(pir.v, door.v)] = 1
    print("states seen over 90 simulated minutes: %s, %d changes" % (sorted(seen), node.changes))
    check("pir_and_door_events", (True, True) in seen and (False, False) in seen, seen)


def overrides():
    clk = Clock()
    w, node = setup(CFG, clk)
    pir, door = node.devs["pir"], node.devs["door"]
    clk.adv(300)
    w.tick()
    check("missing_world_json_one_log", len(w.logs) == 1 and "no world.json" in w.logs[0], w.logs)
    clk.run(2000, 50, lambda t: w.tick())
    check("missing_world_json_still_one_log", len(w.logs) == 1, w.logs)
    world_json('{"motion": true, "contact": false, "temperature": 25.5}')
    clk.adv(100)
    check("polled_at_most_every_250ms", pir.read() == {3: False})
    clk.adv(200)
    check("override_motion", pir.read() == {3: True})
    check("override_contact", door.read() == {4: False})
    check("override_temperature", abs(w.value("temperature") - 25.5) < 0.01, w.temperature)
    world_json('{"motion": false, "contact": true, "temperature": 25.5}')  # same second, size
    clk.adv(300)
    check("same_second_rewrite_seen", pir.read() == {3: False} and door.read() == {4: True})
    n = len(w.logs)
    for text in (
        "{not json",
        '{"temperature": "hot"}',
        "[0]",
        '{"load": 5}',
        "",
        "null",
        '{"a": {}}',
    ):
        world_json(text)
        clk.run(1000, 50, lambda t: w.tick())
        check("garbage_ignored_%r" % text, len(w.logs) == n + 1 and "ignored" in w.logs[-1], w.logs)
        check(
            "garbage_keeps_last_good_%r" % text,
            door.read() == {4: True} and w.param("temperature") == 25.5,
        )
        n = len(w.logs)
    world_json('{"mains": 0, "button_ms": -5, "button": 1, "load_w": -100, "speed": -1}')
    clk.run(1000, 50, lambda t: w.tick())
    check("hostile_values_survived", w.param("mains") == 0 and w.power_w == 0)
    os.remove(board() + "/world.json")
    clk.run(1000, 50, lambda t: w.tick())
    check(
        "removed_world_json_back_to_config", w.param("temperature") == 21 and len(w.logs) == n + 1
    )


def clock_and_seed():
    clk = Clock()
    w, _ = setup({"devices": [], "sim": {"speed": 60}}, clk)
    clk.adv(1000)
    w.tick()
    check("speed_factor", w.s == 60 and w.ms == 1000, (w.s, w.ms))
    from node.hal import impl as hal

    check("hal_ticks_ms_is_simulated_time", hal.ticks_ms() == 60000, hal.ticks_ms())
    runs = []
    for seed in (3, 3, 4):
        clk = Clock()
        w, _ = setup({"devices": [], "sim": {"speed": 600}}, clk, seed=seed)
        vals = []
        for _ in range(20):
            clk.adv(1000)
            vals.append((w.value("temperature"), w.value("humidity"), w.value("illuminance")))
        runs.append(vals)
    check("deterministic_for_a_seed", runs[0] == runs[1])
    check("seed_changes_the_world", runs[0] != runs[2])
    t = [v[0] for v in runs[0]]
    check("temperature_moves_but_plausibly", 0 < max(t) - min(t) < 3, (min(t), max(t)))


inputs()
overrides()
clock_and_seed()
done()
