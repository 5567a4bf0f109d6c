# SHT3x, AHT20 and DHT22 over the world's bus and pin: the bytes on the wire (CRC,
# conversion delays, NACKs), then the drivers' conversions against the world's values.
# ruff: noqa: UP031
from drv_kit import Clock, check, done, poll, setup, world_json
from node.hal import impl as hal


def crc(data):  # CRC-8/NRSC-5 as the datasheets give it, written independently of _util
    c = 0xFF
    for b in data:
        for i in range(8):
            bit = (c >> 7) ^ (b >> (7 - i) & 1)
            c = ((c << 1) & 0xFF) ^ (0x31 if bit else 0)
    return c


CFG = {
    "devices": [
        {"name": "sht", "driver": "sht3x", "caps": {"temperature": 1, "humidity": 2}},
        {"name": "aht", "driver": "aht20", "caps": {"temperature": 3, "humidity": 4}},
        {"name": "dht", "driver": "dht22", "pin": 4, "caps": {"temperature": 5, "humidity": 6}},
    ],
    "sim": {"temperature": 23.4, "humidity": 51, "diurnal": 0, "drift": 0},
}


def nack(f):
    try:
        f()
    except OSError:
        return True
    return False


def wire():
    clk = Clock()
    w, node = setup(CFG, clk)
    from node.drivers._util import crc8

    check("crc8_datasheet_example", crc(b"\xbe\xef") == 0x92 and crc8(b"\xbe\xef", 0, 2) == 0x92)
    i2c = hal.I2C(0, scl=hal.Pin(22), sda=hal.Pin(21))
    check("scan", i2c.scan() == [0x38, 0x44], i2c.scan())
    check("absent_address_nacks", nack(lambda: i2c.writeto(0x45, b"\x24\x00")))
    i2c.writeto(0x44, b"\x24\x00")
    clk.adv(10)
    check("sht_nack_during_conversion", nack(lambda: i2c.readfrom(0x44, 6)))
    clk.adv(5)
    d = i2c.readfrom(0x44, 6)
    check("sht_crc", crc(d[0:2]) == d[2] and crc(d[3:5]) == d[5], d)
    t = -45 + 175 * (d[0] << 8 | d[1]) / 65535
    h = 100 * (d[3] << 8 | d[4]) / 65535
    check("sht_temperature", abs(t - w.temperature) < 0.3, (t, w.temperature))
    check("sht_humidity", abs(h - w.humidity) < 3, (h, w.humidity))
    check("sht_data_read_once", nack(lambda: i2c.readfrom(0x44, 6)))
    check("aht_uncalibrated", not i2c.readfrom(0x38, 1)[0] & 0x08)
    i2c.writeto(0x38, b"\xbe\x08\x00")
    check("aht_calibrated", i2c.readfrom(0x38, 1)[0] & 0x08)
    i2c.writeto(0x38, b"\xac\x33\x00")
    clk.adv(40)
    check("aht_busy_during_conversion", i2c.readfrom(0x38, 7)[0] & 0x80)
    clk.adv(40)
    d = i2c.readfrom(0x38, 7)
    check("aht_ready", not d[0] & 0x80)
    check("aht_crc", crc(d[0:6]) == d[6], d)
    h = (d[1] << 12 | d[2] << 4 | d[3] >> 4) / 1048576 * 100
    t = ((d[3] & 15) << 16 | d[4] << 8 | d[5]) / 1048576 * 200 - 50
    check("aht_temperature", abs(t - w.temperature) < 0.5, (t, w.temperature))
    check("aht_humidity", abs(h - w.humidity) < 4, (h, w.humidity))
    check("readfrom_mem_nacks_absent", nack(lambda: i2c.readfrom_mem(0x40, 0, 2)))
    sht = node.devs["sht"]
    check("sht3x_bad_crc_raises", nack(lambda: sht.get(b"\x66\x66\x00\x80\x00\x00")))
    check("sht3x_conversion_formula", sht.get(b"\xff\xff\xac\x00\x00\x81") == {1: 13000, 2: 0})
    aht = node.devs["aht"]
    f = bytearray(b"\x18\x80\x00\x08\x00\x00\x00")
    f[6] = crc(f[0:6])
    check("aht20_conversion_formula", aht.get(f) == {3: 5000, 4: 5000}, aht.get(f))


def drivers():
    w, node = setup(CFG)  # the wall clock: the drivers wait for conversions themselves
    sht, aht, dht = node.devs["sht"], node.devs["aht"], node.devs["dht"]
    for name, drv, ct, ch, tt, th in (
        ("sht3x", sht, 1, 2, 30, 300),
        ("aht20", aht, 3, 4, 60, 400),
        ("dht22", dht, 5, 6, 100, 300),
    ):
        for n in ("first", "second"):  # the second read uses the conversion started by the first
            r = drv.read()
            t, h = r.get(ct), r.get(ch)
            wt, wh = w.temperature, w.humidity
            print("%s %s read %s (world %.2f degC %.2f %%RH)" % (name, n, r, wt, wh))
            ok = isinstance(t, int) and abs(t - wt * 100) <= tt and abs(h - wh * 100) <= th
            check("%s_read_%s" % (name, n), ok, r)
    world_json('{"i2c_fail": true, "dht_fail": true}')
    poll(w)
    for name, drv in (("sht3x", sht), ("aht20", aht), ("dht22", dht)):
        drv.t = None
        check("%s_fault_raises_oserror" % name, nack(drv.read))
    check("scan_empty_on_fault", hal.I2C().scan() == [])
    world_json("{}")
    poll(w)
    check("sht3x_recovers", sht.read().get(1) is not None)


wire()
drivers()
done()
