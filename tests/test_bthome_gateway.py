"""BTHome v2 sensors of other makes, heard by the real gateway: advertisements built here as
bthome.io/format and /encryption describe them (AES-CCM, 4-byte tag, nonce = MAC + UUID +
device info + counter) go on the virtual radio (tools/radio.py), bleak's scanner with
kithnet's backend hands them to the gateway, which lists the device as pending, adopts it
(CLI, API, facade), keeps its readings in state and history and refuses replays, also
after a restart of the gateway.

One radio and one gateway for the module (restarted once, on the same data directory).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from gwrun import GatewayThread
from ha_rules import check_device
from kithnet.gateway.ble import bthome
from kithnet.gateway.client import ApiError, Client
from kithnet.gateway.mqtt.discovery import device_config
from kithnet.gateway.mqtt.nodeview import NodeView
from kithnet.gateway.mqtt.topics import Topics
from kithnet.tools.radio import RadioClient, RadioServer
from mqtt_broker import Broker, Watcher

from kithnet import cli

WAIT = 20
UUID = b"\xd2\xfc"  # 0xFCD2, little-endian
MARK = bytes.fromhex("0201060709") + b"marker"  # another make's advert: ends a batch
MAC = "A4:C1:38:11:22:33"  # a sensor with a bindkey
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
MAC_WRONG = "A4:C1:38:44:55:66"  # adopted with a wrong bindkey
KEY_WRONG = bytes.fromhex("00" * 15 + "01")
KEY_REAL = bytes.fromhex("5f" * 16)
MAC_PLAIN = "A4:C1:38:77:88:99"  # unencrypted


def objects(temp: float = 21.5, hum: float = 48.0, batt: int = 87, pressure: float = 1013.25,
            button: int | None = None, packet: int | None = None) -> bytes:  # fmt: skip
    """BTHome v2 objects in id order (bthome.io/format): 0x00 packet id, 0x01 battery %,
    0x02 temperature sint16 0.01 °C, 0x03 humidity uint16 0.01 %, 0x04 pressure uint24
    0.01 hPa, 0x3A button event (1 press, 2 double, 4 long)."""
    out = b"" if packet is None else bytes((0x00, packet))
    out += bytes((0x01, batt)) + b"\x02" + struct.pack("<h", round(temp * 100))
    out += b"\x03" + struct.pack("<H", round(hum * 100))
    out += b"\x04" + round(pressure * 100).to_bytes(3, "little")
    if button is not None:
        out += bytes((0x3A, button))
    return out


def advert(mac: str, objs: bytes, counter: int | None = None, key: bytes | None = None,
           name: str | None = None, mac_in: bool = False) -> bytes:  # fmt: skip
    """Flags, the BTHome service data (encrypted when a key is given; with the MAC in it
    for a device on a changing random address), a local name."""
    raw = bytes.fromhex(mac.replace(":", ""))
    head = raw[::-1] if mac_in else b""  # the MAC in the payload is reversed
    if key is None:
        service = UUID + bytes((0x40 | mac_in << 1,)) + head + objs  # v2, unencrypted
    else:
        info = bytes((0x41 | mac_in << 1,))  # v2, encrypted
        cnt = struct.pack("<I", counter)
        nonce = raw + UUID + info + cnt
        sealed = AESCCM(key, tag_length=4).encrypt(nonce, objs, None)
        service = UUID + info + head + sealed[:-4] + cnt + sealed[-4:]
    adv = b"\x02\x01\x06" + bytes((len(service) + 1, 0x16)) + service
    if name:
        adv += bytes((len(name) + 1, 0x09)) + name.encode()
    assert len(adv) <= 31
    return adv


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.radio = RadioServer().start()
        self.broker = Broker(root / "broker").start()
        self.mqtt = Watcher(self.broker.port, ["kithnet/#", "homeassistant/#"])
        self.gw = self.gateway()

    def gateway(self) -> GatewayThread:
        self.gw = GatewayThread(data=str(self.root / "gw"), ble="virtual:" + self.radio.address,
                                mqtt_url=self.broker.url)  # fmt: skip
        return self.gw

    def metrics(self) -> dict:
        return self.gw.call(self.gw.gw.metrics)

    def air(self, mac: str, advs: list[bytes]) -> None:
        """Advertising events from `mac`, then a marker from elsewhere: once the gateway
        counted them all (other makes' adverts, BTHome's too), it handled every one."""
        until = self.metrics()["ble_foreign"] + len(advs) + 1
        inj = RadioClient(self.radio.address, mac)
        try:
            inj.once([(mac, a) for a in advs] + [("C6:66:66:66:66:67", MARK)])
            self.gw.wait(lambda: self.gw.gw.metrics()["ble_foreign"] >= until, WAIT)
        finally:
            inj.close()

    def history(self, name: str, cap: str) -> list[dict]:
        """What is stored, once what the gateway holds is written (store.flush)."""
        self.gw.call(self.gw.gw.ble._flush)
        self.gw.call(self.gw.gw.store.flush)
        return self.gw.call(self.gw.gw.history, name, cap)

    def close(self) -> None:
        self.gw.stop()
        self.radio.close()
        self.mqtt.close()
        self.broker.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("bthome"))
    yield lab
    lab.close()


def _warnings(caplog) -> list[str]:
    mine = ("kithnet", "bthome")
    return [r.getMessage() for r in caplog.records
            if r.name.startswith(mine) and r.levelno >= logging.WARNING]  # fmt: skip


def test_unadopted_sensor_is_pending_once_then_adopted_with_the_cli(lab, caplog):
    caplog.set_level(logging.INFO)
    nid = bthome.node_id_of(MAC).hex()
    lab.air(MAC, [advert(MAC, objects(), c, KEY) for c in range(1, 21)])
    pending = [p for p in lab.gw.call(lab.gw.gw.pending) if p["id"] == nid]
    assert len(pending) == 1
    p = pending[0]
    assert p["type"] == "bthome" and p["address"] == MAC and p["model"] == "BTHome v2 (encrypted)"
    assert p["adopt"] == f"kithnet adopt --bthome {MAC} --bindkey <its 32 hex digits>"
    said = [m for m in _warnings(caplog) if MAC in m]
    assert len(said) == 1 and "kithnet adopt --bthome" in said[0], said  # once, not 20 times
    assert [e for e in lab.gw.events if e.kind == "pending" and e.node == nid]
    # Usage errors exit 2 before any request.
    for argv in (["adopt", "--bthome", MAC], ["adopt", "--bthome", MAC, "--bindkey",
                 KEY.hex(), "--insecure"], ["adopt", "--bindkey", KEY.hex()]):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
    base = ["--url", f"http://127.0.0.1:{lab.gw.gw.http_port}", "--token", "test-token"]
    argv = ["adopt", "--bthome", MAC, "--bindkey", KEY.hex(), "--name", "Porch", "--room", "out"]
    assert cli.main([*argv, *base]) == 0
    assert lab.gw.call(lab.gw.gw.pending) == [x for x in lab.gw.call(lab.gw.gw.pending)
                                              if x["id"] != nid]  # fmt: skip
    d = lab.gw.device("Porch")
    assert (d["id"], d["type"], d["room"]) == (nid, "bthome", "out")


def test_readings_reach_state_history_and_the_bus(lab):
    lab.air(MAC, [advert(MAC, objects(22.25, 51.5, 80, 1009.5), 30, KEY)])
    d = lab.gw.device("Porch")
    s = {k: v["value"] for k, v in d["state"].items()}
    assert s["temperature"] == 22.25 and s["humidity"] == 51.5 and s["battery"] == 80
    assert s["pressure"] == 1009.5 and s["rssi"] < 0
    caps = {c["name"]: c for c in d["capabilities"]}
    assert caps["pressure"]["unit"] == "mbar" and caps["pressure"]["kind"].startswith("vendor_")
    assert d["online"] and d["address"] == f"ble:{MAC}" and d["model"] == "BTHome v2"
    assert [h["value"] for h in lab.history("Porch", "temperature")] == [22.25]
    # A button press is an event of a button capability, learned when first heard.
    lab.air(MAC, [advert(MAC, objects(button=2), 31, KEY)])
    ev = [e for e in lab.gw.events if e.kind == "event" and e.node == d["id"]]
    assert ev and ev[-1].data == {"capability": "button", "event": "double"}
    # On MQTT, with Home Assistant discovery (pressure as a pressure sensor), which Home
    # Assistant's rules take.
    hexid = d["id"]
    topic = f"kithnet/{hexid}/pressure"

    def got() -> list[float]:
        return [float(m.text) for m in lab.mqtt.on(topic)]

    lab.mqtt.wait(lambda: 1009.5 in got(), WAIT, f"{topic}: {got()}")
    conf = f"homeassistant/device/kithnet_{hexid}/config"
    lab.mqtt.wait(lambda: (m := lab.mqtt.last(conf)) and "pressure" in m.text, WAIT, conf)
    dev = lab.gw.call(lab.gw.gw._find, "Porch")
    t = Topics("kithnet", "homeassistant", "kithnet-gw")
    cfg = device_config(dev, NodeView.of(dev, t), t)
    assert check_device(f"homeassistant/device/kithnet_{dev.hex}/config", cfg) == []
    pressure = [c for c in cfg["cmps"].values() if c.get("name") == "Pressure"]
    assert (pressure[0]["device_class"], pressure[0]["unit_of_measurement"]) == ("pressure", "mbar")


def test_replays_and_repeats_are_refused(lab, caplog):
    caplog.set_level(logging.INFO)
    m = lab.metrics()
    n = len(lab.history("Porch", "temperature"))
    old = advert(MAC, objects(5.0), 30, KEY)  # counter 30 was accepted: a replay, forged value
    lab.air(MAC, [old] * 5 + [advert(MAC, objects(6.0), 2, KEY)] * 5)  # lower counters
    lab.air(MAC, [advert(MAC, objects(button=2), 31, KEY)] * 3)  # the last one again: repeats
    after = lab.metrics()
    assert after["ble_bthome_dropped_replay"] - m.get("ble_bthome_dropped_replay", 0) == 10
    assert after["ble_bthome_duplicates"] - m["ble_bthome_duplicates"] == 3
    assert after["ble_bthome_accepted"] == m["ble_bthome_accepted"]
    assert len(lab.history("Porch", "temperature")) == n
    said = [w for w in _warnings(caplog) if "replay" in w]
    assert len(said) <= 1  # once per device and cause (it may have been said before)
    # HA's parser alone lets in any counter below 100 and one older than the last:
    from bthome_ble import BTHomeBluetoothDeviceData

    ha = BTHomeBluetoothDeviceData(KEY)
    for c in (30, 2):
        ha.update(bthome._service_info(MAC, None, -60, advert(MAC, objects(5.0), c, KEY)[7:]))
    assert ha.encryption_counter == 2  # counter 2 after 30: taken


def test_a_replay_after_a_gateway_restart_is_refused(lab):
    lab.gw.stop()
    lab.gateway()
    db = Path(lab.gw.cfg.data).expanduser() / "kithnet.db"
    with sqlite3.connect(db) as c:
        assert list(c.execute("SELECT counter FROM bthome WHERE address = ?", (MAC,))) == [(31,)]
    n = len(lab.history("Porch", "temperature"))
    lab.air(MAC, [advert(MAC, objects(5.0), c, KEY) for c in (1, 30, 31)])
    assert lab.metrics()["ble_bthome_accepted"] == 0
    assert len(lab.history("Porch", "temperature")) == n
    lab.air(MAC, [advert(MAC, objects(23.0), 32, KEY)])  # a new one is taken
    assert lab.gw.device("Porch")["state"]["temperature"]["value"] == 23.0
    assert len(lab.history("Porch", "temperature")) == n + 1


def test_a_wrong_bindkey_is_said_once(lab, caplog):
    caplog.set_level(logging.INFO)
    lab.gw.call(lab.gw.gw.adopt_bthome, MAC_WRONG, KEY_WRONG.hex(), name="Shed")
    lab.air(MAC_WRONG, [advert(MAC_WRONG, objects(), c, KEY_REAL) for c in range(1, 16)])
    said = [w for w in _warnings(caplog) if MAC_WRONG in w]
    assert len(said) == 1 and "wrong bindkey" in said[0], said
    assert lab.metrics()["ble_bthome_dropped_bad_bindkey"] == 15
    assert lab.gw.device("Shed")["state"] == {}

    # Adopted again with the right key (over the API): its readings come in.
    async def api() -> dict:
        async with Client(f"http://127.0.0.1:{lab.gw.gw.http_port}", "test-token") as c:
            return await c.adopt_bthome(MAC_WRONG, KEY_REAL.hex())

    assert asyncio.run(api())["name"] == "Shed"
    lab.air(MAC_WRONG, [advert(MAC_WRONG, objects(19.0), 16, KEY_REAL)])
    assert lab.gw.device("Shed")["state"]["temperature"]["value"] == 19.0


def test_unencrypted_is_taken_only_when_adopted_insecure(lab, caplog):
    caplog.set_level(logging.INFO)
    nid = bthome.node_id_of(MAC_PLAIN).hex()
    lab.air(MAC_PLAIN, [advert(MAC_PLAIN, objects(18.0, packet=1), name="prst")] * 3)
    p = next(p for p in lab.gw.call(lab.gw.gw.pending) if p["id"] == nid)
    assert p["model"] == "BTHome v2 (unencrypted)" and p["adopt"].endswith("--insecure")
    assert p["name"] == "prst"  # its local name (a b-parasite plant sensor's)
    # Adopted with a bindkey, plaintext is a downgrade: refused.
    lab.gw.call(lab.gw.gw.adopt_bthome, MAC_PLAIN, KEY.hex(), name="Garage")
    lab.air(MAC_PLAIN, [advert(MAC_PLAIN, objects(18.0, packet=2))] * 3)
    assert lab.gw.device("Garage")["state"] == {}
    assert lab.metrics()["ble_bthome_dropped_downgrade"] == 3
    with pytest.raises(ValueError, match="bindkey"):
        lab.gw.call(lab.gw.gw.adopt_bthome, MAC_PLAIN, None)
    lab.gw.call(lab.gw.gw.adopt_bthome, MAC_PLAIN, None, True)
    # Each advertisement is repeated by the device: its packet id keeps one of each.
    lab.air(MAC_PLAIN, [advert(MAC_PLAIN, objects(18.5, packet=3))] * 4
            + [advert(MAC_PLAIN, objects(19.5, packet=4))] * 4)  # fmt: skip
    assert [h["value"] for h in lab.history("Garage", "temperature")] == [18.5, 19.5]
    # More kinds: energy (0x0A, uint24 0.001 kWh), opening (0x11), CO2 (0x12, ppm), motion (0x21).
    objs = bytes((0x00, 5, 0x0A)) + (1234567).to_bytes(3, "little") + bytes((0x11, 1))
    objs += b"\x12" + (612).to_bytes(2, "little") + bytes((0x21, 1))
    lab.air(MAC_PLAIN, [advert(MAC_PLAIN, objs)])
    d = lab.gw.device("Garage")
    s = {k: v["value"] for k, v in d["state"].items()}
    got = (s["energy"], s["contact"], s["motion"], s["carbon_dioxide"])
    assert got == (1234567, False, True, 612)  # Wh; contact = not open
    assert {c["name"]: c["unit"] for c in d["capabilities"]}["energy"] == "Wh"
    dev = lab.gw.call(lab.gw.gw._find, "Garage")
    t = Topics("kithnet", "homeassistant", "kithnet-gw")
    cfg = device_config(dev, NodeView.of(dev, t), t)
    assert check_device(f"homeassistant/device/kithnet_{dev.hex}/config", cfg) == []
    # A kithnet adoption cannot take a BTHome device's id, nor the other way round.
    with pytest.raises(ValueError, match="BTHome"):
        lab.gw.call(lab.gw.gw.adopt, nid, KEY.hex())
    kithnet_node = bthome.node_id_of("A4:C1:38:00:00:01").hex()
    lab.gw.call(lab.gw.gw.adopt, kithnet_node, KEY.hex())
    with pytest.raises(ValueError, match="kithnet node"):
        lab.gw.call(lab.gw.gw.adopt_bthome, "A4:C1:38:00:00:01", KEY.hex())
    # A kithnet node heard on BLE that also advertises BTHome (for Home Assistant, SPEC 13.2)
    # is not listed as a BTHome device: its kithnet frames carry the readings.
    ours = "C1:22:33:44:55:66"
    dev = lab.gw.call(lab.gw.gw._find, kithnet_node)
    lab.gw.call(lambda: setattr(lab.gw.gw.ble.node(dev), "address", ours))
    n = lab.metrics()["ble_bthome_kithnet_nodes"]
    lab.air(ours, [advert(ours, objects(), 9, KEY)])
    assert lab.metrics()["ble_bthome_kithnet_nodes"] == n + 1
    assert not [p for p in lab.gw.call(lab.gw.gw.pending) if p.get("address") == ours]


def test_a_pending_sensor_is_adopted_by_its_id_over_the_api(lab):
    mac = "A4:C1:38:AA:BB:CC"
    nid = bthome.node_id_of(mac).hex()
    lab.air(mac, [advert(mac, objects(), 7, KEY)])
    assert any(p["id"] == nid for p in lab.gw.call(lab.gw.gw.pending))

    async def api() -> dict:
        async with Client(f"http://127.0.0.1:{lab.gw.gw.http_port}", "test-token") as c:
            return await c.request("POST", f"/api/pending/{nid}/adopt", {"key": KEY.hex()})

    d = asyncio.run(api())
    assert (d["id"], d["type"]) == (nid, "bthome")  # the key is its bindkey

    async def bad(body: dict) -> tuple[int, str]:
        async with Client(f"http://127.0.0.1:{lab.gw.gw.http_port}", "test-token") as c:
            try:
                await c.request("POST", "/api/bthome", body)
            except ApiError as e:
                return e.status, e.reason
        return 201, ""

    for body, words in [
        ({"address": "nope", "bindkey": KEY.hex()}, "not a Bluetooth address"),
        ({"address": mac}, "needs its bindkey"),
        ({"address": mac, "bindkey": "00"}, "'bindkey' must be 32 hex digits"),
        ({"address": mac, "bindkey": KEY.hex(), "insecure": True}, "not both"),
        ({"address": mac, "key": KEY.hex()}, "key"),
    ]:
        status, reason = asyncio.run(bad(body))
        assert status == 400 and words in reason, (body, reason)
    lab.air(mac, [advert(mac, objects(17.5), 8, KEY)])
    assert lab.gw.device(nid)["state"]["temperature"]["value"] == 17.5


def test_a_sensor_on_random_addresses_is_known_by_the_mac_it_carries(lab):
    mac = "A4:C1:38:DD:EE:FF"
    lab.gw.call(lab.gw.gw.adopt_bthome, mac, KEY.hex(), name="Wanderer")
    objs = bytes((0x02,)) + struct.pack("<h", 1234)  # temperature only: the MAC takes room
    lab.air("D1:00:00:00:00:01", [advert(mac, objs, 5, KEY, mac_in=True)])
    lab.air("D1:00:00:00:00:02", [advert(mac, objs, 5, KEY, mac_in=True)])  # a repeat
    lab.air("D1:00:00:00:00:03", [advert(mac, objs[:1] + struct.pack("<h", 1300), 6, KEY,
                                         mac_in=True)])  # fmt: skip
    assert [h["value"] for h in lab.history("Wanderer", "temperature")] == [12.34, 13.0]
