# A plug's node that goes down and comes back, against a world that goes on. Run twice by
# tests/test_node_drivers.py (test_the_world_outlives_the_node) on the same world server,
# with the config in BOARD/restart-config.json:
#   drv_restart.py BOARD boot     heats the room for a simulated hour and meters it; writes
#                                 what the flash keeps and what it saw to BOARD/restart.json
#   drv_restart.py BOARD reboot   a new node process: the world went on, the relay let go
#                                 while the chip was down, the energy meters on from what
#                                 the store kept
# The test's manual clock; speed 60 (a wall minute is a simulated hour). Data goes through
# files: the Unix port cannot take a long command-line argument.
# ruff: noqa: UP031
import json
import sys
import time

from drv_kit import Clock, Node, Store, World, board, check, done, driver
from node.hal import host_io
from node.hal import impl as hal

with open(board() + "/restart-config.json") as f:
    cfg = json.load(f)
host_io.init(cfg, board())
w = World()
clk = Clock()
store = Store()
node = Node(store)


def boot():
    """What the runtime does at boot: the drivers, then each one's start()."""
    for dev in cfg["devices"]:
        node.devs[dev["name"]] = driver(dev)
    relay, meter = node.devs["relay"], node.devs["meter"]
    relay.start(node)  # restores the relay from the store
    meter.start(node)
    return relay, meter


def metered(meter):
    return meter.wh + meter.j / 3600


if sys.argv[2] == "boot":
    check("a_new_world", w.s == 0 and w.energy_j == 0, (w.s, w.energy_j))
    relay, meter = boot()
    check("relay_off_on_a_new_store", relay.read() == {1: False} and not w.relay_commanded)
    relay.set(1, True)
    clk.run(60000, 500, lambda t: meter.poll(node))
    truth = w.energy_wh
    print(
        "boot: metered %.1f Wh, true %.1f Wh, room %.2f degC"
        % (metered(meter), truth, w.temperature)
    )
    check("metered_energy_is_true_energy", abs(metered(meter) - truth) < 2, (metered(meter), truth))
    check("the_heater_warmed_the_room", w.temperature > 22.5, w.temperature)
    seen = {"energy_wh": truth, "s": w.s, "ticks": hal.ticks_ms(), "temperature": w.temperature}
    for k in ("e.meter", "r.relay"):
        seen[k] = store.get(k)
    with open(board() + "/restart.json", "w") as f:
        json.dump(seen, f)
else:
    with open(board() + "/restart.json") as f:
        before = json.load(f)
    for k in ("e.meter", "r.relay"):  # the flash kept them
        store.put(k, before[k])
    check("the_world_went_on", w.s >= before["s"] + 600, (w.s, before["s"]))
    down = time.ticks_diff(hal.ticks_ms(), before["ticks"])
    check("hal_ticks_went_on_with_it", down >= 600000, down)
    check("true_energy_kept", 0 <= w.energy_wh - before["energy_wh"] < 0.2, w.energy_wh)
    t = w.temperature
    check("the_room_cools_but_was_not_reset", 22 < t < before["temperature"], t)
    check("the_relay_let_go_while_down", not w.relay_closed and w.power_w == 0)
    check("pulse_counter_starts_from_zero", hal.PulseCounter(5).value() == 0)
    relay, meter = boot()
    saved = metered(meter)
    check("store_kept_most_energy", 0 <= before["energy_wh"] - saved < 10, saved)
    check("relay_restored_closed", relay.read() == {1: True} and w.relay_commanded)
    clk.run(60000, 500, lambda t: meter.poll(node))
    truth = w.energy_wh
    print("reboot: metered %.1f Wh, true %.1f Wh" % (metered(meter), truth))
    lost = truth - metered(meter)  # what the first boot had not saved yet
    check("meters_on_from_what_was_saved", 0 <= lost < 10, (metered(meter), truth))
    check(
        "only_what_was_not_saved_is_lost",
        abs(lost - (before["energy_wh"] - saved)) < 2,
        (lost, before["energy_wh"] - saved),
    )
done()
