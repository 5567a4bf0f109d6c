# No world to ask (tests/test_node_drivers.py: no BOARD/.world, a dead server, or one that
# never answers): the node's hardware is unplugged. Sensor reads raise OSError(ENODEV)
# after one log line (the test counts it), outputs drive nothing, a pulse counter stands
# still, hal.ticks_ms() runs on the local clock; every device type's drivers construct, and
# their reads fail the way the runtime counts as faults. The script runs to its end.
# ruff: noqa: UP031
import json
import sys
import time

from drv_kit import Node, board, check, done, driver
from node.hal import host_io
from node.hal import impl as hal

host_io.init({}, board())


def enodev(f):
    try:
        f()
    except OSError as e:
        return e.args[0] == 19
    return False


check("pin_read_raises", enodev(lambda: hal.Pin(27, hal.Pin.IN).value()))
check("adc_read_raises", enodev(lambda: hal.ADC(hal.Pin(34)).read_u16()))
i2c = hal.I2C(0, scl=hal.Pin(22), sda=hal.Pin(21))
check("i2c_read_raises", enodev(lambda: i2c.readfrom(0x44, 6)))
check("i2c_scan_raises", enodev(i2c.scan))
check("dht_raises", enodev(hal.DHT22(hal.Pin(4)).measure))
out = hal.Pin(12, hal.Pin.OUT, value=1)
out.value(0)
hal.PWM(hal.Pin(18), freq=1000, duty_u16=1000).duty_u16(2000)
hal.IR(hal.Pin(4)).send([9000, 4500] + [560] * 65)
i2c.writeto(0x44, b"\x24\x00")
check("outputs_drive_nothing_and_do_not_fail", True)
check("pulse_counter_stands_still", hal.PulseCounter(5).value() == 0)
check("rssi_of_no_signal", hal.rssi() == -127, hal.rssi())
t0 = hal.ticks_ms()
time.sleep_ms(20)
check("clock_runs_on_locally", time.ticks_diff(hal.ticks_ms(), t0) > 0)

types = next(p for p in sys.path if p.endswith("firmware")) + "/types/"
node = Node()
faults = reads = 0
for kind in ("sensor", "plug", "light", "climate"):
    with open(types + kind + ".json") as f:
        devices = json.load(f)["devices"]
    for dev in devices:
        node.devs[dev["name"]] = driver(dev)
    for dev in devices:
        reads += 1
        try:
            node.devs[dev["name"]].read()
        except OSError as e:
            faults += e.args[0] == 19
    m = node.devs.get("meter")
    if m is not None:
        m.load(node.store)
        m.poll(node)
        check("meter_polls_without_a_world", m.read()[2] == 0, m.read())
print("%d driver reads, %d faults" % (reads, faults))
check("sensor_reads_are_faults", faults == 6, faults)  # sht3x pir contact ldr battery aht20
check("the_script_runs_on", True)
done()
