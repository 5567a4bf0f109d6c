# The plug: relay (switching delay, status LED), HLW8012 metering against the world's
# load (power, voltage, current, energy over accelerated time, persistence, over-power
# cut-off with no gateway) and the local button. All on the world's manual clock.
# ruff: noqa: UP031
from drv_kit import Clock, Store, check, done, driver, poll, setup, world_json

RELAY = {"name": "relay", "driver": "relay", "pin": 12, "led": 13, "caps": {"switch": 1}}
BUTTON = {"name": "button", "driver": "button", "pin": 0, "toggles": "relay", "caps": {"button": 6}}
METER = {
    "name": "meter",
    "driver": "hlw8012",
    "cf": 5,
    "cf1": 14,
    "sel": 4,
    "relay": "relay",
    "cutoff_w": 3000,
    "save_wh": 10,
    "caps": {"power": 2, "voltage": 3, "current": 4, "energy": 5},
}


def cfg(sim, model="hlw8012"):
    m = dict(METER)
    m["model"] = model
    return {"devices": [RELAY, BUTTON, m], "sim": sim}


def near(a, b, rel):
    return abs(a - b) <= rel * abs(b) + 1


def relay_delay():
    clk = Clock()
    w, node = setup(cfg({"load": "constant"}), clk)
    r = node.devs["relay"]
    r.set(1, True)
    check("relay_reports_commanded_state", r.read() == {1: True})
    check("relay_led_lit_low", w.outputs.get("led") == 0)
    clk.adv(6)
    w.tick()
    check("relay_contacts_still_open_at_6ms", not w.relay_closed)
    clk.adv(5)
    w.tick()
    check("relay_contacts_closed_after_10ms", w.relay_closed)
    r.set(1, False)
    clk.adv(11)
    w.tick()
    check("relay_contacts_open_again", not w.relay_closed and w.outputs.get("led") == 1)


def measure(sim, model, secs):
    """Run the meter; the truth is what the world delivered over the meter's last windows."""
    clk = Clock()
    w, node = setup(cfg(sim, model), clk)
    node.devs["relay"].set(1, True)
    m = node.devs["meter"]
    ref = [0, 0, 0]  # true power, current, voltage over the last windows
    at = [0, 0, 0, 0, 0]  # power window start (ms, J); CF1 window start (s, A*s, V*s)

    def tick(t):
        settle, tp = m.settle, m.tp
        m.poll(node)
        if m.tp != tp:
            e = w.energy_j
            ref[0] = (e - at[1]) * 1000 / (m.tp - at[0])
            at[0], at[1] = m.tp, e
        if m.settle != settle:
            if not m.settle:
                at[2:] = [w.s, w.charge_as, w.volt_s]
            elif m.cur:  # it has just measured voltage
                ref[2] = (w.volt_s - at[4]) / (w.s - at[2])
            else:
                ref[1] = (w.charge_as - at[3]) / (w.s - at[2])

    clk.run(secs * 1000, 250, tick)
    return w, m, ref[0], ref[2], ref[1]


def metering():
    for model in ("hlw8012", "bl0937"):
        for load in ("constant", "tv", "kettle"):
            w, m, p, v, i = measure({"load": load, "load_w": 1000}, model, 30)
            r = m.read()
            print("%s %s: read %s, world P %.1f W V %.1f V I %.3f A" % (model, load, r, p, v, i))
            check("%s_%s_power" % (model, load), near(r[2], p * 10, 0.03), (r[2], p))
            check("%s_%s_voltage" % (model, load), near(r[3], v * 10, 0.02), (r[3], v))
            check("%s_%s_current" % (model, load), near(r[4], i * 1000, 0.03), (r[4], i))
    # the kettle's programme: boils ~3 min, then its thermostat opens
    w, m, p, v, i = measure({"load": "kettle"}, "hlw8012", 200)
    check("kettle_off_after_its_cycle", m.read()[2] < 10 and w.power_w == 0, m.read())


def energy():
    clk = Clock()
    store = Store()
    sim = {"load": "constant", "load_w": 1000, "speed": 60}
    w, node = setup(cfg(sim), clk, store=store)
    node.devs["relay"].set(1, True)
    m = node.devs["meter"]
    check("energy_unknown_before_store", 5 not in m.read())
    m.load(store)
    check("energy_zero_on_new_store", m.read()[5] == 0)
    clk.run(60 * 1000, 500, lambda t: m.poll(node))  # one wall minute = one simulated hour
    e = m.read()[5]
    truth = w.energy_wh
    print(
        "energy %d Wh, world %.2f Wh in %.0f s simulated, %d store writes"
        % (e, truth, w.s, store.puts)
    )
    check("energy_integrates_over_accelerated_time", e in (int(truth), int(truth) - 1), (e, truth))
    check("energy_hour_of_1kw_near_1kwh", 950 < e < 1050, e)
    check("energy_store_writes_bounded", 0 < store.puts <= 1 + e // 10, store.puts)
    saved = int(store.get("e.meter").split()[0])
    check("energy_saved_within_save_wh", 0 <= e - saved <= 10, (e, saved))
    m2 = driver(METER)  # a reboot: the same store, a new driver
    m2.load(store)
    check("energy_restored_from_store", m2.read()[5] == saved, (m2.read(), saved))
    clk.run(6 * 1000, 500, lambda t: m2.poll(node))
    check("energy_counts_on_after_restore", m2.read()[5] > saved, m2.read())


def cutoff():
    clk = Clock()
    w, node = setup(cfg({"load": "kettle"}), clk)
    r, m = node.devs["relay"], node.devs["meter"]
    r.set(1, True)
    clk.run(20000, 250, lambda t: m.poll(node))
    check("no_trip_below_cutoff", r.read()[1] and not node.logs, (r.read(), node.logs))
    world_json('{"load": "constant", "load_w": 3500}')
    poll(w)
    clk.run(8000, 250, lambda t: m.poll(node))
    print("cut-off: %s, log %s" % (r.read(), node.logs))
    check("overpower_opens_relay", r.read()[1] is False and not w.relay_commanded, r.read())
    check("overpower_logged", len(node.logs) == 1 and "over-power" in node.logs[0])
    check("overpower_tells_the_node", node.changes >= 1)
    clk.run(4000, 250, lambda t: m.poll(node))
    check("load_stops_after_cutoff", m.read()[2] == 0 and w.power_w == 0, m.read())


def button():
    clk = Clock()
    w, node = setup(cfg({"load": "none"}), clk)
    b, r = node.devs["button"], node.devs["relay"]
    for text, code in (
        ('{"button": 1}', 1),
        ('{"button": 3}', 2),
        ('{"button": 4, "button_ms": 1500}', 3),
    ):
        node.events = []
        before = r.read()[1]
        world_json(text)
        poll(w)
        clk.run(2500, 5, lambda t: b.poll(node, t))
        print("button %s -> events %s, relay %s" % (text, node.events, r.read()))
        check("button_event_%d" % code, node.events == [(6, code)], node.events)
        check("button_toggles_on_single_only_%d" % code, r.read()[1] == (before != (code == 1)))
    node.events = []
    world_json('{"button": 7, "button_ms": 100}')  # a triple press counts as a double
    poll(w)
    clk.run(2500, 5, lambda t: b.poll(node, t))
    check("button_triple_is_double", node.events == [(6, 2)], node.events)
    node.events = []
    world_json('{"button": 7, "button_ms": 100, "load": "tv"}')  # same count: no press
    poll(w)
    clk.run(2500, 5, lambda t: b.poll(node, t))
    check("button_rewrite_without_new_presses", node.events == [], node.events)
    # the node reboots: the world, the button and its count stay as they are
    b2 = driver(BUTTON)
    node.events = []
    clk.run(2500, 5, lambda t: b2.poll(node, t))
    check("button_quiet_after_node_reboot", node.events == [], node.events)
    # a new world (the board runner started again) with the file in place: a baseline
    _w2, node2 = setup(cfg({}), clk)
    clk.run(2500, 5, lambda t: node2.devs["button"].poll(node2, t))
    check("button_count_at_world_start_is_baseline", node2.events == [], node2.events)


relay_delay()
metering()
energy()
cutoff()
button()
done()
